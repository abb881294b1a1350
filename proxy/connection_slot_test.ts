import assert from "node:assert/strict";
import { SlotSweeper } from "./connection_slot.ts";

function closable() {
  const state = { closed: 0, close: () => void state.closed++ };
  return state;
}

Deno.test("SlotSweeper closes a slot past its deadline with every socket added to it", () => {
  const sweeper = new SlotSweeper({ idleTimeoutMs: 1000, tickMs: 60_000 });
  try {
    const client = closable();
    const upstream = closable();
    const slot = sweeper.add(client);
    slot.add(upstream);
    slot.expectWithin(100);
    sweeper.sweep(Date.now() + 50);
    assert.equal(client.closed, 0, "not yet");
    sweeper.sweep(Date.now() + 200);
    assert.deepEqual([client.closed, upstream.closed, slot.closed], [1, 1, true]);
  } finally {
    sweeper.stop();
  }
});

Deno.test("SlotSweeper applies the shorter of its idle timeout and the slot's own, and touch() keeps a slot alive", () => {
  const sweeper = new SlotSweeper({ idleTimeoutMs: 1000, tickMs: 60_000 });
  try {
    const plain = sweeper.add(closable());
    const short = sweeper.add(closable());
    plain.watchIdle();
    short.watchIdle(undefined, { idleMs: 100 });
    sweeper.sweep(Date.now() + 500);
    assert.deepEqual([plain.closed, short.closed], [false, true]);
    plain.touch();
    sweeper.sweep(Date.now() + 900);
    assert.equal(plain.closed, false, "touched 900 ms ago at most");
    sweeper.sweep(Date.now() + 1500);
    assert.equal(plain.closed, true);
  } finally {
    sweeper.stop();
  }
});

Deno.test("SlotSweeper calls onIdle once instead of closing, and leaves an unwatched slot alone", () => {
  const sweeper = new SlotSweeper({ idleTimeoutMs: 100, tickMs: 60_000 });
  try {
    let warned = 0;
    const waiting = sweeper.add(closable());
    waiting.watchIdle(() => warned++);
    const asking = sweeper.add(closable());
    asking.unwatch();
    sweeper.sweep(Date.now() + 500);
    sweeper.sweep(Date.now() + 1000);
    assert.equal(warned, 1);
    assert.deepEqual([waiting.closed, asking.closed], [false, false]);
    assert.equal(sweeper.size, 2);
    sweeper.delete(asking);
    assert.equal(sweeper.size, 1);
  } finally {
    sweeper.stop();
  }
});

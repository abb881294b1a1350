/**
 * The short-budget fuzz run CI repeats on every change: every target of
 * `deno task fuzz` with a few thousand inputs and a fixed seed (so a failure
 * here replays with `deno task fuzz --target NAME --seed 20261122`), plus
 * checks that the harness really reports failures and that the HTTP input
 * generator reaches the body paths.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { BufferedReader, readRequestHead, requestBodyFraming } from "../proxy/http_parser.ts";
import { check, runAsync, runSync } from "./fuzz/harness.ts";
import { requestMessages, SlicedSource } from "./fuzz/http_parser_target.ts";
import { formatReport, runFuzz, selectTargets } from "./fuzz/mod.ts";
import { FUZZ_TARGETS } from "./fuzz/targets.ts";

const SEED = 20261122;
const PURE_RUNS = 2_000;
const SOCKET_RUNS = 300;

for (const target of FUZZ_TARGETS) {
  Deno.test(`fuzz ${target.name}: ${target.description}`, async () => {
    const runs = target.kind === "socket" ? SOCKET_RUNS : PURE_RUNS;
    const [report] = await runFuzz({ runs, seed: SEED, targets: [target.name] });
    assert.equal(report.failures, 0, formatReport(report));
    assert.equal(report.inputs, runs);
  });
}

Deno.test("fuzz harness: a failing property is reported with its shrunk counterexample", async () => {
  const sync = runSync("demo", fc.nat({ max: 1000 }), (n) => check(n < 500, "too big"), {
    runs: 1000,
    seed: 1,
    perInputMs: 1000,
  });
  assert.equal(sync.failures, 1);
  assert.equal(sync.counterexample, "[500]");
  assert.match(sync.error ?? "", /too big/);
  const slow = await runAsync(
    "demo",
    fc.constant(0),
    () => new Promise((resolve) => setTimeout(resolve, 200)),
    { runs: 1, seed: 1, perInputMs: 20 },
  );
  assert.equal(slow.failures, 1);
  assert.match(slow.error ?? "", /a hang/);
});

Deno.test("fuzz runner: an unknown target name is refused with the list of names", () => {
  assert.throws(() => selectTargets(["nope"]), /Unknown fuzz target "nope": expected one of/);
  assert.equal(selectTargets([]).length, FUZZ_TARGETS.length);
});

Deno.test("fuzz http_request inputs reach length and chunked bodies, not only refusals", async () => {
  const kinds = new Map<string, number>();
  for (const bytes of fc.sample(requestMessages, { numRuns: 3000, seed: SEED })) {
    const reader = new BufferedReader(new SlicedSource(bytes, [5]));
    let kind: string;
    try {
      const head = await readRequestHead(reader);
      kind = head === null ? "empty" : requestBodyFraming(head).kind;
    } catch {
      kind = "refused";
    }
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  for (const kind of ["none", "length", "chunked", "refused"]) {
    assert.ok((kinds.get(kind) ?? 0) >= 5, `${kind}: ${JSON.stringify([...kinds])}`);
  }
});

import assert from "node:assert/strict";
import { BufferPool, prependBytes, relay } from "./relay.ts";

async function pair(): Promise<{ a: Deno.TcpConn; b: Deno.TcpConn; close(): void }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const a = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const b = await listener.accept();
  listener.close();
  return {
    a,
    b,
    close() {
      for (const c of [a, b]) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
    },
  };
}

async function readAll(conn: Deno.Conn): Promise<number> {
  const buf = new Uint8Array(65536);
  let total = 0;
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return total;
    total += n;
  }
}

Deno.test("BufferPool lends a bounded number of large buffers and reuses returned ones", () => {
  const pool = new BufferPool({ size: 1024, maxLent: 2, maxFree: 1, fallbackSize: 16 });
  const one = pool.acquire();
  const two = pool.acquire();
  assert.equal(one.length, 1024);
  assert.equal(pool.acquire().length, 16, "past maxLent a fallback buffer is returned");
  pool.release(one);
  pool.release(two);
  assert.equal(pool.free, 1);
  assert.equal(pool.lent, 0);
  assert.equal(pool.acquire(), one);
});

Deno.test("relay() copies 64 MiB one way and a reply the other, half-closing in between", async () => {
  const client = await pair();
  const server = await pair();
  const pool = new BufferPool();
  try {
    const relayed = relay(client.b, server.a, { buffers: pool });
    const size = 64 * 1024 * 1024;
    const sender = (async () => {
      const chunk = new Uint8Array(1024 * 1024).fill(7);
      for (let sent = 0; sent < size; sent += chunk.length) {
        let offset = 0;
        while (offset < chunk.length) offset += await client.a.write(chunk.subarray(offset));
      }
      await client.a.closeWrite();
    })();
    // The far end reads everything (end of stream arrives through the half-close), then answers.
    const received = await readAll(server.b);
    await server.b.write(new TextEncoder().encode("done"));
    server.b.close();
    await sender;
    const buf = new Uint8Array(16);
    const n = await client.a.read(buf);
    assert.equal(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "done");
    const result = await relayed;
    assert.equal(received, size);
    assert.equal(result.aToB, size);
    assert.equal(result.bToA, 4);
    assert.equal(pool.lent, 0, "every large buffer went back");
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("prependBytes() delivers the prefix before the connection's own bytes", async () => {
  const p = await pair();
  try {
    await p.a.write(new TextEncoder().encode("world"));
    const conn = prependBytes(p.b, new TextEncoder().encode("hello "));
    const buf = new Uint8Array(4);
    let text = "";
    while (text.length < 11) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    assert.equal(text, "hello world");
    assert.equal(conn.remoteAddr.port, p.a.localAddr.port);
  } finally {
    p.close();
  }
});

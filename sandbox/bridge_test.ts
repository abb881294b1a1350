import assert from "node:assert/strict";
import { startBridge } from "./bridge.ts";

/** A unix socket server that echoes everything back and half-closes after the client does. */
function startUnixEcho(path: string): { close(): Promise<void> } {
  const listener = Deno.listen({ transport: "unix", path });
  const conns = new Set<Deno.Conn>();
  const loop = (async () => {
    const tasks: Promise<void>[] = [];
    for await (const conn of listener) {
      conns.add(conn);
      tasks.push((async () => {
        const buf = new Uint8Array(65536);
        try {
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) break;
            let off = 0;
            while (off < n) off += await conn.write(buf.subarray(off, n));
          }
          await conn.closeWrite();
        } catch {
          // client went away
        } finally {
          if (conns.delete(conn)) conn.close();
        }
      })());
    }
    await Promise.all(tasks);
  })();
  return {
    async close() {
      listener.close();
      for (const conn of conns) conn.close();
      conns.clear();
      await loop.catch(() => {});
    },
  };
}

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  const out = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

Deno.test("startBridge() relays both ways to the unix socket and passes a half-close on", async () => {
  const dir = await Deno.makeTempDir();
  const echo = startUnixEcho(`${dir}/proxy.sock`);
  try {
    await using bridge = startBridge({
      listen: [{ hostname: "127.0.0.1", port: 0 }, { hostname: "127.0.0.1", port: 0 }],
      target: `${dir}/proxy.sock`,
    });
    assert.equal(bridge.addrs.length, 2);
    for (const addr of bridge.addrs) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: addr.port });
      try {
        // 3 MiB: enough for the relay to move to its large buffer.
        const payload = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
        const reading = readAll(conn);
        let off = 0;
        while (off < payload.length) off += await conn.write(payload.subarray(off));
        await conn.closeWrite();
        const echoed = await reading;
        assert.equal(echoed.length, payload.length);
        assert.deepEqual(echoed.subarray(0, 1000), payload.subarray(0, 1000));
        assert.deepEqual(echoed.subarray(-1000), payload.subarray(-1000));
      } finally {
        conn.close();
      }
    }
  } finally {
    await echo.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startBridge() closes the client when the proxy socket is gone, and close() ends open relays", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bridge = startBridge({
      listen: [{ hostname: "127.0.0.1", port: 0 }],
      target: `${dir}/missing.sock`,
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: bridge.addrs[0].port });
    try {
      assert.equal(await conn.read(new Uint8Array(16)), null);
    } finally {
      conn.close();
    }
    const echo = startUnixEcho(`${dir}/missing.sock`);
    const open = await Deno.connect({ hostname: "127.0.0.1", port: bridge.addrs[0].port });
    try {
      await open.write(new TextEncoder().encode("x"));
      const buf = new Uint8Array(4);
      assert.equal(await open.read(buf), 1);
      await bridge.close();
      assert.equal(await open.read(buf), null);
    } finally {
      open.close();
      await echo.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

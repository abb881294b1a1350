import assert from "node:assert/strict";
import { readDecisionLog } from "../proxy/decision_log.ts";
import { PROXY_LIMITS } from "../proxy/server.ts";
import {
  completeResponse,
  configFor,
  exchange,
  fakeServer,
  parseResponse,
  proxyFor,
  readAll,
  readUntil,
  respondWith,
  send,
} from "./proxy_helpers.ts";

const NAMES = { "allowed.test": ["127.0.0.2"], "other.test": ["127.0.0.3"] };

Deno.test("PROXY_LIMITS pins the default timeouts and bounds", () => {
  assert.ok(Object.isFrozen(PROXY_LIMITS));
  assert.deepEqual(PROXY_LIMITS, {
    headerTimeoutMs: 30_000,
    socksHandshakeTimeoutMs: 15_000,
    connectTimeoutMs: 10_000,
    idleTimeoutMs: 300_000,
    maxConnections: 2048,
    maxHeadBytes: 65_536,
    maxHeaders: 100,
  });
});

Deno.test("proxy closes a slowloris client that never finishes its head", async () => {
  await using upstream = fakeServer("127.0.0.2", respondWith("ok"));
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, {
    names: NAMES,
    limits: { headerTimeoutMs: 300 },
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  try {
    // Dribble a header line every 100 ms: each byte is progress, but the head never ends.
    await send(conn, `GET http://allowed.test:${upstream.port}/ HTTP/1.1\r\n`);
    const dribble = (async () => {
      for (let i = 0; i < 30; i++) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          await send(conn, `X-${i}: 1\r\n`);
        } catch {
          return i;
        }
      }
      return 30;
    })();
    const text = await readAll(conn, 5000);
    assert.equal(text, "", "closed without an answer");
    const sent = await dribble;
    assert.ok(sent < 30, "the proxy closed the connection before the client gave up");
  } finally {
    conn.close();
  }
  assert.equal(upstream.accepted, 0);
});

Deno.test("proxy closes a SOCKS5 client that stalls in the handshake", async () => {
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, {
    names: NAMES,
    limits: { socksHandshakeTimeoutMs: 200 },
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.socks!.port });
  try {
    await send(conn, new Uint8Array([0x05]));
    assert.equal(await readAll(conn, 5000), "");
  } finally {
    conn.close();
  }
});

Deno.test("proxy closes an idle tunnel", async () => {
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    await readAll(conn, 10_000).catch(() => "");
  });
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, {
    names: NAMES,
    limits: { idleTimeoutMs: 300 },
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  try {
    await send(conn, `CONNECT allowed.test:${upstream.port} HTTP/1.1\r\n\r\n`);
    const text = await readAll(conn, 5000);
    assert.equal(text, "HTTP/1.1 200 Connection Established\r\n\r\n", "then closed when idle");
  } finally {
    conn.close();
  }
});

Deno.test("proxy gives up on a connect that does not complete (504)", async () => {
  // A listener that never accepts: once its backlog (511 on Linux) is full, new SYNs go unanswered.
  const silent = Deno.listen({ hostname: "127.0.0.5", port: 0 });
  const filler: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 2000; i++) {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), 200);
      try {
        filler.push(
          await Deno.connect({
            hostname: "127.0.0.5",
            port: silent.addr.port,
            signal: abort.signal,
          }),
        );
      } catch {
        break; // The backlog is full.
      } finally {
        clearTimeout(timer);
      }
    }
    await using proxy = await proxyFor({ allow: ["127.0.0.5"] }, {
      names: NAMES,
      limits: { connectTimeoutMs: 300 },
    });
    const response = parseResponse(
      await exchange(proxy.http!.port, `CONNECT 127.0.0.5:${silent.addr.port} HTTP/1.1\r\n\r\n`, {
        timeoutMs: 5000,
      }),
    );
    assert.equal(response.status, 504);
    assert.equal(response.headers.get("x-proxy-error"), "upstream-timeout");
    const body = JSON.parse(response.body);
    assert.equal(body.reason, "upstream_timeout");
    assert.equal(body.protocol, "https-connect");
    assert.match(body.detail, /timed out/);
  } finally {
    for (const conn of filler) conn.close();
    silent.close();
  }
});

Deno.test("proxy refuses connections past maxConnections with 503", async () => {
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    await readAll(conn, 10_000).catch(() => "");
  });
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, {
    names: NAMES,
    limits: { maxConnections: 2 },
  });
  const held: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
      held.push(conn);
      await send(conn, `CONNECT allowed.test:${upstream.port} HTTP/1.1\r\n\r\n`);
      await readUntil(conn, (t) => t.includes("\r\n\r\n"));
    }
    const response = parseResponse(
      await exchange(proxy.http!.port, `CONNECT allowed.test:${upstream.port} HTTP/1.1\r\n\r\n`),
    );
    assert.equal(response.status, 503);
  } finally {
    for (const conn of held) conn.close();
  }
  // Once a slot frees up, new connections work again.
  await new Promise((r) => setTimeout(r, 100));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  try {
    await send(conn, `CONNECT allowed.test:${upstream.port} HTTP/1.1\r\n\r\n`);
    assert.match(await readUntil(conn, (t) => t.includes("\r\n\r\n")), /^HTTP\/1\.1 200 /);
  } finally {
    conn.close();
  }
});

Deno.test("proxy writes one JSON line per decision to the log file", async () => {
  await using upstream = fakeServer("127.0.0.2", respondWith("ok"));
  const dir = await Deno.makeTempDir();
  const logFile = `${dir}/decisions.jsonl`;
  try {
    {
      await using proxy = await proxyFor({ allow: ["allowed.test"] }, {
        names: NAMES,
        logFile,
        command: ["npm", "ci"],
      });
      const p = upstream.port;
      await exchange(
        proxy.http!.port,
        `GET http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nConnection: close\r\n\r\n`,
      );
      await exchange(proxy.http!.port, `CONNECT other.test:443 HTTP/1.1\r\n\r\n`);
    }
    const lines = (await Deno.readTextFile(logFile)).trim().split("\n").map((line) =>
      JSON.parse(line)
    );
    assert.equal(lines.length, 2);
    assert.deepEqual(Object.keys(lines[0]), [
      "schema",
      "time",
      "host",
      "port",
      "protocol",
      "method",
      "decision",
      "reason",
      "source",
      "rule",
      "rule_source",
      "command",
      "prev",
    ]);
    assert.equal(lines[0].decision, "allow");
    assert.equal(lines[0].rule, "allowed.test");
    assert.equal(lines[0].command, "npm ci");
    assert.equal(lines[1].protocol, "https-connect");
    assert.equal(lines[1].method, null);
    assert.equal(lines[1].reason, "not_allowed");
    const blocked = await readDecisionLog(logFile, { blockedOnly: true });
    assert.deepEqual(blocked.map((e) => e.host), ["other.test"]);
    assert.equal((await Deno.stat(logFile)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("updateConfig() applies to new connections; a broken config is refused and the old one kept", async () => {
  await using upstream = fakeServer("127.0.0.3", respondWith("ok"));
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  const p = upstream.port;
  const request =
    `GET http://other.test:${p}/ HTTP/1.1\r\nHost: other.test:${p}\r\nConnection: close\r\n\r\n`;
  assert.equal(parseResponse(await exchange(proxy.http!.port, request)).status, 403);
  proxy.updateConfig(await configFor({ allow: ["other.test"] }));
  assert.equal(parseResponse(await exchange(proxy.http!.port, request)).status, 200);
  const good = await configFor({ allow: ["other.test"] });
  const broken = {
    ...good,
    network: {
      ...good.network,
      domains: [{ pattern: "**bad*pattern", action: "allow" as const, source: "test" }],
    },
  };
  assert.throws(() => proxy.updateConfig(broken));
  assert.equal(parseResponse(await exchange(proxy.http!.port, request)).status, 200);
});

Deno.test("proxy goes out through the upstream proxy with CONNECT to the checked address", async () => {
  await using target = fakeServer("127.0.0.2", respondWith("from target: $REQUEST"));
  const seen: string[] = [];
  // A tiny upstream proxy: reads a CONNECT head, records it, connects where told, relays.
  await using corporate = fakeServer("127.0.0.4", async (conn) => {
    const head = await readUntil(conn, (t) => t.includes("\r\n\r\n"));
    seen.push(head);
    const match = /^CONNECT (\d+\.\d+\.\d+\.\d+):(\d+) HTTP\/1\.1\r\n/.exec(head);
    if (match === null || !head.includes("Proxy-Authorization: Basic dTpw\r\n")) {
      await send(conn, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const out = await Deno.connect({ hostname: match[1], port: Number(match[2]) });
    await send(conn, "HTTP/1.1 200 OK\r\n\r\n");
    const pump = async (from: Deno.Conn, to: Deno.Conn) => {
      const buf = new Uint8Array(4096);
      try {
        for (;;) {
          const n = await from.read(buf);
          if (n === null) break;
          await send(to, buf.subarray(0, n));
        }
        await to.closeWrite();
      } catch {
        // Done.
      }
    };
    await Promise.all([pump(conn, out), pump(out, conn)]);
    out.close();
  });
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, {
    names: NAMES,
    upstreamProxy: {
      http: {
        hostname: "127.0.0.4",
        port: corporate.port,
        authorization: "Basic dTpw",
        display: "corp",
      },
      https: {
        hostname: "127.0.0.4",
        port: corporate.port,
        authorization: "Basic dTpw",
        display: "corp",
      },
      noProxy: [],
    },
  });
  const p = target.port;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  try {
    await send(conn, `GET http://allowed.test:${p}/a HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`);
    const response = parseResponse(await readUntil(conn, completeResponse));
    assert.equal(response.status, 200);
    assert.equal(response.body, "from target: GET /a HTTP/1.1");
  } finally {
    conn.close();
  }
  // Blocked hosts never reach the upstream proxy.
  const blocked = parseResponse(
    await exchange(proxy.http!.port, `CONNECT other.test:${p} HTTP/1.1\r\n\r\n`),
  );
  assert.equal(blocked.status, 403);
  assert.equal(corporate.accepted, 1);
  assert.match(seen[0], new RegExp(`^CONNECT 127\\.0\\.0\\.2:${p} HTTP/1\\.1\\r\\n`));
  assert.equal(target.accepted, 1);
});

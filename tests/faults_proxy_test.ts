/**
 * Fault tests for the proxy, in process: an upstream that resets in the
 * middle of a body, an upstream that accepts and never answers, and a
 * client that disappears in the middle of a tunnel. Each test ends by
 * closing the proxy and its fake upstream; Deno's resource and op
 * sanitizers (on by default) then fail the test if any socket, timer or
 * pending operation was left behind. Each also checks that the proxy still
 * serves the next client.
 */
import assert from "node:assert/strict";
import {
  completeResponse,
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

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A second, healthy request through the same proxy (to `other.test` on 127.0.0.3). */
async function stillServes(port: number): Promise<void> {
  await using healthy = fakeServer("127.0.0.3", respondWith("fine"));
  const text = await exchange(
    port,
    `GET http://other.test:${healthy.port}/ HTTP/1.1\r\nHost: other.test:${healthy.port}\r\nConnection: close\r\n\r\n`,
  );
  assert.equal(parseResponse(text).body, "fine");
}

Deno.test("fault: the upstream resets in the middle of a response body; the client sees a short body and a close", async () => {
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    await readUntil(conn, (t) => t.includes("\r\n\r\n"));
    await send(conn, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + "x".repeat(1000));
    await delay(50);
    // Unread bytes in the receive buffer make close() send a RST, not a FIN.
    (conn as Deno.TcpConn).setNoDelay(true);
  });
  await using proxy = await proxyFor({ allow: ["allowed.test", "other.test"] }, { names: NAMES });
  const p = upstream.port;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  let text: string;
  try {
    // A request body the upstream never reads: its close() then resets the connection.
    await send(
      conn,
      `POST http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nContent-Length: 200000\r\n\r\n`,
    );
    await send(conn, "y".repeat(200_000)).catch(() => {});
    text = await readAll(conn, 5000);
  } finally {
    conn.close();
  }
  assert.ok(text.startsWith("HTTP/1.1 200 OK"), text.slice(0, 100));
  const body = text.slice(text.indexOf("\r\n\r\n") + 4);
  assert.ok(body.length >= 1000 && body.length < 100_000, `body ${body.length}`);
  await stillServes(proxy.http!.port);
});

Deno.test("fault: the upstream resets before answering; the client gets 502", async () => {
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    await readUntil(conn, (t) => t.includes("\r\n\r\n"));
    await delay(20);
  });
  await using proxy = await proxyFor({ allow: ["allowed.test", "other.test"] }, { names: NAMES });
  const p = upstream.port;
  const text = await exchange(
    proxy.http!.port,
    `POST http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nContent-Length: 3\r\n\r\nabc` +
      "trailing bytes nobody reads",
  );
  const response = parseResponse(text);
  assert.equal(response.status, 502, text);
  assert.equal(response.headers.get("x-proxy-error"), "upstream-error");
  const body = JSON.parse(response.body);
  assert.equal(body.reason, "upstream_error");
  assert.equal(body.host, "allowed.test");
  await stillServes(proxy.http!.port);
});

Deno.test("fault: the upstream accepts and never answers; the idle timeout answers 504 and frees both sockets", async () => {
  let upstreamClosed = false;
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    // Read (and keep reading) until the proxy gives up on us.
    await readAll(conn, 10_000).catch(() => {});
    upstreamClosed = true;
  });
  await using proxy = await proxyFor({ allow: ["allowed.test", "other.test"] }, {
    names: NAMES,
    limits: { idleTimeoutMs: 300, connectTimeoutMs: 300 },
  });
  const p = upstream.port;
  const started = Date.now();
  // No `Connection: close`: the proxy closes the client connection itself after the 504.
  const text = await exchange(
    proxy.http!.port,
    `GET http://allowed.test:${p}/x HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`,
    { timeoutMs: 5000 },
  );
  const waited = Date.now() - started;
  assert.ok(completeResponse(text), JSON.stringify(text));
  const response = parseResponse(text);
  assert.equal(response.status, 504, text);
  assert.ok(text.startsWith("HTTP/1.1 504 Gateway Timeout\r\n"), text);
  assert.equal(response.headers.get("x-proxy-error"), "upstream-timeout");
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.equal(response.headers.get("connection"), "close");
  const body = JSON.parse(response.body);
  assert.equal(body.status, 504);
  assert.equal(body.reason, "upstream_timeout");
  assert.equal(body.host, "allowed.test");
  assert.equal(body.port, p);
  assert.equal(body.protocol, "http");
  assert.equal(body.method, "GET");
  assert.match(body.detail, /No response from the upstream within 300 ms/);
  assert.ok(waited < 4000, `took ${waited} ms`);
  for (let i = 0; i < 100 && !upstreamClosed; i++) await delay(20);
  assert.ok(upstreamClosed, "the proxy kept the upstream connection open");
  await stillServes(proxy.http!.port);
});

Deno.test("fault: a kept-alive upstream that stops answering gets 504 on the next request, not a silent retry", async () => {
  let requests = 0;
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    // Answers the first request, then reads the second and says nothing.
    await readUntil(conn, (t) => t.includes("\r\n\r\n"));
    requests++;
    await send(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    await readUntil(conn, (t) => t.includes("\r\n\r\n"));
    requests++;
    await readAll(conn, 10_000).catch(() => {});
  });
  await using proxy = await proxyFor({ allow: ["allowed.test", "other.test"] }, {
    names: NAMES,
    limits: { idleTimeoutMs: 300 },
  });
  const p = upstream.port;
  const request = `GET http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  let second: string;
  try {
    await send(conn, request);
    const first = await readUntil(conn, (t) => t.endsWith("first"));
    assert.equal(parseResponse(first).status, 200, first);
    await send(conn, request);
    second = await readAll(conn, 5000);
  } finally {
    conn.close();
  }
  assert.equal(parseResponse(second).status, 504, second);
  assert.equal(parseResponse(second).headers.get("x-proxy-error"), "upstream-timeout");
  assert.equal(upstream.accepted, 1, "the proxy retried the request on a fresh connection");
  assert.equal(requests, 2);
  await stillServes(proxy.http!.port);
});

Deno.test("fault: a CONNECT upstream that accepts and never answers is closed by the idle timeout", async () => {
  let upstreamClosed = false;
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    await readAll(conn, 10_000).catch(() => {});
    upstreamClosed = true;
  });
  await using proxy = await proxyFor({ allow: ["allowed.test", "other.test"] }, {
    names: NAMES,
    limits: { idleTimeoutMs: 300 },
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  try {
    await send(conn, `CONNECT allowed.test:${upstream.port} HTTP/1.1\r\n\r\n`);
    const head = await readUntil(conn, (t) => t.includes("\r\n\r\n"));
    assert.ok(head.startsWith("HTTP/1.1 200"), head);
    await send(conn, "hello?");
    // Only the idle-tunnel timeout applies to a tunnel: no 504 is written into it, the tunnel just closes.
    assert.equal(await readAll(conn, 5000), "");
  } finally {
    conn.close();
  }
  for (let i = 0; i < 100 && !upstreamClosed; i++) await delay(20);
  assert.ok(upstreamClosed);
  await stillServes(proxy.http!.port);
});

Deno.test("fault: the client disappears in the middle of a tunnel; the proxy closes the upstream side", async () => {
  let upstreamEnded: string | null = null;
  let received = 0;
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) {
          upstreamEnded = "eof";
          return;
        }
        received += n;
        // Keep the client's receive buffer full so its close() resets.
        await send(conn, new Uint8Array(n));
      }
    } catch (error) {
      upstreamEnded = error instanceof Error ? error.name : "error";
    }
  });
  await using proxy = await proxyFor({ allow: ["allowed.test", "other.test"] }, { names: NAMES });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  await send(conn, `CONNECT allowed.test:${upstream.port} HTTP/1.1\r\n\r\n`);
  const head = await readUntil(conn, (t) => t.includes("\r\n\r\n"));
  assert.ok(head.startsWith("HTTP/1.1 200"), head);
  await send(conn, new Uint8Array(300_000));
  for (let i = 0; i < 100 && received < 300_000; i++) await delay(10);
  conn.close(); // With echoed bytes unread: a reset.
  for (let i = 0; i < 150 && upstreamEnded === null; i++) await delay(20);
  assert.notEqual(upstreamEnded, null, "the upstream side of the tunnel stayed open");
  await stillServes(proxy.http!.port);
});

Deno.test("fault: a client that disconnects mid-request-head leaves nothing open", async () => {
  await using upstream = fakeServer("127.0.0.2", respondWith("never"));
  await using proxy = await proxyFor({ allow: ["allowed.test", "other.test"] }, { names: NAMES });
  for (let i = 0; i < 20; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
    await send(conn, `GET http://allowed.test:${upstream.port}/ HTTP/1.1\r\nHost: allo`);
    conn.close();
  }
  assert.equal(upstream.accepted, 0);
  const text = await exchange(
    proxy.http!.port,
    `GET http://allowed.test:${upstream.port}/ HTTP/1.1\r\nHost: allowed.test:${upstream.port}\r\nConnection: close\r\n\r\n`,
    { timeoutMs: 5000 },
  );
  assert.ok(completeResponse(text) && parseResponse(text).body === "never", text);
});

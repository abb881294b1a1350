import assert from "node:assert/strict";
import type { DecisionEvent } from "../proxy/server.ts";
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
  serveConnections,
} from "./proxy_helpers.ts";

const NAMES = { "allowed.test": ["127.0.0.2"], "other.test": ["127.0.0.3"] };

Deno.test("proxy forwards an absolute-form GET to the checked address in origin-form", async () => {
  await using upstream = fakeServer("127.0.0.2", respondWith("$HEAD"));
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  const text = await exchange(
    proxy.http!.port,
    `GET http://allowed.test:${upstream.port}/x?y HTTP/1.1\r\nHost: allowed.test:${upstream.port}\r\n` +
      `Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\nConnection: close, X-Hop\r\n` +
      `X-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Keep: 2\r\n\r\n`,
  );
  const response = parseResponse(text);
  assert.equal(response.status, 200, text);
  const forwarded: string = JSON.parse(response.body);
  const lines = forwarded.split("\r\n");
  assert.equal(lines[0], "GET /x?y HTTP/1.1");
  // Hop-by-hop fields, those named in Connection and proxy credentials are gone; nothing is added.
  assert.deepEqual(lines.slice(1), [`Host: allowed.test:${upstream.port}`, "X-Keep: 2"]);
  assert.equal(response.headers.get("connection"), "close");
  assert.equal(upstream.accepted, 1);
});

Deno.test("proxy keeps both sides alive across several requests", async () => {
  await using upstream = fakeServer("127.0.0.2", respondWith("reply to $REQUEST"));
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  try {
    for (let i = 0; i < 5; i++) {
      const body = i % 2 === 0 ? "" : "hello";
      const method = i % 2 === 0 ? "GET" : "POST";
      await send(
        conn,
        `${method} http://allowed.test:${upstream.port}/r${i} HTTP/1.1\r\nHost: allowed.test:${upstream.port}\r\n` +
          (body === "" ? "" : `Content-Length: ${body.length}\r\n`) + `\r\n${body}`,
      );
      const response = parseResponse(await readUntil(conn, completeResponse));
      assert.equal(response.status, 200);
      assert.equal(response.body, `reply to ${method} /r${i} HTTP/1.1`);
    }
  } finally {
    conn.close();
  }
  assert.equal(upstream.accepted, 1, "one upstream connection carried all five requests");
});

Deno.test("proxy relays chunked, close-delimited and HEAD responses with correct framing", async () => {
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    const buf = new Uint8Array(4096);
    let pending = "";
    for (let i = 0;; i++) {
      while (!pending.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) return;
        pending += new TextDecoder().decode(buf.subarray(0, n));
      }
      const head = pending.slice(0, pending.indexOf("\r\n\r\n"));
      pending = pending.slice(pending.indexOf("\r\n\r\n") + 4);
      if (head.startsWith("HEAD")) {
        await send(conn, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
      } else if (head.includes("/chunked")) {
        await send(
          conn,
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
      } else {
        await send(conn, "HTTP/1.1 200 OK\r\n\r\nuntil close");
        return;
      }
    }
  });
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  const base = `http://allowed.test:${upstream.port}`;
  const host = `Host: allowed.test:${upstream.port}\r\n`;
  try {
    await send(conn, `HEAD ${base}/ HTTP/1.1\r\n${host}\r\n`);
    const head = await readUntil(conn, (t) => t.includes("\r\n\r\n"));
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    await send(conn, `GET ${base}/chunked HTTP/1.1\r\n${host}\r\n`);
    const chunked = await readUntil(conn, (t) => t.endsWith("0\r\n\r\n"));
    assert.equal(parseResponse(chunked).body, "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    await send(conn, `GET ${base}/close HTTP/1.1\r\n${host}\r\n`);
    const closing = parseResponse(await readAll(conn));
    assert.equal(closing.body, "until close");
    assert.equal(closing.headers.get("connection"), "close");
  } finally {
    conn.close();
  }
});

Deno.test("proxy answers a blocked request with 403, x-proxy-error and a JSON body, and never connects", async () => {
  await using upstream = fakeServer("127.0.0.3", respondWith("should not happen"));
  const events: DecisionEvent[] = [];
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, {
    names: NAMES,
    onDecision: (e) => events.push(e),
    command: ["curl", "-s"],
  });
  const text = await exchange(
    proxy.http!.port,
    `GET http://other.test:${upstream.port}/ HTTP/1.1\r\nHost: other.test:${upstream.port}\r\n\r\n`,
  );
  const response = parseResponse(text);
  assert.equal(response.status, 403);
  assert.equal(response.headers.get("x-proxy-error"), "blocked-by-allowlist");
  const body = JSON.parse(response.body);
  assert.equal(body.status, 403);
  assert.equal(body.host, "other.test");
  assert.equal(body.reason, "not_allowed");
  assert.equal(body.decision, "deny");
  assert.equal(body.protocol, "http");
  assert.equal(body.port, upstream.port);
  assert.equal(body.message, "Domain not in allowlist");
  assert.ok("source" in body);
  assert.equal(upstream.accepted, 0);
  assert.equal(events.length, 1);
  assert.equal(events[0].decision, "deny");
  assert.equal(events[0].method, "GET");
  assert.equal(events[0].command, "curl -s");
  assert.match(events[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

Deno.test("proxy refuses malformed and ambiguous requests with 400 and never connects", async (t) => {
  await using upstream = fakeServer("127.0.0.2", respondWith("should not happen"));
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  const p = upstream.port;
  const target = `http://allowed.test:${p}/`;
  const cases: [string, string][] = [
    ["Host mismatch", `GET ${target} HTTP/1.1\r\nHost: other.test:${p}\r\n\r\n`],
    ["Host port mismatch", `GET ${target} HTTP/1.1\r\nHost: allowed.test:1\r\n\r\n`],
    ["missing Host", `GET ${target} HTTP/1.1\r\n\r\n`],
    [
      "two Host headers",
      `GET ${target} HTTP/1.1\r\nHost: allowed.test:${p}\r\nHost: allowed.test:${p}\r\n\r\n`,
    ],
    [
      "CL and TE",
      `POST ${target} HTTP/1.1\r\nHost: allowed.test:${p}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    ],
    [
      "conflicting CL",
      `POST ${target} HTTP/1.1\r\nHost: allowed.test:${p}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
    ],
    [
      "NUL in host",
      `GET http://allowed.test\x00.evil:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`,
    ],
    ["NUL in Host header", `GET ${target} HTTP/1.1\r\nHost: allowed.test\x00:${p}\r\n\r\n`],
    [
      "control byte in target",
      `GET http://allowed.test:${p}/\x01 HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`,
    ],
    ["obs-fold", `GET ${target} HTTP/1.1\r\nHost: allowed.test:${p}\r\nX-A: 1\r\n 2\r\n\r\n`],
    ["bad method token", `GE{T ${target} HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`],
    ["bad version", `GET ${target} HTTP/1.7\r\nHost: allowed.test:${p}\r\n\r\n`],
    ["origin-form to the proxy", `GET / HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`],
    ["userinfo", `GET http://user@allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`],
    [
      "percent-encoded host",
      `GET http://allowed%2etest:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`,
    ],
    [
      "oversize head",
      `GET ${target} HTTP/1.1\r\nHost: allowed.test:${p}\r\nX-Big: ${"a".repeat(70_000)}\r\n\r\n`,
    ],
    [
      "too many headers",
      `GET ${target} HTTP/1.1\r\nHost: allowed.test:${p}\r\n${"X-N: 1\r\n".repeat(120)}\r\n`,
    ],
  ];
  for (const [name, request] of cases) {
    await t.step(name, async () => {
      const response = parseResponse(await exchange(proxy.http!.port, request));
      assert.equal(response.status, 400, name);
    });
  }
  await t.step("bad chunk framing", async () => {
    const response = parseResponse(
      await exchange(
        proxy.http!.port,
        `POST ${target} HTTP/1.1\r\nHost: allowed.test:${p}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
      ),
    );
    assert.equal(response.status, 400);
  });
  // Only the chunked case got as far as connecting (its head was valid); every other refusal came first.
  assert.ok(upstream.accepted <= 1, `accepted ${upstream.accepted}`);
});

Deno.test("proxy judges odd IPv4 spellings in absolute-form as the address they mean", async (t) => {
  await using upstream = fakeServer("127.0.0.2", respondWith("ok"));
  await using proxy = await proxyFor({ allow: ["127.0.0.2"] }, { names: NAMES });
  const p = upstream.port;
  for (const spelling of ["0x7f.0.0.2", "0177.0.0.2", "2130706434", "127.2", "0x7f000002"]) {
    await t.step(`${spelling} is allowed as 127.0.0.2`, async () => {
      const response = parseResponse(
        await exchange(
          proxy.http!.port,
          `GET http://${spelling}:${p}/ HTTP/1.1\r\nHost: ${spelling}:${p}\r\nConnection: close\r\n\r\n`,
        ),
      );
      assert.equal(response.status, 200, spelling);
    });
  }
  for (const spelling of ["0x7f.0.0.1", "2130706433", "127.1", "017700000001"]) {
    await t.step(`${spelling} is refused as 127.0.0.1`, async () => {
      const response = parseResponse(
        await exchange(
          proxy.http!.port,
          `GET http://${spelling}:${p}/ HTTP/1.1\r\nHost: ${spelling}:${p}\r\n\r\n`,
        ),
      );
      assert.equal(response.status, 403, spelling);
      assert.equal(JSON.parse(response.body).host, "127.0.0.1");
    });
  }
});

Deno.test("proxy opens a CONNECT tunnel (200, empty body) and relays both ways", async () => {
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    const buf = new Uint8Array(100);
    const n = await conn.read(buf);
    await send(conn, "echo:" + new TextDecoder().decode(buf.subarray(0, n ?? 0)));
  });
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  try {
    await send(
      conn,
      `CONNECT allowed.test:${upstream.port} HTTP/1.1\r\nHost: allowed.test:${upstream.port}\r\n\r\n`,
    );
    const head = await readUntil(conn, (t) => t.includes("\r\n\r\n"));
    assert.equal(head, "HTTP/1.1 200 Connection Established\r\n\r\n");
    await send(conn, "ping");
    assert.equal(await readAll(conn), "echo:ping");
  } finally {
    conn.close();
  }
});

Deno.test("proxy refuses a CONNECT to a blocked host with 403", async () => {
  await using upstream = fakeServer("127.0.0.3", respondWith("no"));
  await using proxy = await proxyFor({ allow: ["allowed.test"], deny: ["other.test"] }, {
    names: NAMES,
  });
  const response = parseResponse(
    await exchange(
      proxy.http!.port,
      `CONNECT other.test:${upstream.port} HTTP/1.1\r\nHost: other.test:${upstream.port}\r\n\r\n`,
    ),
  );
  assert.equal(response.status, 403);
  assert.equal(response.headers.get("x-proxy-error"), "blocked-by-denylist");
  assert.equal(JSON.parse(response.body).protocol, "https-connect");
  assert.equal(upstream.accepted, 0);
});

Deno.test("proxy refuses its own listener as a target, however it is spelled", async (t) => {
  await using proxy = await proxyFor(
    { allow: ["127.0.0.1", "localhost", "self.test", "0.0.0.0"] },
    {
      names: { "self.test": ["127.0.0.1"] },
    },
  );
  const own = proxy.http!.port;
  const socks = proxy.socks!.port;
  for (
    const target of [`127.0.0.1:${own}`, `self.test:${own}`, `127.0.0.1:${socks}`, `0.0.0.0:${own}`]
  ) {
    await t.step(target, async () => {
      const response = parseResponse(
        await exchange(own, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`),
      );
      assert.equal(response.status, 403);
      const body = JSON.parse(response.body);
      assert.equal(body.reason, "own_listener");
      assert.match(body.detail, /own listener/);
    });
  }
});

Deno.test("proxy: a server on another loopback address that happens to share the proxy's port number is not the proxy's own listener", async () => {
  await using proxy = await proxyFor({ allow: ["127.0.0.2"] });
  const own = proxy.http!.port;
  // The proxy listens on 127.0.0.1 only: 127.0.0.2 with the same port is another socket.
  const listener = Deno.listen({ hostname: "127.0.0.2", port: own });
  const served = serveConnections(listener, respondWith("other"));
  try {
    const response = parseResponse(
      await exchange(
        own,
        `GET http://127.0.0.2:${own}/ HTTP/1.1\r\nHost: 127.0.0.2:${own}\r\nConnection: close\r\n\r\n`,
      ),
    );
    assert.equal(response.status, 200, response.body);
    assert.equal(response.body, "other");
    assert.equal(served.accepted(), 1);
  } finally {
    await served.close();
  }
});

Deno.test("limited mode: GET passes, POST and websocket upgrades are refused, CONNECT needs MITM", async () => {
  await using upstream = fakeServer("127.0.0.2", respondWith("ok"));
  await using proxy = await proxyFor({ allow: ["allowed.test"], mode: "limited" }, {
    names: NAMES,
  });
  const p = upstream.port;
  const host = `Host: allowed.test:${p}\r\n`;
  const get = parseResponse(
    await exchange(
      proxy.http!.port,
      `GET http://allowed.test:${p}/ HTTP/1.1\r\n${host}Connection: close\r\n\r\n`,
    ),
  );
  assert.equal(get.status, 200);
  const before = upstream.accepted;
  const post = parseResponse(
    await exchange(
      proxy.http!.port,
      `POST http://allowed.test:${p}/ HTTP/1.1\r\n${host}Content-Length: 2\r\n\r\nhi`,
    ),
  );
  assert.equal(post.status, 403);
  assert.equal(post.headers.get("x-proxy-error"), "blocked-by-method-policy");
  assert.equal(JSON.parse(post.body).reason, "method_not_allowed");
  const lower = parseResponse(
    await exchange(proxy.http!.port, `get http://allowed.test:${p}/ HTTP/1.1\r\n${host}\r\n`),
  );
  assert.equal(lower.status, 403, "methods are exact, case-sensitive tokens");
  const ws = parseResponse(
    await exchange(
      proxy.http!.port,
      `GET http://allowed.test:${p}/ws HTTP/1.1\r\n${host}Connection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ),
  );
  assert.equal(ws.status, 403);
  assert.equal(JSON.parse(ws.body).reason, "method_not_allowed");
  const h2c = parseResponse(
    await exchange(
      proxy.http!.port,
      `GET http://allowed.test:${p}/ HTTP/1.1\r\n${host}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`,
    ),
  );
  assert.equal(h2c.status, 403);
  const connect = parseResponse(
    await exchange(proxy.http!.port, `CONNECT allowed.test:${p} HTTP/1.1\r\n${host}\r\n`),
  );
  assert.equal(connect.status, 403);
  assert.equal(connect.headers.get("x-proxy-error"), "blocked-by-mitm-required");
  assert.equal(upstream.accepted, before, "no refused request reached the upstream");
});

Deno.test("limited mode with a MITM handler: CONNECT gets 200 and the handler owns the tunnel", async () => {
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    const buf = new Uint8Array(100);
    const n = await conn.read(buf);
    await send(conn, "upstream saw " + new TextDecoder().decode(buf.subarray(0, n ?? 0)));
  });
  const seen: { host: string; port: number; events: DecisionEvent[] } = {
    host: "",
    port: 0,
    events: [],
  };
  await using proxy = await proxyFor({ allow: ["allowed.test"], mode: "limited" }, {
    names: NAMES,
    mitm: {
      async handleTunnel(client, target, context) {
        seen.host = target.host;
        seen.port = target.port;
        const ask = (method: string, host: string) =>
          context.decide({
            method,
            host,
            port: target.port,
            upgrade: false,
            body: false,
            malformed: null,
          }).then((verdict) => verdict.event);
        seen.events.push(await ask("POST", target.host), await ask("GET", "evil.test"));
        seen.events.push(await ask("GET", target.host));
        // Stand-in for TLS: relay the first client bytes to the real upstream.
        const buf = new Uint8Array(100);
        const n = await client.read(buf);
        const up = await context.connect();
        await up.write(buf.subarray(0, n ?? 0));
        const m = await up.read(buf);
        await client.write(buf.subarray(0, m ?? 0));
        up.close();
        client.close();
      },
    },
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  try {
    // The first tunnel bytes arrive together with the CONNECT head: they must not be lost.
    await send(
      conn,
      `CONNECT allowed.test:${upstream.port} HTTP/1.1\r\nHost: allowed.test:${upstream.port}\r\n\r\nhello`,
    );
    const text = await readAll(conn);
    assert.equal(text, "HTTP/1.1 200 Connection Established\r\n\r\nupstream saw hello");
  } finally {
    conn.close();
  }
  assert.equal(seen.host, "allowed.test");
  assert.deepEqual(seen.events.map((e) => [e.method, e.decision, e.reason]), [
    ["POST", "deny", "method_not_allowed"],
    ["GET", "deny", "host_mismatch"],
    ["GET", "allow", "allowed"],
  ]);
});

Deno.test("proxy asks on every miss, waits for the answer and lets an allow admit one request", async () => {
  await using upstream = fakeServer("127.0.0.3", respondWith("ok"));
  const asked: string[] = [];
  await using proxy = await proxyFor({ allow: ["allowed.test"], "allow-local-binding": true }, {
    names: NAMES,
    askOnMiss: async (miss) => {
      asked.push(`${miss.host}:${miss.protocol}`);
      await new Promise((r) => setTimeout(r, 20));
      return miss.host === "other.test" ? "allow" : "deny";
    },
  });
  const p = upstream.port;
  for (let i = 0; i < 2; i++) {
    const ok = parseResponse(
      await exchange(
        proxy.http!.port,
        `GET http://other.test:${p}/ HTTP/1.1\r\nHost: other.test:${p}\r\nConnection: close\r\n\r\n`,
      ),
    );
    assert.equal(ok.status, 200);
  }
  const no = parseResponse(
    await exchange(
      proxy.http!.port,
      `GET http://nope.test:${p}/ HTTP/1.1\r\nHost: nope.test:${p}\r\n\r\n`,
    ),
  );
  assert.equal(no.status, 403);
  // The proxy remembers nothing: "allow once" must mean once, so each miss is asked again.
  assert.deepEqual(asked, ["other.test:http", "other.test:http", "nope.test:http"]);
});

Deno.test("proxy passes a websocket upgrade through in full mode", async () => {
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    await readUntil(conn, (t) => t.includes("\r\n\r\n"));
    await send(
      conn,
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframe-from-server",
    );
    const buf = new Uint8Array(100);
    const n = await conn.read(buf);
    await send(conn, "|got " + new TextDecoder().decode(buf.subarray(0, n ?? 0)));
  });
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  try {
    await send(
      conn,
      `GET http://allowed.test:${upstream.port}/ws HTTP/1.1\r\nHost: allowed.test:${upstream.port}\r\n` +
        `Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
    );
    const first = await readUntil(conn, (t) => t.includes("frame-from-server"));
    assert.match(first, /^HTTP\/1\.1 101 /);
    await send(conn, "frame-from-client");
    assert.equal(await readAll(conn), "|got frame-from-client");
  } finally {
    conn.close();
  }
});

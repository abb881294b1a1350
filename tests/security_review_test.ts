/**
 * Regression probes from a hostile-client review of the policy engine and
 * the proxy: each test is a bypass or fail-open path that was real, driven
 * over loopback sockets with raw bytes. A fake upstream counts its accepts
 * where "never connected" is the point.
 */
import assert from "node:assert/strict";
import type { DecisionEvent } from "../proxy/decision_log.ts";
import { createLeafIssuer } from "../proxy/leaf_certs.ts";
import { createMitmHandler } from "../proxy/mitm.ts";
import {
  exchange,
  fakeServer,
  parseResponse,
  proxyFor,
  readFramedResponse,
  respondWith,
  send,
  serveConnections,
  testCa,
  withTimeout,
} from "./proxy_helpers.ts";

Deno.test("security review: a deny rule on an IPv4 address also stops its IPv4-mapped IPv6 spelling", async () => {
  await using upstream = fakeServer("127.0.0.3", respondWith("secret"));
  await using proxy = await proxyFor({
    allow: ["*"],
    deny: ["127.0.0.3"],
    "allow-local-binding": true,
  });
  const p = upstream.port;
  for (const host of ["[::ffff:127.0.0.3]", "[::ffff:7f00:3]", "[0:0:0:0:0:ffff:7f00:0003]"]) {
    const response = parseResponse(
      await exchange(
        proxy.http!.port,
        `GET http://${host}:${p}/ HTTP/1.1\r\nHost: ${host}:${p}\r\nConnection: close\r\n\r\n`,
      ),
    );
    assert.equal(response.status, 403, host);
    assert.equal(JSON.parse(response.body).reason, "denied", host);
  }
  // SOCKS5 with the IPv6 address type: ::ffff:127.0.0.3.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.socks!.port });
  try {
    const v6 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 3];
    await send(conn, new Uint8Array([5, 1, 0, 5, 1, 0, 4, ...v6, p >> 8, p & 0xff]));
    const reply = new Uint8Array(12);
    let got = 0;
    while (got < 4) {
      const n = await withTimeout(conn.read(reply.subarray(got)), 5000, "SOCKS5 reply");
      if (n === null) break;
      got += n;
    }
    assert.deepEqual([...reply.subarray(0, 4)], [5, 0, 5, 2]);
  } finally {
    conn.close();
  }
  assert.equal(upstream.accepted, 0);
});

Deno.test("security review: a host allowed by askOnMiss is still refused when it resolves to a non-public address", async () => {
  await using upstream = fakeServer("127.0.0.3", respondWith("internal"));
  const asked: string[] = [];
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, {
    names: { "asked.test": ["127.0.0.3"] },
    askOnMiss: (miss) => {
      asked.push(miss.host);
      return Promise.resolve("allow");
    },
  });
  const p = upstream.port;
  const response = parseResponse(
    await exchange(
      proxy.http!.port,
      `GET http://asked.test:${p}/ HTTP/1.1\r\nHost: asked.test:${p}\r\nConnection: close\r\n\r\n`,
    ),
  );
  assert.deepEqual(asked, ["asked.test"]);
  assert.equal(response.status, 403);
  assert.equal(JSON.parse(response.body).reason, "not_allowed_local");
  assert.equal(upstream.accepted, 0);
});

Deno.test("security review: limited mode refuses a request body on GET, HEAD and OPTIONS (absolute-form)", async () => {
  await using upstream = fakeServer("127.0.0.2", respondWith("$HEAD"));
  await using proxy = await proxyFor({ allow: ["allowed.test"], mode: "limited" }, {
    names: { "allowed.test": ["127.0.0.2"] },
  });
  const p = upstream.port;
  const requests = [
    `GET http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nContent-Length: 6\r\n\r\nsecret`,
    `HEAD http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecret\r\n0\r\n\r\n`,
    `OPTIONS http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nContent-Length: 6\r\n\r\nsecret`,
  ];
  for (const request of requests) {
    const response = parseResponse(await exchange(proxy.http!.port, request));
    assert.equal(response.status, 403, request);
    assert.equal(JSON.parse(response.body).reason, "method_not_allowed", request);
  }
  assert.equal(upstream.accepted, 0);
  // A GET without a body still goes through.
  const ok = parseResponse(
    await exchange(
      proxy.http!.port,
      `GET http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    ),
  );
  assert.equal(ok.status, 200);
});

Deno.test("security review: limited mode refuses a GET body sent to an x-unix-socket", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/s.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    const served = serveConnections(listener, respondWith("ok"));
    try {
      await using proxy = await proxyFor({ "allow-unix-socket": [path], mode: "limited" });
      const response = parseResponse(
        await exchange(
          proxy.http!.port,
          `GET http://docker/ HTTP/1.1\r\nHost: docker\r\nx-unix-socket: ${path}\r\n` +
            `Content-Length: 6\r\n\r\nsecret`,
        ),
      );
      assert.equal(response.status, 403);
      assert.equal(JSON.parse(response.body).reason, "method_not_allowed");
      assert.equal(served.accepted(), 0);
    } finally {
      await served.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("security review: a request refused inside a MITM tunnel is logged once, as a deny, never as allowed", async () => {
  const host = "upstream.test";
  const mitmCa = await testCa("review-mitm");
  const upstreamCa = await testCa("review-upstream");
  const leaf = createLeafIssuer(upstreamCa).certificateFor(host);
  let served = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.3", port: 0, cert: leaf.chainPem, key: leaf.keyPem, onListen() {} },
    () => {
      served++;
      return new Response("hello\n");
    },
  );
  const events: DecisionEvent[] = [];
  const proxy = await proxyFor(
    { allow: [host], mode: "limited", mitm: true, "allow-local-binding": true },
    {
      names: { [host]: ["127.0.0.3"] },
      mitm: createMitmHandler({
        ca: mitmCa,
        upstreamCaCerts: [upstreamCa.certPem],
        systemRoots: false,
      }),
      onDecision: (event) => events.push(event),
      socks: null,
    },
  );
  try {
    const authority = `${host}:${server.addr.port}`;
    const refused = [
      `GET / HTTP/1.1\r\nHost: ${authority}\r\nContent-Length: 4\r\n\r\nleak`,
      `GET /ws HTTP/1.1\r\nHost: ${authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
      `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`,
    ];
    for (const request of refused) {
      const tcp = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
      let conn: Deno.Conn = tcp;
      try {
        await send(tcp, `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
        let head = "";
        const one = new Uint8Array(1);
        while (!head.endsWith("\r\n\r\n")) {
          const n = await withTimeout(tcp.read(one), 10_000, "CONNECT answer");
          if (n === null) break;
          head += String.fromCharCode(one[0]);
        }
        assert.match(head, /^HTTP\/1\.1 200 /);
        conn = await Deno.startTls(tcp, { hostname: host, caCerts: [mitmCa.certPem] });
        await send(conn, request);
        const state = { buffered: "" };
        const response = await readFramedResponse(conn, state);
        assert.ok(response !== null && response.status >= 400, request);
      } finally {
        try {
          conn.close();
        } catch {
          // Closed by the proxy.
        }
      }
    }
  } finally {
    await proxy.close();
    await server.shutdown();
  }
  assert.equal(served, 0);
  const inner = events.filter((e) => e.method !== null);
  assert.deepEqual(
    inner.map((e) => `${e.method} ${e.decision} ${e.reason}`),
    [
      "GET deny method_not_allowed",
      "GET deny method_not_allowed",
      "CONNECT deny method_not_allowed",
    ],
  );
});

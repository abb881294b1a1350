/**
 * Regression probes for request and response smuggling through the HTTP
 * proxy: a second request hidden in a body or behind ambiguous framing must
 * either be refused (400) or be decided by the policy like any request;
 * it must never reach an upstream undecided. The plain CL+TE, conflicting
 * CL and obs-fold refusals are in tests/proxy_http_test.ts; these are the
 * variants around them.
 */
import assert from "node:assert/strict";
import type { DecisionEvent } from "../proxy/server.ts";
import {
  exchange,
  fakeServer,
  parseResponse,
  proxyFor,
  readAll,
  readUntil,
  send,
} from "./proxy_helpers.ts";

const NAMES = { "allowed.test": ["127.0.0.2"] };
const decoder = new TextDecoder();

/** An upstream that records every byte it receives and answers each head with `answer`. */
function recordingUpstream(answer: string) {
  const received: string[] = [];
  const server = fakeServer("127.0.0.2", async (conn) => {
    const buf = new Uint8Array(65536);
    let text = "";
    const index = received.push("") - 1;
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return;
      text += decoder.decode(buf.subarray(0, n));
      received[index] = text;
      if (text.includes("\r\n\r\n")) {
        await send(conn, answer);
        return;
      }
    }
  });
  return { server, received };
}

Deno.test("smuggling: framing variants the parser defines as ambiguous get 400 and never reach the upstream", async (t) => {
  const { server, received } = recordingUpstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  await using upstream = server;
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  const p = upstream.port;
  const head = `POST http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\n`;
  const smuggled = `GET http://allowed.test:${p}/admin HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`;
  const cases: [string, string][] = [
    [
      "TE.CL",
      `${head}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n${smuggled}\r\n0\r\n\r\n`,
    ],
    ["TE with identity", `${head}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`],
    [
      "TE gzip last",
      `${head}Transfer-Encoding: gzip, chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n`,
    ],
    [
      "TE in HTTP/1.0",
      head.replace("HTTP/1.1", "HTTP/1.0") + `Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    ],
    [
      "TE with space before colon",
      `${head}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    ],
    ["CL with a sign", `${head}Content-Length: +5\r\n\r\nhello`],
    ["CL list that disagrees", `${head}Content-Length: 5, 50\r\n\r\nhello`],
    ["bare LF between headers", `${head}Content-Length: 5\nX: y\r\n\r\nhello`],
    ["bare CR in a header", `${head}X: a\rContent-Length: 50\r\n\r\nhello`],
    ["chunk size with a sign", `${head}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n`],
    [
      "chunk size overflow",
      `${head}Transfer-Encoding: chunked\r\n\r\n100000000000000005\r\nhello\r\n0\r\n\r\n`,
    ],
    ["chunk line with bare LF", `${head}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n`],
  ];
  for (const [name, request] of cases) {
    await t.step(name, async () => {
      const before = received.join("");
      const response = parseResponse(await exchange(proxy.http!.port, request));
      assert.equal(response.status, 400, name);
      // Nothing of the smuggled request (and for head refusals nothing at all) reached the upstream.
      assert.ok(!received.join("").slice(before.length).includes("/admin"), name);
    });
  }
  await t.step(
    "bare LF ending the head: the bare LFs are control bytes of one long head",
    async () => {
      const before = received.join("").length;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
      try {
        await send(conn, `${head}Content-Length: 5\n\n${smuggled}`);
        await conn.closeWrite();
        assert.equal(parseResponse(await readAll(conn)).status, 400);
      } finally {
        conn.close();
      }
      assert.equal(received.join("").length, before);
    },
  );
});

Deno.test("smuggling: a request hidden in a Content-Length body stays body bytes, decided once", async () => {
  const { server, received } = recordingUpstream("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  await using upstream = server;
  const events: DecisionEvent[] = [];
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, {
    names: NAMES,
    onDecision: (e) => events.push(e),
  });
  const p = upstream.port;
  const inner = `GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n`;
  const request = `POST http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\n` +
    `Content-Length: ${inner.length}\r\nConnection: close\r\n\r\n${inner}`;
  const response = parseResponse(await exchange(proxy.http!.port, request));
  assert.equal(response.status, 200);
  assert.equal(upstream.accepted, 1);
  assert.ok(received[0].endsWith(`\r\n\r\n${inner}`), JSON.stringify(received[0]));
  assert.deepEqual(events.map((e) => [e.host, e.decision]), [["allowed.test", "allow"]]);
});

Deno.test("smuggling: a request after the last chunk is a new request the policy decides (403), never forwarded", async () => {
  const { server, received } = recordingUpstream("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  await using upstream = server;
  const events: DecisionEvent[] = [];
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, {
    names: NAMES,
    onDecision: (e) => events.push(e),
  });
  const p = upstream.port;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  try {
    await send(
      conn,
      `POST http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `5\r\nhello\r\n0\r\n\r\n` +
        `GET http://denied.test:${p}/ HTTP/1.1\r\nHost: denied.test:${p}\r\n\r\n`,
    );
    const text = await readAll(conn);
    const second = text.indexOf("HTTP/1.1 403");
    assert.ok(text.startsWith("HTTP/1.1 200"), text);
    assert.ok(second > 0, text);
  } finally {
    conn.close();
  }
  assert.deepEqual(events.map((e) => [e.host, e.decision]), [
    ["allowed.test", "allow"],
    ["denied.test", "deny"],
  ]);
  assert.equal(upstream.accepted, 1);
  assert.ok(!received.join("").includes("denied.test"));
});

Deno.test("smuggling: a response with a status below 100 is refused (502), not taken for an interim 1xx", async () => {
  // Before the fix, "000" passed as a 1xx: the proxy forwarded "HTTP/1.1 0 X" and then the
  // upstream's second, chosen response, letting an upstream desynchronize the client.
  await using upstream = fakeServer("127.0.0.2", async (conn) => {
    await readUntil(conn, (t) => t.includes("\r\n\r\n"));
    await send(conn, "HTTP/1.1 000 X\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nspoof");
  });
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  const p = upstream.port;
  const text = await exchange(
    proxy.http!.port,
    `GET http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`,
  );
  assert.equal(parseResponse(text).status, 502, text);
  assert.ok(!text.includes("spoof"), text);
});

Deno.test("smuggling: a response with both Content-Length and Transfer-Encoding is refused (502), even an empty TE", async (t) => {
  // The empty Transfer-Encoding case was found by the fuzzer: it was framed by Content-Length
  // and forwarded with both fields, which clients read in different ways.
  for (const te of ["chunked", ""]) {
    await t.step(`Transfer-Encoding: "${te}"`, async () => {
      await using upstream = fakeServer("127.0.0.2", async (conn) => {
        await readUntil(conn, (t) => t.includes("\r\n\r\n"));
        await send(
          conn,
          `HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: ${te}\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nspoof`,
        );
      });
      await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
      const p = upstream.port;
      const text = await exchange(
        proxy.http!.port,
        `GET http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\n\r\n`,
      );
      assert.equal(parseResponse(text).status, 502, text);
      assert.ok(!text.includes("spoof"), text);
    });
  }
});

import assert from "node:assert/strict";
import {
  completeResponse,
  fakeServer,
  parseResponse,
  proxyFor,
  readUntil,
  respondWith,
  send,
} from "./proxy_helpers.ts";

Deno.test("proxy forwards an absolute-form GET to the checked address", async () => {
  await using upstream = fakeServer("127.0.0.2", respondWith("got $REQUEST"));
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, {
    names: { "allowed.test": ["127.0.0.2"] },
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
  try {
    await send(
      conn,
      `GET http://allowed.test:${upstream.port}/x?y HTTP/1.1\r\nHost: allowed.test:${upstream.port}\r\n\r\n`,
    );
    const text = await readUntil(conn, completeResponse);
    const response = parseResponse(text);
    assert.equal(response.status, 200, text);
    assert.equal(response.body, "got GET /x?y HTTP/1.1");
  } finally {
    conn.close();
  }
  assert.equal(upstream.accepted, 1);
});

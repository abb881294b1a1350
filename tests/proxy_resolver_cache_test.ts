/**
 * The proxy with a caching resolver: it connects to exactly the address the
 * policy checked (a cached one, not a newer DNS answer), asks again only
 * after the entry expired, checks every answer (cached or fresh) against the
 * rules, and never looks up a refused name.
 */
import assert from "node:assert/strict";
import { createResolver } from "../proxy/resolver.ts";
import { startProxy } from "../proxy/server.ts";
import {
  configFor,
  exchange,
  parseResponse,
  respondWith,
  serveConnections,
  type ServedConnections,
} from "./proxy_helpers.ts";

/** Servers on 127.0.0.2 and 127.0.0.3 on one port, each answering with its own name. */
function serversOnOnePort(): { port: number; servers: ServedConnections[] } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = Deno.listen({ hostname: "127.0.0.2", port: 0 });
    let second: Deno.Listener;
    try {
      second = Deno.listen({ hostname: "127.0.0.3", port: first.addr.port });
    } catch {
      first.close();
      continue;
    }
    return {
      port: first.addr.port,
      servers: [
        serveConnections(first, respondWith("two")),
        serveConnections(second, respondWith("three")),
      ],
    };
  }
  throw new Error("No port free on both 127.0.0.2 and 127.0.0.3");
}

Deno.test("proxy with a caching resolver connects to the checked (cached) address and checks every new answer", async () => {
  const { port, servers } = serversOnOnePort();
  const answers = new Map([["moving.test", ["127.0.0.2"]]]);
  const calls: string[] = [];
  let clock = 1_000_000;
  const resolver = createResolver({
    lookup: (host) => {
      calls.push(host);
      const found = answers.get(host);
      return found === undefined
        ? Promise.reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" }))
        : Promise.resolve(found);
    },
    now: () => clock,
    cacheTtlMs: 60_000,
  });
  // An exact allow rule unlocks loopback for this name; 127.0.0.4 stays denied whatever resolves to it.
  const config = await configFor({ allow: ["moving.test"], deny: ["127.0.0.4", "no.test"] });
  await using proxy = await startProxy({
    config,
    resolver,
    http: { hostname: "127.0.0.1", port: 0 },
    socks: null,
  });
  const get = async (host: string) =>
    parseResponse(
      await exchange(
        proxy.http!.port,
        `GET http://${host}:${port}/ HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`,
      ),
    );
  try {
    assert.equal((await get("moving.test")).body, "two");
    // The name moves; within the entry's lifetime the proxy keeps connecting where it checked.
    answers.set("moving.test", ["127.0.0.3"]);
    assert.equal((await get("moving.test")).body, "two");
    assert.deepEqual(calls, ["moving.test"]);
    clock += 60_000;
    assert.equal((await get("moving.test")).body, "three");
    assert.deepEqual(calls, ["moving.test", "moving.test"]);
    // A new answer is checked like the first: a denied address is refused, not connected.
    answers.set("moving.test", ["127.0.0.4"]);
    clock += 60_000;
    const refused = await get("moving.test");
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get("x-proxy-error"), "blocked-by-denylist");
    // Refused names are never looked up.
    assert.equal((await get("no.test")).status, 403);
    assert.equal((await get("unknown.test")).status, 403);
    assert.deepEqual(calls, ["moving.test", "moving.test", "moving.test"]);
  } finally {
    await Promise.all(servers.map((server) => server.close()));
  }
});

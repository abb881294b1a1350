import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import { compileNetworkPolicy, decideHost } from "../policy/policy.ts";
import { configFor } from "../tests/proxy_helpers.ts";
import { createResolver, parseResolveFlags, ResolveError } from "./resolver.ts";

Deno.test("parseResolveFlags() collects HOST=ADDR values in canonical form", () => {
  const map = parseResolveFlags(["A.Test=127.0.0.1", "a.test=[::1],0x7f.2", "b.test.=10.0.0.1"]);
  assert.deepEqual([...map], [["a.test", ["127.0.0.1", "::1", "127.0.0.2"]], ["b.test", [
    "10.0.0.1",
  ]]]);
  assert.deepEqual([...parseResolveFlags(undefined)], []);
});

Deno.test("parseResolveFlags() throws a UsageError naming the bad value", () => {
  for (
    const bad of [
      "a.test",
      "=127.0.0.1",
      "a.test=",
      "a.test=nope",
      "127.0.0.1=10.0.0.1",
      "a b=1.2.3.4",
    ]
  ) {
    assert.throws(() => parseResolveFlags([bad]), (error: unknown) => {
      assert.ok(error instanceof UsageError, bad);
      assert.match(error.message, /^Invalid --resolve "/);
      assert.ok(error.message.includes(JSON.stringify(bad)), error.message);
      return true;
    });
  }
});

Deno.test("createResolver() answers overrides first and literals without a lookup", async () => {
  const resolve = createResolver({
    overrides: new Map([["Allowed.Test", ["127.0.0.2", "::ffff:7f00:3"]]]),
  });
  assert.deepEqual(await resolve("allowed.test."), ["127.0.0.2", "::ffff:127.0.0.3"]);
  assert.deepEqual(await resolve("0x7f.1"), ["127.0.0.1"]);
});

Deno.test("createResolver() rejects an override list that is empty or not addresses", async () => {
  const resolve = createResolver({
    overrides: new Map([["empty.test", []], ["bad.test", ["nope"]]]),
  });
  await assert.rejects(resolve("empty.test"), ResolveError);
  await assert.rejects(resolve("bad.test"), ResolveError);
});

Deno.test("createResolver() asks the system resolver (getaddrinfo, /etc/hosts) for localhost", async () => {
  const addresses = await createResolver()("localhost");
  assert.ok(addresses.length > 0);
  for (const address of addresses) {
    assert.ok(address === "127.0.0.1" || address === "::1" || address.startsWith("127."), address);
  }
});

/** A system lookup stand-in that answers from `answers` and counts its calls. */
function countingLookup(answers: Map<string, string[]>) {
  const calls: string[] = [];
  return {
    calls,
    lookup(host: string): Promise<string[]> {
      calls.push(host);
      const found = answers.get(host);
      return found === undefined
        ? Promise.reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" }))
        : Promise.resolve([...found]);
    },
  };
}

Deno.test("createResolver() reuses a system answer until it expires, then asks again", async () => {
  const answers = new Map([["cached.test", ["127.0.0.2"]]]);
  const system = countingLookup(answers);
  let clock = 1_000;
  const resolve = createResolver({ lookup: system.lookup, now: () => clock, cacheTtlMs: 5_000 });
  assert.deepEqual(await resolve("cached.test"), ["127.0.0.2"]);
  const second = await resolve("Cached.Test.");
  assert.deepEqual(second, ["127.0.0.2"]);
  second.push("10.0.0.1"); // A caller's copy: the cache keeps its own.
  clock += 4_999;
  assert.deepEqual(await resolve("cached.test"), ["127.0.0.2"]);
  assert.deepEqual(system.calls, ["cached.test"]);
  answers.set("cached.test", ["127.0.0.3"]);
  clock += 1;
  assert.deepEqual(await resolve("cached.test"), ["127.0.0.3"]);
  assert.deepEqual(system.calls, ["cached.test", "cached.test"]);
});

Deno.test("createResolver() shares one lookup between concurrent asks and caches no failure", async () => {
  const answers = new Map<string, string[]>();
  const system = countingLookup(answers);
  const resolve = createResolver({ lookup: system.lookup });
  const both = await Promise.allSettled([resolve("late.test"), resolve("late.test")]);
  assert.deepEqual(both.map((r) => r.status), ["rejected", "rejected"]);
  assert.equal(system.calls.length, 1);
  answers.set("late.test", ["127.0.0.2"]);
  assert.deepEqual(await resolve("late.test"), ["127.0.0.2"]);
  assert.equal(system.calls.length, 2);
  const off = createResolver({ lookup: system.lookup, cacheTtlMs: 0 });
  await off("late.test");
  await off("late.test");
  assert.equal(system.calls.length, 4);
});

Deno.test("createResolver() keeps at most cacheMaxEntries names, dropping the oldest", async () => {
  const system = countingLookup(new Map([["a.test", ["127.0.0.2"]], ["b.test", ["127.0.0.3"]]]));
  const resolve = createResolver({ lookup: system.lookup, cacheMaxEntries: 1 });
  await resolve("a.test");
  await resolve("b.test");
  await resolve("b.test");
  await resolve("a.test");
  assert.deepEqual(system.calls, ["a.test", "b.test", "a.test"]);
});

Deno.test("decideHost() with a caching resolver never looks up a refused name", async () => {
  const system = countingLookup(
    new Map([["ok.test", ["127.0.0.2"]], ["no.ok.test", ["127.0.0.2"]]]),
  );
  const resolver = createResolver({ lookup: system.lookup });
  const config = await configFor({
    allow: ["**.ok.test"],
    deny: ["no.ok.test"],
    "allow-local-binding": true,
  });
  const policy = compileNetworkPolicy(config.network);
  for (const host of ["no.ok.test", "other.test", "no.ok.test"]) {
    assert.equal((await decideHost(policy, host, { resolver })).decision, "deny", host);
  }
  assert.deepEqual(system.calls, []);
  for (let i = 0; i < 3; i++) {
    assert.equal((await decideHost(policy, "ok.test", { resolver })).decision, "allow");
  }
  assert.deepEqual(system.calls, ["ok.test"]);
});

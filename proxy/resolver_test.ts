import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
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

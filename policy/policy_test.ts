import assert from "node:assert/strict";
import fc from "fast-check";
import { ConfigError } from "../errors.ts";
import type { DomainRule, NetworkConfig } from "./types.ts";
import {
  compileNetworkPolicy,
  decideHost,
  decideMethod,
  type NetworkPolicy,
  tlsMarkingRule,
  warmNetworkPolicy,
} from "./policy.ts";
import { DENY_REASON_NAMES } from "./reasons.ts";
import type { Resolver } from "./types.ts";
import { domainRules, networkConfig } from "../tests/network_helpers.ts";

function network(
  rules: Partial<NetworkConfig> & { allow?: string[]; deny?: string[] },
): NetworkConfig {
  return networkConfig({
    enabled: rules.enabled ?? true,
    allowLocalBinding: rules.allowLocalBinding ?? false,
    domains: [...domainRules("allow", rules.allow ?? []), ...domainRules("deny", rules.deny ?? [])],
  });
}

function policy(rules: Parameters<typeof network>[0]): NetworkPolicy {
  return compileNetworkPolicy(network(rules));
}

/** A resolver that answers from a table and records every name it was asked. */
function countingResolver(table: Record<string, string[]>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const resolve = (host: string) => {
    calls.push(host);
    const answer = table[host];
    return answer === undefined
      ? Promise.reject(new Error(`Cannot resolve "${host}": ENOTFOUND`))
      : Promise.resolve([...answer]);
  };
  return Object.assign(resolve, { calls });
}

Deno.test("decideHost() makes zero lookups for refused hosts and exactly one for an allowed name", async () => {
  const p = policy({ allow: ["**.example.com", "10.0.0.1", "*"], deny: ["bad.example.com"] });
  const strict = policy({ allow: ["**.example.com"], deny: ["bad.example.com"] });
  const resolver = countingResolver({ "api.example.com": ["93.184.215.14"] });
  const refused: [NetworkPolicy, string][] = [
    [strict, "bad.example.com"],
    [strict, "other.test"],
    [strict, "does-not-resolve.invalid"],
    [strict, "127.0.0.1"],
    [strict, "localhost"],
    [strict, ""],
    [strict, "1.2.3.4.5"],
    [strict, "0x1g"],
    [p, "bad.example.com"],
    [p, "10.0.0.2"],
    [p, "::ffff:127.0.0.1"],
  ];
  for (const [pol, host] of refused) {
    const d = await decideHost(pol, host, { resolver });
    assert.equal(d.decision, "deny", host);
  }
  // Allowed IP literals need no lookup either.
  assert.equal((await decideHost(p, "8.8.8.8", { resolver })).decision, "allow");
  assert.equal((await decideHost(p, "10.0.0.1", { resolver })).decision, "allow");
  assert.deepEqual(resolver.calls, []);

  const d = await decideHost(strict, "API.Example.com.:443", { resolver });
  assert.deepEqual(resolver.calls, ["api.example.com"]);
  assert.deepEqual(d, {
    decision: "allow",
    reason: "allowed",
    host: "api.example.com",
    rule: "**.example.com",
    source: "test",
    addresses: ["93.184.215.14"],
  });
});

Deno.test("decideHost() checks every resolved address and carries them all", async () => {
  const p = policy({ allow: ["*.test", "exact.test"] });
  const resolver = countingResolver({
    "mixed.test": ["8.8.8.8", "::ffff:10.0.0.5"],
    "exact.test": ["8.8.4.4", "127.0.0.1", "8.8.4.4"],
    "two.test": ["8.8.8.8", "2606:4700:0:0:0:0:0:1111"],
    "bad.test": ["not-an-address"],
  });
  const mixed = await decideHost(p, "mixed.test", { resolver });
  assert.equal(mixed.reason, "not_allowed_local");
  assert.equal(mixed.rule, "*.test");
  assert.match(mixed.decision === "deny" ? mixed.detail : "", /10\.0\.0\.0\/8.*cannot unlock/);
  const exact = await decideHost(p, "exact.test", { resolver });
  assert.deepEqual(exact.decision === "allow" && exact.addresses, ["8.8.4.4", "127.0.0.1"]);
  assert.equal(exact.rule, "exact.test");
  const two = await decideHost(p, "two.test", { resolver });
  assert.deepEqual(two.decision === "allow" && two.addresses, ["8.8.8.8", "2606:4700::1111"]);
  const bad = await decideHost(p, "bad.test", { resolver });
  assert.equal(bad.reason, "resolve_failed");
});

Deno.test("decideHost() refuses an allowed name that does not resolve with reason resolve_failed", async () => {
  const p = policy({ allow: ["**.example.com"] });
  const d = await decideHost(p, "gone.example.com", { resolver: countingResolver({}) });
  assert.equal(d.decision, "deny");
  assert.equal(d.reason, "resolve_failed");
  assert.equal(d.rule, "**.example.com");
  assert.match(d.decision === "deny" ? d.detail : "", /^name did not resolve: .*ENOTFOUND/);
  const empty = await decideHost(p, "empty.example.com", { resolver: () => Promise.resolve([]) });
  assert.equal(empty.reason, "resolve_failed");
});

Deno.test("decideHost() fails closed when the resolver throws synchronously", async () => {
  const p = policy({ allow: ["*"] });
  const resolver: Resolver = () => {
    throw new TypeError("boom");
  };
  const d = await decideHost(p, "x.example.com", { resolver });
  assert.equal(d.decision, "deny");
  assert.equal(d.reason, "resolve_failed");
});

Deno.test("decideHost() refuses invalid and numeric-looking hosts without matching '*'", async () => {
  const p = policy({ allow: ["*"] });
  const resolver = countingResolver({});
  for (
    const host of [
      "1.2.3.4.5",
      "0x1g",
      "127.0.0.1x",
      "08.1",
      "a..b",
      "a b",
      "exa$mple.com",
      "bücher.de",
      "*",
      "[::1",
      "a:b:c",
      `${"a".repeat(64)}.com`,
    ]
  ) {
    const d = await decideHost(p, host, { resolver });
    assert.equal(d.decision, "deny", host);
    assert.equal(d.reason, "not_allowed", host);
  }
  assert.deepEqual(resolver.calls, []);
});

Deno.test("decideHost() lets allowLocalBinding reach loopback through a wildcard rule", async () => {
  const p = policy({ allow: ["*"], allowLocalBinding: true, deny: ["10.0.0.9"] });
  const resolver = countingResolver({ "dev.test": ["127.0.0.1"] });
  assert.equal((await decideHost(p, "127.0.0.1", { resolver })).decision, "allow");
  assert.equal((await decideHost(p, "dev.test", { resolver })).decision, "allow");
  assert.equal((await decideHost(p, "012.0.0.011", { resolver })).reason, "denied");
});

Deno.test("decideHost() holds an address deny rule for every name that resolves to that address", async () => {
  const resolver: Resolver = (name) =>
    Promise.resolve(name === "meta.test" ? ["169.254.169.254"] : ["::ffff:10.0.0.7", "8.8.8.8"]);
  const p = policy({
    allow: ["*"],
    deny: ["169.254.169.254", "10.0.0.7"],
    allowLocalBinding: true,
  });
  const meta = await decideHost(p, "meta.test", { resolver });
  assert.equal(meta.decision, "deny");
  assert.equal(meta.reason, "denied");
  assert.equal(meta.rule, "169.254.169.254");
  // Judged by the embedded IPv4 address, as literal hosts are.
  const mapped = await decideHost(p, "lan.test", { resolver });
  assert.equal(mapped.decision, "deny");
  assert.equal(mapped.rule, "10.0.0.7");
  // Without the deny rules the same names are allowed (local binding is on).
  const open = await decideHost(policy({ allow: ["*"], allowLocalBinding: true }), "meta.test", {
    resolver,
  });
  assert.equal(open.decision, "allow");
});

Deno.test("decideHost() matches an exact IP allow by address, not by spelling", async () => {
  const p = policy({ allow: ["127.0.0.1"] });
  const resolver = countingResolver({ "localhost": ["127.0.0.1"] });
  const d = await decideHost(p, "0x7f.1", { resolver });
  assert.deepEqual(d.decision === "allow" && d.addresses, ["127.0.0.1"]);
  assert.equal((await decideHost(p, "localhost", { resolver })).reason, "not_allowed_local");
  assert.equal((await decideHost(p, "::ffff:127.0.0.1", { resolver })).reason, "not_allowed_local");
});

Deno.test("decideHost() refuses everything when network is off", async () => {
  const p = policy({ allow: ["*"], enabled: false });
  const d = await decideHost(p, "example.com", {
    resolver: countingResolver({ "example.com": ["8.8.8.8"] }),
  });
  assert.equal(d.reason, "proxy_disabled");
});

Deno.test("decideHost() reasons always come from the reason table", async () => {
  const p = policy({ allow: ["*.example.com"], deny: ["x.example.com"] });
  const resolver = countingResolver({
    "a.example.com": ["8.8.8.8"],
    "b.example.com": ["10.0.0.1"],
  });
  for (
    const host of [
      "",
      "x.example.com",
      "a.example.com",
      "b.example.com",
      "c.example.com",
      "127.0.0.1",
      "other.test",
    ]
  ) {
    const d = await decideHost(p, host, { resolver });
    assert.ok(d.reason === "allowed" || DENY_REASON_NAMES.includes(d.reason), d.reason);
  }
});

Deno.test("compileNetworkPolicy() lists every bad rule with its source and key path", () => {
  const config = network({});
  const bad: NetworkConfig = {
    ...config,
    domains: [
      { pattern: "*", action: "deny", source: "user:/tmp/c.toml" },
      { pattern: "ok.example", action: "allow", source: "flag:--allow" },
      { pattern: "foo[bar", action: "allow", source: "flag:--allow" },
    ],
  };
  assert.throws(() => compileNetworkPolicy(bad), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.deepEqual(error.problems.map((p) => [p.file, p.keyPath]), [
      ["user:/tmp/c.toml", 'network.domains."*"'],
      ["flag:--allow", 'network.domains."foo[bar"'],
    ]);
    assert.match(error.problems[0].message, /global wildcard is not allowed in a deny rule/);
    return true;
  });
});

Deno.test("decideMethod() lets every method through in full mode and only GET, HEAD, OPTIONS in limited", () => {
  for (const method of ["GET", "POST", "CONNECT", "DELETE"]) {
    assert.deepEqual(decideMethod("full", method), { decision: "allow" });
  }
  for (const method of ["GET", "HEAD", "OPTIONS"]) {
    assert.deepEqual(decideMethod("limited", method), { decision: "allow" });
  }
  for (const method of ["POST", "PUT", "PATCH", "DELETE", "CONNECT", "TRACE", "get", ""]) {
    assert.deepEqual(decideMethod("limited", method), {
      decision: "deny",
      reason: "method_not_allowed",
    });
  }
});

Deno.test("decideHost() never throws and never looks up a host no allow rule matches (property)", async () => {
  const p = policy({ allow: ["*.example.com", "10.0.0.1", "[::1]"], deny: ["x.example.com"] });
  const label = fc.constantFrom(
    "example",
    "com",
    "x",
    "a",
    "10",
    "0x7f",
    "1",
    "",
    "localhost",
    "::1",
    "[::1]",
  );
  const host = fc.array(label, { minLength: 1, maxLength: 4 }).map((labels) => labels.join("."));
  await fc.assert(
    fc.asyncProperty(host, async (h) => {
      const resolver = countingResolver({});
      const d = await decideHost(p, h, { resolver });
      const name = d.host;
      const couldMatch = name.endsWith(".example.com") && name !== "x.example.com";
      if (!couldMatch && resolver.calls.length !== 0) return false;
      return resolver.calls.length <= 1 && (d.decision === "deny" || d.reason === "allowed");
    }),
    { numRuns: 1000 },
  );
});

Deno.test("decideHost() lets a host:PORT rule admit that port and no other", async () => {
  const p = policy({
    allow: ["git.example.com:22", "api.example.com"],
    deny: ["api.example.com:25"],
  });
  const resolver = countingResolver({
    "git.example.com": ["93.184.215.14"],
    "api.example.com": ["93.184.215.15"],
  });
  const ssh = await decideHost(p, "git.example.com", { resolver, port: 22 });
  assert.equal(ssh.decision, "allow");
  assert.equal(ssh.rule, "git.example.com:22");
  const https = await decideHost(p, "git.example.com:443", { resolver });
  assert.equal(https.decision, "deny");
  assert.equal(https.reason, "not_allowed");
  // Unknown port: only rules without a port apply.
  assert.equal((await decideHost(p, "git.example.com", { resolver })).decision, "deny");
  // A rule without a port keeps meaning every port; a deny with a port stops only that one.
  assert.equal((await decideHost(p, "api.example.com:8443", { resolver })).decision, "allow");
  const smtp = await decideHost(p, "api.example.com:25", { resolver });
  assert.equal(smtp.decision, "deny");
  assert.equal(smtp.reason, "denied");
  // Refused ports cost no lookup.
  assert.deepEqual(resolver.calls, ["git.example.com", "api.example.com"]);
});

Deno.test("tlsMarkingRule() finds the tls:// rule for that host and port only; the marker changes no decision", async () => {
  const p = policy({
    allow: [
      "tls://registry.example:8443",
      "plain.example:8443",
      "tls://**.corp.example:993",
      "tls://[2001:db8::7]:5432",
      "registry.example",
    ],
  });
  assert.equal(
    tlsMarkingRule(p, "registry.example", 8443)?.pattern.text,
    "tls://registry.example:8443",
  );
  assert.equal(tlsMarkingRule(p, "Registry.Example.", 8443)?.source, "test");
  assert.equal(tlsMarkingRule(p, "registry.example", 8080), undefined);
  assert.equal(tlsMarkingRule(p, "plain.example", 8443), undefined);
  assert.equal(
    tlsMarkingRule(p, "mail.corp.example", 993)?.pattern.text,
    "tls://**.corp.example:993",
  );
  assert.equal(tlsMarkingRule(p, "2001:db8::7", 5432)?.pattern.port, 5432);
  assert.equal(tlsMarkingRule(p, "[2001:db8::7]", 5432)?.pattern.port, 5432);
  assert.equal(
    tlsMarkingRule(policy({ allow: ["registry.example:8443"] }), "registry.example", 8443),
    undefined,
  );
  // Decisions are those of the rule without the marker.
  const resolver = countingResolver({ "registry.example": ["93.184.215.14"] });
  const allowed = await decideHost(p, "registry.example", { resolver, port: 8443 });
  assert.equal(allowed.decision, "allow");
  assert.equal(allowed.rule, "tls://registry.example:8443");
  const other = await decideHost(
    policy({ allow: ["tls://registry.example:8443"] }),
    "registry.example",
    {
      resolver,
      port: 8080,
    },
  );
  assert.equal(other.decision, "deny");
  assert.equal(other.reason, "not_allowed");
});

Deno.test("compileNetworkPolicy() builds a large list's rules in idle steps and decides the same before, during and after", async () => {
  // 3,000 rules (above the eager limit): plain names, wildcards, a port and a name not in normal
  // form (compiled up front), in an order where the first match matters.
  const allow: string[] = [];
  for (let i = 0; i < 3000; i++) {
    allow.push(i % 3 === 0 ? `**.w${i}.test` : i % 3 === 1 ? `d${i}.test` : `*.x${i}.test`);
  }
  allow.splice(10, 0, "Mixed.Case.test", "d1.test:8443", "**.d1.test");
  const deny = ["bad.d4.test", "*.x5.test"];
  const hosts = [
    "d1.test",
    "a.d1.test",
    "mixed.case.test",
    "w0.test",
    "a.w2997.test",
    "x2.test",
    "a.x2.test",
    "a.x5.test",
    "bad.d4.test",
    "d4.test",
    "none.test",
  ];
  const resolver = countingResolver(Object.fromEntries(hosts.map((h) => [h, ["93.184.215.14"]])));
  const decide = async (p: NetworkPolicy) =>
    await Promise.all(
      hosts.map(async (h) => {
        const d = await decideHost(p, h, { resolver, port: 443 });
        return `${h} ${d.decision} ${d.rule}`;
      }),
    );
  // Frozen, as the loader's output is: only then is the build deferred.
  const frozen = ({ allow, deny }: { allow: string[]; deny: string[] }): NetworkPolicy => {
    const net = network({ allow, deny });
    for (const rule of net.domains) Object.freeze(rule);
    return compileNetworkPolicy({ ...net, domains: Object.freeze(net.domains) as DomainRule[] });
  };
  // Either list, read first, is complete and in merge order.
  assert.deepEqual(frozen({ allow, deny }).allow.map((r) => r.pattern.text), allow);
  assert.deepEqual(frozen({ allow, deny }).deny.map((r) => r.pattern.text), deny);
  const reference = policy({ allow, deny }); // Not frozen: built up front.
  const expected = await decide(reference);
  assert.deepEqual(reference.allow.map((r) => r.pattern.text), allow);

  // A decision before any idle step completes the build itself.
  assert.deepEqual(await decide(frozen({ allow, deny })), expected);
  // Stopped part of the way through the idle steps (rule lists, then each index), the first
  // decision completes the build.
  for (let steps = 1; steps <= 16; steps++) {
    const warming = frozen({ allow, deny });
    const abort = new AbortController();
    let left = steps;
    const tick = async () => {
      while (left-- > 0) await new Promise((resolve) => setTimeout(resolve, 0));
      abort.abort();
    };
    await Promise.all([warmNetworkPolicy(warming, { signal: abort.signal, step: 700 }), tick()]);
    assert.deepEqual(await decide(warming), expected, `after ${steps} steps`);
  }
  // A list that is not frozen is built at once: changing it afterwards changes nothing.
  const open = network({ allow, deny });
  const snapshot = compileNetworkPolicy(open);
  (open.domains as DomainRule[]).splice(0);
  assert.deepEqual(await decide(snapshot), expected);
  const warmed = frozen({ allow, deny });
  await warmNetworkPolicy(warmed, { step: 700 });
  assert.deepEqual(await decide(warmed), expected);
  assert.deepEqual(warmed.deny.map((r) => r.pattern.text), deny);
});

Deno.test("compileNetworkPolicy() still refuses a bad pattern among thousands of plain names", () => {
  const allow = Array.from({ length: 3000 }, (_, i) => `d${i}.test`);
  allow.push("bad pattern");
  assert.throws(() => policy({ allow }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.problems.length, 1);
    assert.equal(error.problems[0].keyPath, 'network.domains."bad pattern"');
    return true;
  });
});

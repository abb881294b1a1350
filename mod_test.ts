import assert from "node:assert/strict";
import * as mod from "./mod.ts";

// The public surface is pinned: a change here is a change to the library's contract,
// and must be made on purpose (and noted in the changelog of the release).
Deno.test("mod.ts exports exactly the pinned public surface", () => {
  assert.deepEqual(Object.keys(mod).sort(), [
    "ConfigError",
    "DENY_REASONS",
    "PRESETS",
    "SandboxError",
    "UsageError",
    "VERSION",
    "buildBwrapArgs",
    "buildSandboxPlan",
    "compileNetworkPolicy",
    "createResolver",
    "decideCommand",
    "decideHost",
    "decideMethod",
    "formatExecDenial",
    "isNonPublicAddress",
    "loadEffectiveConfig",
    "normalizeHost",
    "parseIpLiteral",
    "renderSeatbeltProfile",
    "runSandboxed",
    "startProxy",
    "validateConfigText",
    "validateDomainPattern",
  ]);
});

Deno.test("mod.ts example: a wildcard allow decides a subdomain without touching DNS", async () => {
  const config = await mod.loadEffectiveConfig({ allow: ["*.example.com"] }, { env: {} });
  const policy = mod.compileNetworkPolicy(config.network);
  let lookups = 0;
  const resolver: mod.Resolver = (_host) => {
    lookups++;
    return Promise.resolve(["93.184.216.34"]);
  };
  const allowed = await mod.decideHost(policy, "api.example.com", { resolver });
  assert.equal(allowed.decision, "allow");
  const refused = await mod.decideHost(policy, "example.org", { resolver });
  assert.equal(refused.decision, "deny");
  assert.equal(refused.reason, "not_allowed");
  assert.equal(lookups, 1);
});

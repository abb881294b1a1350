import assert from "node:assert/strict";
import * as mod from "./mod.ts";

// The policy engine's public surface. Other teams add their own exports to
// mod.ts, so this pins a subset rather than the whole list.
const POLICY_ENGINE_EXPORTS = [
  "DENY_REASONS",
  "DENY_REASON_NAMES",
  "NON_PUBLIC_RANGES",
  "PatternError",
  "ResolveError",
  "classifyAddress",
  "compileDomainPattern",
  "compileNetworkPolicy",
  "createResolver",
  "decideHost",
  "decideMethod",
  "isNonPublicAddress",
  "matchesDomainPattern",
  "normalizeHost",
  "parseIpLiteral",
  "parseResolveFlags",
  "splitHostPort",
  "validateDomainPattern",
];

Deno.test("proxy/mod.ts exports the policy engine's surface", () => {
  const names = new Set(Object.keys(mod));
  const missing = POLICY_ENGINE_EXPORTS.filter((name) => !names.has(name));
  assert.deepEqual(missing, []);
  for (const name of POLICY_ENGINE_EXPORTS) {
    assert.notEqual((mod as Record<string, unknown>)[name], undefined, name);
  }
});

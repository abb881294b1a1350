import assert from "node:assert/strict";
import * as mod from "./mod.ts";

// The public surface is pinned: a change to it is a change to the library's
// contract and must be made on purpose. Internals (parser buffers, relay
// helpers) stay out.
Deno.test("policy/mod.ts exports exactly its pinned public surface", () => {
  assert.deepEqual(Object.keys(mod).sort(), [
    "DECISION_SOURCES",
    "DENY_REASONS",
    "DENY_REASON_NAMES",
    "NON_PUBLIC_RANGES",
    "PatternError",
    "canonicalHost",
    "classifyAddress",
    "compileDomainPattern",
    "compileNetworkPolicy",
    "decideHost",
    "decideMethod",
    "decideRequest",
    "isNonPublicAddress",
    "isOwnListener",
    "matchesDomainPattern",
    "normalizeHost",
    "parseIpLiteral",
    "sameHost",
    "splitHostPort",
    "validateDomainPattern",
  ]);
});

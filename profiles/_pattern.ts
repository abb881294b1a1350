/**
 * The profiles folder's one door to the domain-pattern grammar, which
 * belongs to the policy engine (`policy/pattern.ts`). One call site, so
 * profiles validate with exactly the engine's rules.
 *
 * @module
 */
import { validateDomainPattern } from "../policy/pattern.ts";

/** Returns why `pattern` is not a valid `action` rule, or null when it is. */
export function checkDomainPattern(pattern: string, action: "allow" | "deny"): string | null {
  return validateDomainPattern(pattern, action);
}

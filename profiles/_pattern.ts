/**
 * The profiles folder's one door to the domain-pattern grammar, which
 * belongs to the policy engine (`policy/pattern.ts`). One call site, so
 * profiles validate with exactly the engine's rules.
 *
 * @module
 */
import { isPlainNamePattern, validateDomainPattern } from "../policy/pattern.ts";

/** Returns why `pattern` is not a valid `action` rule, or null when it is. */
export function checkDomainPattern(pattern: string, action: "allow" | "deny"): string | null {
  return validateDomainPattern(pattern, action);
}

/**
 * Whether `pattern` is a valid `action` rule that is a plain name already in
 * normal form (lower case, no port, no trailing dot, no glob inside a
 * label): such a pattern is its own normalized key.
 */
export function isPlainDomainPattern(pattern: string, action: "allow" | "deny"): boolean {
  return isPlainNamePattern(pattern, action);
}

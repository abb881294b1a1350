/**
 * The profiles folder's one door to the domain-pattern grammar. The grammar
 * itself belongs to the policy engine (`proxy/pattern.ts`); this keeps a
 * single call site so profiles validate with exactly the engine's rules.
 *
 * @module
 */

/**
 * Returns why `pattern` is not a valid `action` rule, or null when it is.
 * Until `proxy/pattern.ts` lands this only does the checks that need no
 * grammar: empty, whitespace, and a global `*` in a deny rule.
 */
export function checkDomainPattern(pattern: string, action: "allow" | "deny"): string | null {
  if (pattern.trim() === "") return "a pattern cannot be empty";
  if (/\s/.test(pattern)) return "a pattern cannot contain whitespace";
  if (action === "deny" && /^(\*|\[\*\]|\*\*\.\[\*\])$/.test(pattern)) {
    return "a global wildcard is not allowed in a deny rule";
  }
  return null;
}

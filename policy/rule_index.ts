/**
 * An index over compiled domain rules, so that finding the first rule (in
 * merge order) that matches a host costs O(labels of the host), not
 * O(rules). Managed allowlists run to tens of thousands of patterns, and
 * every request is decided against them.
 *
 * How each kind of pattern is found:
 * - names without a glob inside a label (`example.com`, `*.example.com`,
 *   `**.example.com`): a map keyed by the pattern's labels joined with dots.
 *   A host is looked up once per suffix that starts at a label boundary
 *   (`a.b.example.com`, `b.example.com`, `example.com`, `com`): the same
 *   walk as a reversed-label trie, one map probe per label, without one
 *   node object per label (100,000 rules would otherwise cost a map per
 *   label in memory);
 * - IP address patterns: a map keyed by the address bytes (a deny rule's
 *   IPv4-mapped IPv6 spelling is stored as its IPv4 bytes, as it matches);
 * - `*`: a list;
 * - names with a glob inside a label (`region*.example.com`): a list,
 *   scanned with {@linkcode matchesDomainPattern} (rare in practice).
 *
 * Candidates from the maps are exactly the matches of
 * {@linkcode matchesDomainPattern} (a property test holds the two
 * together); address candidates are re-checked with it for their zone.
 *
 * @module
 */
import type { IpAddress } from "./address.ts";
import { matchesDomainPattern } from "./pattern.ts";
import type { DomainPattern, NameScope, PlainNameParts } from "./pattern.ts";

/** What the index needs of a rule. */
export interface IndexedRule {
  /** The compiled pattern. */
  readonly pattern: DomainPattern;
  /**
   * For a plain name pattern (see `plainNameParts`): its scope and labels,
   * so the index never needs to look at `pattern` (which may be compiled
   * only on first use). Such a pattern has no port.
   */
  readonly name?: PlainNameParts;
}

/** Options for {@linkcode RuleIndex.first}. */
export interface FirstMatchOptions<R extends IndexedRule> {
  /** Only rules that name exactly one host (`pattern.exact`). */
  readonly exactOnly?: boolean;
  /**
   * A further check on a rule whose pattern matched (e.g. its port); a
   * rejected rule is skipped and a later one may match.
   */
  readonly accept?: (rule: R) => boolean;
}

/** Positions (ascending) of the rules with one name body, per scope (null: none). */
interface NameEntry {
  exact: number[] | null;
  subdomains: number[] | null;
  apex: number[] | null;
}

/** Rule positions to consider: an ascending list, one position, or none. */
type Positions = readonly number[] | number | null | undefined;

/** The labels of a name pattern joined with dots (its normalized text without prefix or port). */
function nameKey(pattern: Extract<DomainPattern, { kind: "name" }>): string {
  if (pattern.port != null) return pattern.labels.join(".");
  const prefix = pattern.scope === "exact" ? 0 : pattern.scope === "subdomains" ? 2 : 3;
  return prefix === 0 ? pattern.normalized : pattern.normalized.slice(prefix);
}

/** A hex key for address bytes. */
function bytesKey(bytes: Uint8Array): string {
  let key = "";
  for (const byte of bytes) key += byte < 16 ? "0" + byte.toString(16) : byte.toString(16);
  return key;
}

/** The IPv4 bytes of an IPv4-mapped IPv6 address; other addresses unchanged. */
function unmapIpv4(bytes: Uint8Array): Uint8Array {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return bytes;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return bytes;
  return bytes.subarray(12);
}

/**
 * The first-match index over one list of rules (allow or deny). Build it
 * once per compiled policy; {@linkcode ruleIndexOf} caches it per list.
 *
 * @example
 * ```ts
 * const index = new RuleIndex(policy.allow);
 * index.first("api.example.com", null)?.pattern.text; // "**.example.com"
 * ```
 */
export class RuleIndex<R extends IndexedRule> {
  readonly #rules: readonly R[];
  /**
   * Per name body: its rules by scope, or (the common case, one exact rule)
   * just that rule's position, so a large list of plain names costs one map
   * entry per rule and no further objects.
   */
  readonly #names = new Map<string, NameEntry | number>();
  readonly #addresses = new Map<string, number[]>();
  readonly #any: number[] = [];
  readonly #globs: number[] = [];

  /** Rules indexed so far (the index is complete when this is `rules.length`). */
  #built = 0;

  /**
   * Indexes `rules` (all of them, or none yet with `options.deferred`: then
   * {@linkcode step} adds them, and the first lookup completes the rest).
   */
  constructor(rules: readonly R[], options: { deferred?: boolean } = {}) {
    this.#rules = rules;
    if (options.deferred !== true) this.step(Infinity);
  }

  /** Indexes up to `count` more rules; returns whether every rule is indexed. */
  step(count: number): boolean {
    const rules = this.#rules;
    const end = Math.min(rules.length, this.#built + count);
    for (let position = this.#built; position < end; position++) {
      const name = rules[position].name;
      if (name !== undefined) {
        this.#addName(name.key, name.scope, position);
        continue;
      }
      const pattern = rules[position].pattern;
      if (pattern.kind === "any") {
        this.#any.push(position);
      } else if (pattern.kind === "address") {
        const bytes = pattern.action === "deny"
          ? unmapIpv4(pattern.address.bytes)
          : pattern.address.bytes;
        const key = `${pattern.action}:${bytesKey(bytes)}`;
        const list = this.#addresses.get(key);
        if (list === undefined) this.#addresses.set(key, [position]);
        else list.push(position);
      } else {
        const key = nameKey(pattern);
        if (key.includes("*")) this.#globs.push(position);
        else this.#addName(key, pattern.scope, position);
      }
    }
    this.#built = end;
    return end === rules.length;
  }

  #addName(key: string, scope: NameScope, position: number): void {
    const found = this.#names.get(key);
    if (found === undefined && scope === "exact") {
      this.#names.set(key, position);
      return;
    }
    let entry: NameEntry;
    if (found === undefined || typeof found === "number") {
      entry = { exact: found === undefined ? null : [found], subdomains: null, apex: null };
      this.#names.set(key, entry);
    } else {
      entry = found;
    }
    const field = scope === "exact" ? "exact" : scope === "subdomains" ? "subdomains" : "apex";
    const list = entry[field];
    if (list === null) entry[field] = [position];
    else list.push(position);
  }

  /** How many rules the index covers. */
  get size(): number {
    return this.#rules.length;
  }

  /**
   * The first rule in list order whose pattern matches the normalized
   * `host` (and that `options.accept` accepts), or undefined. `address` is
   * `host` parsed as an IP literal (null: a name), as the caller has it.
   * Same answer as scanning the list with {@linkcode matchesDomainPattern}.
   */
  first(
    host: string,
    address: IpAddress | null,
    options: FirstMatchOptions<R> = {},
  ): R | undefined {
    const rules = this.#rules;
    if (this.#built < rules.length) this.step(Infinity);
    const exactOnly = options.exactOnly === true;
    const accept = options.accept;
    let best = Infinity;
    // The first position in an ascending list (or the one position) that is below `best` and
    // accepted.
    const consider = (positions: Positions, verify: boolean) => {
      if (positions == null) return;
      const count = typeof positions === "number" ? 1 : positions.length;
      for (let i = 0; i < count; i++) {
        const position = typeof positions === "number" ? positions : positions[i];
        if (position >= best) return;
        const rule = rules[position];
        if (verify && !matchesDomainPattern(rule.pattern, host, { address })) continue;
        if (
          exactOnly &&
          !(rule.name !== undefined ? rule.name.scope === "exact" : rule.pattern.exact)
        ) continue;
        if (accept !== undefined && !accept(rule)) continue;
        best = position;
        return;
      }
    };
    if (host === "") return undefined;
    if (!exactOnly) consider(this.#any, false);
    if (address !== null) {
      consider(this.#addresses.get(`allow:${bytesKey(address.bytes)}`), true);
      consider(this.#addresses.get(`deny:${bytesKey(unmapIpv4(address.bytes))}`), true);
    } else {
      this.#considerNames(host, consider);
      if (!exactOnly) consider(this.#globs, true);
    }
    return best === Infinity ? undefined : rules[best];
  }

  /** Probes the name map once per label-boundary suffix of `host`. */
  #considerNames(
    host: string,
    consider: (positions: Positions, verify: boolean) => void,
  ): void {
    if (this.#names.size === 0) return;
    // A pattern matches only when the labels before the matched suffix (the
    // "extra" labels) are not empty: `a..example.com` is not under `*.example.com`.
    // Labels before an empty one cannot be extra labels of a match.
    let extra = 0; // Labels of `host` before the suffix being probed.
    let start = 0; // Where that suffix starts.
    let emptySeen = false;
    for (;;) {
      const entry = this.#names.get(start === 0 ? host : host.slice(start));
      if (typeof entry === "number") {
        if (extra === 0) consider(entry, false); // One exact rule.
      } else if (entry !== undefined) {
        if (extra === 0) {
          consider(entry.exact, false);
          consider(entry.apex, false);
        } else if (!emptySeen) {
          consider(entry.subdomains, false);
          consider(entry.apex, false);
        }
      }
      const dot = host.indexOf(".", start);
      if (dot === -1) return;
      if (dot === start) emptySeen = true;
      start = dot + 1;
      extra++;
    }
  }
}

const CACHE = new WeakMap<readonly IndexedRule[], RuleIndex<IndexedRule>>();

/**
 * Indexes up to `count` more rules of `rules` into the index
 * {@linkcode ruleIndexOf} returns for it (building it in steps, e.g. while
 * the proxy is idle); returns whether the index is complete.
 */
export function ruleIndexStep(rules: readonly IndexedRule[], count: number): boolean {
  let index = CACHE.get(rules);
  if (index === undefined) {
    index = new RuleIndex(rules, { deferred: true });
    CACHE.set(rules, index);
  }
  return index.step(count);
}

/**
 * The index of a rule list, built on first use and kept for as long as the
 * list lives. Keyed by the list itself, so a policy copied with a new list
 * (`{ ...policy, allow: [...policy.allow, extra] }`) gets its own index.
 * Rule lists are read-only once compiled: do not mutate one after indexing.
 */
export function ruleIndexOf<R extends IndexedRule>(rules: readonly R[]): RuleIndex<R> {
  let index = CACHE.get(rules) as RuleIndex<R> | undefined;
  if (index === undefined) {
    index = new RuleIndex(rules);
    CACHE.set(rules, index as RuleIndex<IndexedRule>);
  }
  return index;
}

/**
 * The network policy engine: compiles the domain rules of an
 * {@linkcode NetworkConfig} once, then decides hosts and methods. Decisions
 * are data. The only I/O is the injected {@linkcode Resolver}, called at
 * most once per decision and only for a name an allow rule matched.
 *
 * Matching costs O(labels of the host), whatever the number of rules: each
 * rule list is indexed once (policy/rule_index.ts); among several matching
 * rules the first in merge order is the one reported.
 *
 * Decision order for a host (first that applies wins; a profile with network
 * off refuses everything with `proxy_disabled`):
 * 1. empty or invalid host -> deny `not_allowed`;
 * 2. a deny rule matches -> deny `denied`;
 * 3. `localhost`, `*.localhost` or a non-public IP literal -> deny
 *    `not_allowed_local`, unless `allowLocalBinding` or an exact allow rule
 *    names this very host;
 * 4. no allow rule matches -> deny `not_allowed` (no DNS lookup);
 * 5. an IP literal -> allow, connecting to that address;
 * 6. resolve the name once; no answer -> deny `resolve_failed` (detail says why);
 * 7. any resolved address non-public -> deny `not_allowed_local`, unless
 *    `allowLocalBinding` or an exact allow rule names this host;
 * 8. allow, carrying the checked addresses.
 *
 * @module
 */
import {
  compileRequestRule,
  compileRequestRules,
  RequestRuleError,
  type RequestRulesByHost,
} from "./request_rules.ts";
import type { NetworkConfig, NetworkMode } from "./types.ts";
import { ConfigError, type ConfigProblem, errorMessage } from "../errors.ts";
import { classifyAddress, type IpAddress, parseIpLiteral } from "./address.ts";
import { normalizeHost, splitHostPort } from "./host.ts";
import {
  compileDomainPattern,
  type DomainPattern,
  isPlainNamePattern,
  matchesDomainPattern,
  matchesPatternPort,
  type NameScope,
  type PlainNameParts,
} from "./pattern.ts";
import { ruleIndexOf, ruleIndexStep } from "./rule_index.ts";
import type { DenyReason } from "./reasons.ts";
import type { Resolver } from "./types.ts";

/** A compiled domain rule: its pattern and where it came from. */
export interface CompiledRule {
  /** The compiled pattern (`pattern.text` is the rule as written). */
  readonly pattern: DomainPattern;
  /** Where the rule came from (`flag:--allow`, `user:/path`, …). */
  readonly source: string;
  /** Set for a plain name pattern (no port, compiled on first use): what the index needs. */
  readonly name?: PlainNameParts;
}

/** Whether a rule's port admits `port` (a plain name has no port: every port). */
function admitsPort(rule: CompiledRule, port: number | null): boolean {
  return rule.name !== undefined || matchesPatternPort(rule.pattern, port);
}

/**
 * A rule whose pattern is a plain name: indexed by its parts and compiled
 * only when something looks at `pattern` (a decision reporting it), so a
 * 100,000-rule allowlist does not build 100,000 pattern objects at start.
 * It is its own {@linkcode PlainNameParts} (`name` is the rule itself): one
 * object per rule.
 */
class PlainNameRule implements CompiledRule, PlainNameParts {
  readonly source: string;
  readonly scope: NameScope;
  readonly key: string;
  readonly #text: string;
  readonly #action: "allow" | "deny";
  #pattern: DomainPattern | null = null;

  constructor(text: string, action: "allow" | "deny", source: string, prefix: number) {
    this.#text = text;
    this.#action = action;
    this.source = source;
    this.scope = prefix === 0 ? "exact" : prefix === 2 ? "subdomains" : "apex_and_subdomains";
    this.key = prefix === 0 ? text : text.slice(prefix);
  }

  get name(): PlainNameParts {
    return this;
  }

  get pattern(): DomainPattern {
    return this.#pattern ??= compileDomainPattern(this.#text, this.#action);
  }
}

/** The compiled network policy; build it with {@linkcode compileNetworkPolicy}. */
export interface NetworkPolicy {
  /** Allow rules in merge order. */
  readonly allow: readonly CompiledRule[];
  /** Deny rules in merge order. */
  readonly deny: readonly CompiledRule[];
  /** False when the profile turns network off: every host is refused. */
  readonly enabled: boolean;
  /** Loopback and private addresses are reachable through any allow rule. */
  readonly allowLocalBinding: boolean;
  /** Method policy. */
  readonly mode: NetworkMode;
  /** Report mode: host and method refusals are let through as `would_block` (floors excepted). */
  readonly report?: boolean;
  /** Per-host request rules, compiled (absent or empty: none). */
  readonly requestRules?: RequestRulesByHost;
}

/** A host decision: allow with the addresses to connect to, or deny with why. */
export type HostDecision =
  | {
    readonly decision: "allow";
    readonly reason: "allowed";
    /** The normalized host. */
    readonly host: string;
    /** The allow rule that let it through, as written. */
    readonly rule: string | null;
    /** Where that rule came from. */
    readonly source: string | null;
    /** Exactly the checked addresses to connect to; never resolve again. */
    readonly addresses: string[];
  }
  | {
    readonly decision: "deny";
    readonly reason: DenyReason;
    /** The normalized host. */
    readonly host: string;
    /** The rule that decided (the deny rule, or the allow rule that could not unlock), or null. */
    readonly rule: string | null;
    /** Where that rule came from. */
    readonly source: string | null;
    /** The precise cause, for people. */
    readonly detail: string;
  };

/** Options for {@linkcode decideHost}. */
export interface DecideHostOptions {
  /** Resolves an allowed name; called at most once per decision. */
  readonly resolver: Resolver;
  /**
   * The port asked for; rules written with a port (`host:PORT`) apply only
   * to it. Default: the port in the host text (`HOST:PORT`), else null, for
   * which only rules without a port apply.
   */
  readonly port?: number | null;
}

/** A method decision. */
export type MethodDecision =
  | { readonly decision: "allow" }
  | { readonly decision: "deny"; readonly reason: "method_not_allowed" };

/**
 * The rule lists of a compiled policy, built in steps: a plain name (nearly
 * every rule of a large allowlist; valid by construction) becomes a
 * {@linkcode PlainNameRule} only when the lists are first needed or while
 * the proxy is idle ({@linkcode warmNetworkPolicy}), so a 100,000-rule
 * allowlist does not hold up start-up. Patterns that are not plain names
 * are compiled up front, where their errors are the config's errors.
 */
class RuleLists {
  readonly allow: CompiledRule[] = [];
  readonly deny: CompiledRule[] = [];
  readonly #domains: NetworkConfig["domains"];
  /** The compiled pattern of each rule that is not a plain name, by position. */
  readonly #compiled: ReadonlyMap<number, DomainPattern>;
  #next = 0;

  constructor(domains: NetworkConfig["domains"], compiled: ReadonlyMap<number, DomainPattern>) {
    this.#domains = domains;
    this.#compiled = compiled;
  }

  /** Whether every rule is in the lists. */
  get done(): boolean {
    return this.#next === this.#domains.length;
  }

  /** Adds up to `count` more rules, in merge order. */
  step(count: number): void {
    const domains = this.#domains;
    const compiled = this.#compiled;
    const end = Math.min(domains.length, this.#next + count);
    for (let i = this.#next; i < end; i++) {
      const rule = domains[i];
      const list = rule.action === "deny" ? this.deny : this.allow;
      const pattern = compiled.size === 0 ? undefined : compiled.get(i);
      if (pattern !== undefined) {
        list.push({ pattern, source: rule.source });
        continue;
      }
      const text = rule.pattern;
      const prefix = text.charCodeAt(0) !== 0x2a ? 0 : text.charCodeAt(1) === 0x2a ? 3 : 2;
      list.push(new PlainNameRule(text, rule.action, rule.source, prefix));
    }
    this.#next = end;
  }

  /** The lists with every rule in. */
  complete(): this {
    if (!this.done) this.step(Infinity);
    return this;
  }
}

const RULE_LISTS = new WeakMap<NetworkPolicy, RuleLists>();

/**
 * Compiles the domain rules of a network config. Throws
 * {@linkcode ConfigError} listing every rule that does not follow the
 * pattern grammar (file = the rule's source, key path = its pattern).
 *
 * In a large frozen list (the loader's output), plain names (valid once
 * checked, see `isPlainNamePattern`) are turned into rule objects, and every
 * list is indexed, on first use of `allow`/`deny` or in idle steps
 * ({@linkcode warmNetworkPolicy}); the decisions are the same either way.
 *
 * @example
 * ```ts
 * const policy = compileNetworkPolicy(config.network);
 * policy.allow.map((r) => r.pattern.text); // ["**.example.com"]
 * ```
 */
export function compileNetworkPolicy(network: NetworkConfig): NetworkPolicy {
  const compiled = new Map<number, DomainPattern>();
  const problems: ConfigProblem[] = [];
  const domains = network.domains;
  for (let i = 0; i < domains.length; i++) {
    const rule = domains[i];
    if (isPlainNamePattern(rule.pattern, rule.action)) continue;
    try {
      compiled.set(i, compileDomainPattern(rule.pattern, rule.action));
    } catch (error) {
      problems.push({
        file: rule.source,
        keyPath: `network.domains.${JSON.stringify(rule.pattern)}`,
        message: errorMessage(error),
      });
    }
  }
  let requestRules: RequestRulesByHost = new Map();
  const rules = network.requestRules ?? [];
  for (const rule of rules) {
    try {
      compileRequestRule(rule);
    } catch (error) {
      const key = error instanceof RequestRuleError ? `.${error.key}` : "";
      problems.push({
        file: rule.source,
        keyPath: `network.${rule.name}${key}`,
        message: errorMessage(error),
      });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  if (rules.length > 0) requestRules = compileRequestRules(rules);
  const lists = new RuleLists(domains, compiled);
  // A small list is built (and indexed) now, so no request waits for it; so is one that is not
  // frozen (as the loader's output is), since the build must see the rules as they are now.
  if (
    domains.length <= EAGER_RULES || !Object.isFrozen(domains) || !Object.isFrozen(domains[0])
  ) {
    ruleIndexOf(lists.complete().allow);
    ruleIndexOf(lists.deny);
  }
  const policy: NetworkPolicy = {
    get allow() {
      return lists.complete().allow;
    },
    get deny() {
      return lists.complete().deny;
    },
    enabled: network.enabled,
    allowLocalBinding: network.allowLocalBinding,
    mode: network.mode,
    report: network.enforcement === "report",
    requestRules,
  };
  RULE_LISTS.set(policy, lists);
  return policy;
}

/** Up to this many domain rules, a policy's lists and indexes are built when it is compiled. */
const EAGER_RULES = 1000;

/** Rules per idle step of {@linkcode warmNetworkPolicy} (a few milliseconds of work). */
const WARM_STEP = 5000;

/** Options for {@linkcode warmNetworkPolicy}. */
export interface WarmOptions {
  /** Stops the build (what is built stays; a decision completes the rest). */
  readonly signal?: AbortSignal;
  /** Rules per step (default 5,000: a few milliseconds of work). */
  readonly step?: number;
}

/**
 * Builds a policy's rule lists and indexes in small steps, yielding to the
 * event loop between them (the proxy keeps serving; a decision that comes
 * first completes the build itself). Resolves once everything is built or
 * the signal aborts; never rejects.
 *
 * @example
 * ```ts
 * const policy = compileNetworkPolicy(config.network);
 * void warmNetworkPolicy(policy, { signal: abort.signal });
 * ```
 */
export async function warmNetworkPolicy(
  policy: NetworkPolicy,
  options: WarmOptions = {},
): Promise<void> {
  const lists = RULE_LISTS.get(policy);
  if (lists === undefined) return;
  const step = options.step ?? WARM_STEP;
  // A step of 0 only says whether an index is complete: a small policy's lists and indexes are
  // built when it is compiled, and then nothing is scheduled at all.
  if (lists.done && ruleIndexStep(lists.allow, 0) && ruleIndexStep(lists.deny, 0)) return;
  // A timer, not a message port, between steps: a port yields at once and the whole build then
  // runs during a short command's start (measured with 100,000 rules: `run -- true` 229 ms with
  // timers, 358 with a port), while timers (nested ones wait a few ms) spread it out and a run
  // that ends first never pays for the rest. The first timer loads Deno's timers module (~7 ms);
  // only policies over 1,000 rules get here.
  const idle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));
  while (!lists.done) {
    await idle();
    if (options.signal?.aborted) return;
    lists.step(step);
  }
  for (const list of [lists.allow, lists.deny]) {
    while (!ruleIndexStep(list, 0)) {
      await idle();
      if (options.signal?.aborted) return;
      if (ruleIndexStep(list, step)) break;
    }
  }
}

const NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

/** Why a normalized, non-literal host is not a name we will look up, or null. */
function invalidName(host: string): string | null {
  if (host.length > 253) return "host name is longer than 253 characters";
  if (!NAME.test(host)) {
    return /[^\p{ASCII}]/u.test(host)
      ? 'host name is not ASCII (clients send the IDNA form, "xn--…")'
      : "host is neither a valid host name nor an IP address";
  }
  if (host.split(".").some((label) => label.length > 63)) {
    return "host name has a label longer than 63 characters";
  }
  // A name whose last label starts with a digit is meant as an IPv4
  // address (no top-level domain starts with a digit). One we cannot parse
  // might be read differently by another parser, so it is refused rather
  // than sent to DNS as a name.
  if (/^[0-9]/.test(host.slice(host.lastIndexOf(".") + 1))) {
    return "host looks like an IPv4 address but is not a valid one";
  }
  return null;
}

function isLocalName(host: string): boolean {
  return host === "localhost" || host.endsWith(".localhost");
}

function describeAddress(ip: IpAddress): string | null {
  const cls = classifyAddress(ip);
  if (cls.public) return null;
  const via = cls.embedded === null ? "" : ` (embeds ${cls.embedded})`;
  return `${ip.canonical}${via} is in ${cls.range.cidr} (${cls.range.label})`;
}

/** The allow rule that names exactly this host (no wildcard), if any. */
function exactAllow(
  policy: NetworkPolicy,
  host: string,
  address: IpAddress | null,
  port: number | null,
): CompiledRule | undefined {
  return ruleIndexOf(policy.allow).first(host, address, {
    exactOnly: true,
    accept: (rule) => admitsPort(rule, port),
  });
}

/**
 * The first rule (merge order) whose host part matches, then (a separate
 * check) whose port admits `port`; found through the list's index.
 */
function findRule(
  rules: readonly CompiledRule[],
  host: string,
  address: IpAddress | null,
  port: number | null,
): CompiledRule | undefined {
  return ruleIndexOf(rules).first(host, address, {
    accept: (rule) => admitsPort(rule, port),
  });
}

async function decide(
  policy: NetworkPolicy,
  input: string,
  resolver: Resolver,
  port: number | null,
): Promise<HostDecision> {
  const host = normalizeHost(input);
  const deny = (
    reason: DenyReason,
    detail: string,
    rule: CompiledRule | null = null,
  ): HostDecision => ({
    decision: "deny",
    reason,
    host,
    rule: rule?.pattern.text ?? null,
    source: rule?.source ?? null,
    detail,
  });
  const allow = (rule: CompiledRule, addresses: string[]): HostDecision => ({
    decision: "allow",
    reason: "allowed",
    host,
    rule: rule.pattern.text,
    source: rule.source,
    addresses,
  });

  if (!policy.enabled) return deny("proxy_disabled", "network is disabled by the profile");
  if (host === "") return deny("not_allowed", "host is empty");
  const address = parseIpLiteral(host);
  if (address === null) {
    const why = invalidName(host);
    if (why !== null) return deny("not_allowed", why);
  }

  const denied = findRule(policy.deny, host, address, port);
  if (denied !== undefined) {
    return deny("denied", `deny rule "${denied.pattern.text}" matches`, denied);
  }

  const exact = exactAllow(policy, host, address, port);
  const unlocked = policy.allowLocalBinding || exact !== undefined;
  if (!unlocked) {
    if (isLocalName(host)) {
      return deny("not_allowed_local", `"${host}" is a loopback name`);
    }
    const local = address === null ? null : describeAddress(address);
    if (local !== null) return deny("not_allowed_local", `address ${local}`);
  }

  const matched = exact ?? findRule(policy.allow, host, address, port);
  if (matched === undefined) return deny("not_allowed", "no allow rule matches");

  if (address !== null) return allow(matched, [address.canonical]);

  let resolved: string[];
  try {
    resolved = await resolver(host);
  } catch (error) {
    const why = errorMessage(error);
    return deny("resolve_failed", `name did not resolve: ${why}`, matched);
  }
  if (resolved.length === 0) {
    return deny("resolve_failed", "name did not resolve: no addresses", matched);
  }
  const addresses: string[] = [];
  for (const text of resolved) {
    const ip = parseIpLiteral(text);
    if (ip === null) {
      return deny(
        "resolve_failed",
        `resolver answered "${text}", which is not an IP address`,
        matched,
      );
    }
    // A deny rule written for an address holds for every name that resolves to it (an allowed
    // name pointing at a denied metadata or LAN address must not get through).
    const deniedAddress = findRule(policy.deny, ip.canonical, ip, port);
    if (deniedAddress !== undefined) {
      return deny(
        "denied",
        `"${host}" resolves to ${ip.canonical}, which deny rule "${deniedAddress.pattern.text}" matches`,
        deniedAddress,
      );
    }
    if (!unlocked) {
      const local = describeAddress(ip);
      if (local !== null) {
        const why = matched.pattern.exact
          ? ""
          : `; the wildcard rule "${matched.pattern.text}" cannot unlock it`;
        return deny(
          "not_allowed_local",
          `"${host}" resolves to a non-public address: ${local}${why}`,
          matched,
        );
      }
    }
    if (!addresses.includes(ip.canonical)) addresses.push(ip.canonical);
  }
  return allow(matched, addresses);
}

/**
 * Decides whether the proxy may connect to `host` (`HOST[:PORT]` is
 * accepted; the port, from there or `options.port`, selects which rules
 * with a port apply). Never throws: anything that goes wrong
 * while deciding is a deny (fail closed).
 *
 * @example
 * ```ts
 * const policy = compileNetworkPolicy(config.network);
 * const d = await decideHost(policy, "api.example.com:443", { resolver: createResolver() });
 * if (d.decision === "allow") connectTo(d.addresses[0]);
 * ```
 */
export async function decideHost(
  policy: NetworkPolicy,
  host: string,
  options: DecideHostOptions,
): Promise<HostDecision> {
  try {
    const port = options.port !== undefined ? options.port : splitHostPort(host).port;
    return await decide(policy, host, options.resolver, port);
  } catch (error) {
    const why = errorMessage(error);
    let name: string;
    try {
      name = normalizeHost(host);
    } catch {
      name = String(host);
    }
    return {
      decision: "deny",
      reason: "policy_error",
      host: name,
      rule: null,
      source: null,
      detail: `policy check failed: ${why}`,
    };
  }
}

/** The `tls://` allow rules of each compiled allow list (plain names never carry the marker). */
const tlsRulesOf = new WeakMap<readonly CompiledRule[], readonly CompiledRule[]>();

/**
 * The allow rule that marks `port` of `host` as TLS (`tls://HOST:PORT`), or
 * undefined. Transparent capture asks it for a connection on a port other
 * than 443: a marked one is decided like a CONNECT (the TLS server name must
 * be the host), an unmarked one is a plain tunnel. When several rules match,
 * one marked rule is enough: the TLS door is the stricter one.
 *
 * @example
 * ```ts
 * const policy = compileNetworkPolicy({ ...network, domains: [
 *   { pattern: "tls://registry.example:8443", action: "allow", source: "flag:--allow" }] });
 * tlsMarkingRule(policy, "registry.example", 8443)?.pattern.text; // "tls://registry.example:8443"
 * tlsMarkingRule(policy, "registry.example", 8080); // undefined
 * ```
 */
export function tlsMarkingRule(
  policy: NetworkPolicy,
  host: string,
  port: number,
): CompiledRule | undefined {
  let marked = tlsRulesOf.get(policy.allow);
  if (marked === undefined) {
    marked = policy.allow.filter((rule) => rule.name === undefined && rule.pattern.tls === true);
    tlsRulesOf.set(policy.allow, marked);
  }
  if (marked.length === 0) return undefined;
  let name: string;
  try {
    name = normalizeHost(host);
  } catch {
    return undefined;
  }
  const address = parseIpLiteral(name);
  return marked.find((rule) =>
    rule.pattern.port === port && matchesDomainPattern(rule.pattern, name, { address })
  );
}

const LIMITED_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Decides an HTTP method: `full` lets every method through; `limited` only
 * GET, HEAD and OPTIONS (case-sensitive, as HTTP methods are).
 *
 * @example
 * ```ts
 * decideMethod("limited", "POST"); // { decision: "deny", reason: "method_not_allowed" }
 * ```
 */
export function decideMethod(mode: NetworkMode, method: string): MethodDecision {
  if (mode === "full") return { decision: "allow" };
  if (LIMITED_METHODS.has(method)) return { decision: "allow" };
  return { decision: "deny", reason: "method_not_allowed" };
}

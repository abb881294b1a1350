/**
 * `decideRequest()`: the one decision for one request, whatever door it came
 * through. Every handler of the proxy (absolute-form HTTP, CONNECT, SOCKS5,
 * a request inside a MITM tunnel, `x-unix-socket`) describes what the
 * request carries as {@linkcode RequestFacts} and gets one
 * {@linkcode RequestVerdict} back: `{decision, reason, source, rule}` plus
 * what the handler needs to act on it (the checked addresses, the detail for
 * people). No handler decides on its own.
 *
 * The guards run in this order; the first that denies decides:
 *
 * | # | guard | source | reasons |
 * |---|---|---|---|
 * | 1 | network off by the profile | `proxy_state` | `proxy_disabled` |
 * | 2 | a door the state keeps closed (SOCKS5 off, `x-unix-socket` on CONNECT) | `proxy_state` | `socks_disabled`, `unix_socket_unsupported` |
 * | 3 | the request itself (port out of range; inside MITM: not the tunnel's host, malformed framing) | `request_check` | `invalid_port`, `host_mismatch`, `bad_request` |
 * | 4 | the baseline policy: the sandbox's own loopback (`sandboxLoopback`), then domain rules and address classes (`decideHost`); or the unix socket allowlist | `baseline_policy` | `denied`, `not_allowed`, `not_allowed_local`, `resolve_failed`, `unix_socket_not_allowed` |
 * | 5 | the mode guard: limited mode (methods, upgrades, bodies, SOCKS5, HTTPS without MITM); inside MITM, CONNECT and upgrades in any mode | `mode_guard` | `method_not_allowed`, `mitm_required` |
 * | 5a | per-host request rules (`mitm_hooks`, `requests`): a host with rules needs a request that matches one; CONNECT to it needs MITM, SOCKS5 to it is refused | `request_rules` | `mitm_hook_denied`, `mitm_required` |
 * | 5b | secret placeholders: a request carrying one to a host the secret is not bound to | `secrets` | `secret_wrong_host` |
 * | 6 | the decider (`--ask`): only for `not_allowed`, only when every other guard passes | `decider` | `not_allowed` |
 * | 7 | the proxy's own listeners (checked on the resolved addresses) | `proxy_state` | `own_listener` |
 *
 * A `not_allowed` from step 4 waits for step 6: when the mode guard denies
 * too, the request is refused as `not_allowed` without asking anyone.
 *
 * In report mode (`enforcement = "report"`), a refusal for a host reason
 * (`not_allowed`, or `denied` by a rule that is not managed) or a method
 * reason (the mode guard) is turned into an allow that carries the refusal
 * as {@linkcode WouldBlock}; the request is decided again as if one
 * non-exact rule allowed every host, so a refused name is resolved only
 * then and the floors still hold: local and private addresses, managed
 * denies, the proxy's own listeners and every `proxy_state`/`request_check`
 * refusal stay enforced. No one is asked in report mode.
 * Anything that throws while deciding is a deny `policy_error` (fail closed).
 *
 * New guards (per-host request rules, secret placeholders) go into
 * {@linkcode decideRequest}'s sequence with their own source and reasons in
 * policy/reasons.ts; new doors (captured connections) into
 * {@linkcode RequestDoor}.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { parseIpLiteral } from "./address.ts";
import { normalizeHost } from "./host.ts";
import { HOST_LOOPBACK_ALIAS, hostLoopbackReason } from "./loopback.ts";
import { compileDomainPattern, type DomainPattern, matchesDomainPattern } from "./pattern.ts";
import { evaluateRequestRules } from "./request_rules.ts";
import type { RequestRule } from "./types.ts";
import { decideHost, decideMethod, type HostDecision, type NetworkPolicy } from "./policy.ts";
import type { DenyReason } from "./reasons.ts";
import type { Resolver } from "./types.ts";

/**
 * How a request reached the proxy: `http` (absolute-form), `https-connect`
 * (a CONNECT tunnel), `socks5`, `mitm` (one request inside a terminated
 * tunnel), or captured inside the sandbox from a program that connected
 * directly: `captured-tls` (decided like a CONNECT, the TLS server name must
 * be the host), `captured-http` (like absolute-form, the Host header must be
 * the host), `captured-tcp` (a plain tunnel to a `host:port` rule).
 */
export type RequestDoor =
  | "http"
  | "https-connect"
  | "socks5"
  | "mitm"
  | "captured-http"
  | "captured-tls"
  | "captured-tcp";

/** Which guard decided (the reference design's names where it has them). */
export type DecisionSource =
  | "baseline_policy"
  | "mode_guard"
  | "proxy_state"
  | "decider"
  | "request_check"
  | "request_rules"
  | "secrets";

/** Every decision source, in guard order. */
export const DECISION_SOURCES: readonly DecisionSource[] = Object.freeze([
  "proxy_state",
  "request_check",
  "baseline_policy",
  "mode_guard",
  "request_rules",
  "secrets",
  "decider",
]);

/** What one request carries. */
export interface RequestFacts {
  /** The door it came through. */
  readonly door: RequestDoor;
  /** The host as the client spelled it (inside MITM: the host the request names, "" for none). */
  readonly host: string;
  /** The port asked for (inside MITM: the port the request names). */
  readonly port: number;
  /** The HTTP method, or null for tunnels and SOCKS5. */
  readonly method: string | null;
  /** The `Upgrade` the request asks for (websocket, h2c), or null. */
  readonly upgrade?: string | null;
  /** The request carries a body (`Content-Length` > 0 or chunked). */
  readonly body?: boolean;
  /** Why the body framing is malformed, or null (inside MITM; plain HTTP answers 400 before deciding). */
  readonly malformed?: string | null;
  /** The `x-unix-socket` path the request names, or null. */
  readonly unixSocket?: string | null;
  /** Inside MITM: the tunnel as decided for its CONNECT. */
  readonly tunnel?: TunnelFacts | null;
  /**
   * Captured TLS and HTTP: the name the program presented (the ClientHello's
   * server name, the Host header), null when it presented none. It must be
   * the host the synthetic address stands for.
   */
  readonly serverName?: string | null;
  /** Captured doors: the program that connected (`/proc/PID/exe`), for the log; no guard reads it. */
  readonly program?: string | null;
  /** The origin-form target (path and query) of an HTTP request, for request rules. */
  readonly target?: string | null;
  /** The request's headers (HTTP requests), for request rules and secret placeholders. */
  readonly headers?: readonly { readonly name: string; readonly value: string }[] | null;
}

/** A secret of the run: its placeholder (what the sandbox holds) and the hosts it is bound to. */
export interface SecretBinding {
  /** The variable name. */
  readonly name: string;
  /** The placeholder the sandbox holds instead of the value. */
  readonly placeholder: string;
  /** The host patterns the real value may go to. */
  readonly hosts: readonly DomainPattern[];
}

/** The CONNECT a MITM tunnel was opened for, as its verdict said. */
export interface TunnelFacts {
  /** The normalized host. */
  readonly host: string;
  /** The port. */
  readonly port: number;
  /** The checked addresses. */
  readonly addresses: readonly string[];
  /** The rule that allowed the tunnel, as written. */
  readonly rule: string | null;
  /** Where that rule came from. */
  readonly ruleSource: string | null;
}

/** What the unix socket allowlist says about one path (its file system checks are the caller's). */
export type UnixSocketCheck =
  | {
    readonly allowed: true;
    /** The canonical path to connect to. */
    readonly canonical: string;
    /** The allowlist entry that allowed it. */
    readonly rule: string;
    /** Where that entry came from. */
    readonly ruleSource: string | null;
  }
  | { readonly allowed: false; readonly detail: string };

/** The proxy's own listeners: a target among them would loop back into the proxy. */
export interface OwnListeners {
  /** The TCP ports the proxy listens on. */
  readonly ports: ReadonlySet<number>;
  /** The host's own interface addresses (canonical), besides loopback and the unspecified address. */
  readonly addresses: ReadonlySet<string>;
  /**
   * The address each port's listener is bound to (canonical), when known. A port bound to one
   * specific address is the proxy's only at that address (and the unspecified one, which reaches
   * it): another loopback address with the same port number is another socket. Ports without an
   * entry, or bound to a wildcard, count at every local address.
   */
  readonly bound?: ReadonlyMap<number, string>;
}

/** A question for the decider (`--ask`). */
export interface AskQuestion {
  /** The normalized host. */
  readonly host: string;
  /** The port. */
  readonly port: number;
  /** The door. */
  readonly door: RequestDoor;
}

/** Options for {@linkcode decideRequest}: the proxy's state and the async helpers the guards use. */
export interface DecideRequestOptions {
  /** The compiled network policy (domain rules, `enabled`, `mode`). */
  readonly policy: NetworkPolicy;
  /** Resolves a name an allow rule matched (called at most once per host decision). */
  readonly resolver: Resolver;
  /**
   * The proxy serves a sandbox whose loopback is its own (`sandbox run`): loopback literals and
   * names are refused whatever the rules say (policy/loopback.ts).
   */
  readonly sandboxLoopback?: boolean;
  /** Whether the SOCKS5 door is open. */
  readonly socksEnabled: boolean;
  /** Whether limited mode can check HTTPS methods (a MITM handler is present). */
  readonly mitm: boolean;
  /** The proxy's own listeners. */
  readonly ownListeners?: OwnListeners;
  /** The unix socket allowlist check (with its file system checks); without it every socket is refused. */
  readonly checkUnixSocket?: (path: string) => Promise<UnixSocketCheck>;
  /** The run's secrets: placeholders refused on hosts they are not bound to. */
  readonly secrets?: readonly SecretBinding[];
  /** The decider: asked about a `not_allowed` host; "allow" admits this one request. */
  readonly ask?: (question: AskQuestion) => Promise<"allow" | "deny">;
}

/** In report mode: the refusal an allowed request would have had. */
export interface WouldBlock {
  /** The reason it would have been refused for. */
  readonly reason: DenyReason;
  /** The guard that would have refused it. */
  readonly source: DecisionSource;
  /** The rule involved, as written, or null. */
  readonly rule: string | null;
  /** Where that rule came from, or null. */
  readonly ruleSource: string | null;
  /** The precise cause, for people. */
  readonly detail: string;
}

/** The verdict for one request. */
export type RequestVerdict =
  | {
    readonly decision: "allow";
    readonly reason: "allowed";
    /** Report mode: the refusal this request would have had when enforced. */
    readonly wouldBlock?: WouldBlock;
    /** The guard that let it through (`baseline_policy`, or `decider` for an answered question). */
    readonly source: DecisionSource;
    /** The rule that allowed it, as written, or null. */
    readonly rule: string | null;
    /** Where that rule came from, or null. */
    readonly ruleSource: string | null;
    /** The normalized host (`unix:/path` for a unix socket). */
    readonly host: string;
    /** The port (0 for a unix socket). */
    readonly port: number;
    /** The checked addresses to connect to; never resolve again. Empty for a unix socket. */
    readonly addresses: readonly string[];
    /** For `x-unix-socket`: the canonical path to connect to. */
    readonly unixSocket: string | null;
    /** The request rule that matched (its actions apply), or absent. */
    readonly requestRule?: RequestRule | null;
    /** Secrets whose placeholders this request carries to a bound host (replace them). */
    readonly secrets?: readonly string[];
  }
  | {
    readonly decision: "deny";
    readonly reason: DenyReason;
    /** The guard that refused it. */
    readonly source: DecisionSource;
    /** The rule involved, as written, or null. */
    readonly rule: string | null;
    /** Where that rule came from, or null. */
    readonly ruleSource: string | null;
    /** The normalized host (`unix:/path` for a unix socket). */
    readonly host: string;
    /** The port (0 for a unix socket). */
    readonly port: number;
    /** The precise cause, for people. */
    readonly detail: string;
  };

type Deny = Extract<RequestVerdict, { decision: "deny" }>;
type Allow = Extract<RequestVerdict, { decision: "allow" }>;

/** One spelling per host: the canonical form of an IP literal, else the normalized name. */
export function canonicalHost(host: string): string {
  const name = normalizeHost(host);
  return parseIpLiteral(name)?.canonical ?? name;
}

function safeCanonical(host: string): string {
  try {
    return canonicalHost(host);
  } catch {
    return host;
  }
}

/** True when two host spellings name the same host (case, trailing dots, brackets, IPv6 spellings). */
export function sameHost(a: string, b: string): boolean {
  try {
    return canonicalHost(a) === canonicalHost(b);
  } catch {
    return false;
  }
}

/**
 * True when `address:port` is one of the proxy's own listeners: a listener
 * port on loopback, the unspecified address or one of the host's own
 * interface addresses (IPv4-mapped IPv6 included). Something that is not an
 * address on a listener port counts as one (refuse rather than guess).
 */
export function isOwnListener(address: string, port: number, own: OwnListeners): boolean {
  if (!own.ports.has(port)) return false;
  const ip = parseIpLiteral(address);
  if (ip === null) return true;
  const canonical = ip.canonical.replace(/%.*$/, "");
  const v4 = ip.family === 4 ? ip.bytes : isMappedV4(ip.bytes) ? ip.bytes.subarray(12) : null;
  const unspecified = v4 !== null ? v4.every((b) => b === 0) : canonical === "::";
  const bound = own.bound?.get(port);
  if (bound !== undefined && bound !== "0.0.0.0" && bound !== "::") {
    // 0.0.0.0 (or ::) as a destination reaches the host's listeners, those on 127.0.0.1 too.
    if (unspecified) return true;
    return (v4 !== null ? `${v4[0]}.${v4[1]}.${v4[2]}.${v4[3]}` : canonical) === bound;
  }
  if (v4 !== null && (v4[0] === 127 || v4.every((b) => b === 0))) return true;
  if (canonical === "::1" || canonical === "::") return true;
  if (v4 !== null && own.addresses.has(`${v4[0]}.${v4[1]}.${v4[2]}.${v4[3]}`)) return true;
  return own.addresses.has(canonical);
}

function isMappedV4(bytes: Uint8Array): boolean {
  if (bytes.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * Decides one request: runs the guards in order (see the module docs) and
 * returns the first denial, or the allow with the checked addresses. Never
 * throws.
 *
 * @example
 * ```ts
 * const verdict = await decideRequest(
 *   { door: "https-connect", host: "api.example.com", port: 443, method: null },
 *   { policy, resolver, socksEnabled: false, mitm: false },
 * );
 * if (verdict.decision === "deny") console.log(verdict.reason, verdict.source);
 * ```
 */
export async function decideRequest(
  request: RequestFacts,
  options: DecideRequestOptions,
): Promise<RequestVerdict> {
  try {
    const report = options.policy.report === true;
    // No one is asked in report mode: the point is to watch, not to decide.
    const verdict = await runGuards(request, report ? { ...options, ask: undefined } : options);
    if (verdict.decision === "deny" && report && reportable(verdict)) {
      return await reportInstead(request, options, verdict);
    }
    return verdict;
  } catch (error) {
    return {
      decision: "deny",
      reason: "policy_error",
      source: "proxy_state",
      rule: null,
      ruleSource: null,
      host: safeHost(request),
      port: request.unixSocket != null && request.door !== "mitm"
        ? 0
        : request.tunnel?.port ?? request.port,
      detail: `policy check failed: ${errorMessage(error)}`,
    };
  }
}

/** Whether report mode lets a refusal through: host and method reasons, never a floor. */
function reportable(verdict: Deny): boolean {
  if (verdict.source === "mode_guard") return true;
  if (verdict.source !== "baseline_policy" && verdict.source !== "decider") return false;
  if (verdict.reason === "not_allowed") return true;
  return verdict.reason === "denied" && !(verdict.ruleSource ?? "").startsWith("managed:");
}

const REPORT_POLICIES = new WeakMap<NetworkPolicy, NetworkPolicy>();

/**
 * The policy report mode decides with: every host allowed by one non-exact
 * rule (so local and private addresses stay refused), managed denies kept,
 * every other deny dropped, methods unrestricted.
 */
function reportPolicy(policy: NetworkPolicy): NetworkPolicy {
  let report = REPORT_POLICIES.get(policy);
  if (report === undefined) {
    const everything = compileDomainPattern("*", "allow");
    report = {
      ...policy,
      mode: "full",
      report: false,
      allow: [{ pattern: everything, source: "report" }],
      deny: policy.deny.filter((rule) => (rule.source ?? "").startsWith("managed:")),
    };
    REPORT_POLICIES.set(policy, report);
  }
  return report;
}

/**
 * Report mode: decides `request` again under {@linkcode reportPolicy}; an
 * allow carries the original refusal, a deny (a floor) is returned with a
 * note that report mode enforces it.
 */
async function reportInstead(
  request: RequestFacts,
  options: DecideRequestOptions,
  refused: Deny,
): Promise<RequestVerdict> {
  const again = await runGuards(request, {
    ...options,
    policy: reportPolicy(options.policy),
    ask: undefined,
  });
  if (again.decision === "deny") {
    return { ...again, detail: `${again.detail} (enforced in report mode too: a floor)` };
  }
  // Keep the rule that would have refused it, so the log says what report mode set aside.
  return {
    ...again,
    rule: refused.rule,
    ruleSource: refused.ruleSource,
    wouldBlock: {
      reason: refused.reason,
      source: refused.source,
      rule: refused.rule,
      ruleSource: refused.ruleSource,
      detail: refused.detail,
    },
  };
}

function safeHost(request: RequestFacts): string {
  if (request.unixSocket != null && request.door !== "mitm") return `unix:${request.unixSocket}`;
  try {
    return canonicalHost(request.host);
  } catch {
    return String(request.host);
  }
}

async function runGuards(
  request: RequestFacts,
  options: DecideRequestOptions,
): Promise<RequestVerdict> {
  const { policy } = options;
  // `x-unix-socket` names the target on the proxy's own doors; inside MITM the CONNECT fixed it.
  const unixPath = request.door !== "mitm" ? request.unixSocket ?? null : null;
  const tunnel = request.door === "mitm" ? request.tunnel ?? null : null;
  // Who the request is about: the unix socket, the tunnel inside MITM, else the target host.
  const host = unixPath !== null
    ? `unix:${unixPath}`
    : tunnel !== null
    ? (request.host === "" ? tunnel.host : safeCanonical(request.host))
    : canonicalHost(request.host);
  const port = unixPath !== null ? 0 : tunnel !== null ? tunnel.port : request.port;
  const deny = (
    reason: DenyReason,
    source: DecisionSource,
    detail: string,
    rule: { rule: string | null; ruleSource: string | null } | null = null,
  ): Deny => ({
    decision: "deny",
    reason,
    source,
    rule: rule?.rule ?? null,
    ruleSource: rule?.ruleSource ?? null,
    host,
    port,
    detail,
  });

  // 1-2. Proxy state: the network is off, or this door is closed.
  if (!policy.enabled) {
    return deny("proxy_disabled", "proxy_state", "network is disabled by the profile");
  }
  if (request.door === "socks5" && !options.socksEnabled) {
    return deny("socks_disabled", "proxy_state", "SOCKS5 is disabled by the configuration");
  }
  if (unixPath !== null && request.door !== "http") {
    return deny(
      "unix_socket_unsupported",
      "proxy_state",
      `x-unix-socket "${unixPath}" is honoured on absolute-form HTTP requests only, not on CONNECT`,
    );
  }

  // 3. The request itself.
  if (unixPath === null && tunnel === null && !(request.port >= 1 && request.port <= 65535)) {
    return deny("invalid_port", "request_check", `invalid port ${request.port}`);
  }
  if (tunnel !== null) {
    const inner = checkTunnelRequest(request, tunnel);
    if (inner !== null) return deny(inner.reason, inner.source, inner.detail, tunnel);
  }
  if (request.door === "captured-tls" || request.door === "captured-http") {
    // A literal address stands for itself: a TLS client dialling one often sends no name.
    const named = request.serverName ?? null;
    const literal = parseIpLiteral(host) !== null;
    if (named === null ? !literal : !sameHost(named, host)) {
      const what = request.door === "captured-tls" ? "TLS server name (SNI)" : "Host header";
      return deny(
        "host_mismatch",
        "request_check",
        named === null
          ? `no ${what} was sent for "${host}"`
          : `the ${what} "${named}" is not "${host}", the name the program looked up`,
      );
    }
  }

  // 4. Baseline policy: the unix socket allowlist, the tunnel's own verdict, or the host decision.
  let allowed: Allow;
  let pending: Deny | null = null;
  if (unixPath !== null) {
    const check = options.checkUnixSocket === undefined
      ? { allowed: false as const, detail: `unix socket "${unixPath}" refused: no allowlist` }
      : await options.checkUnixSocket(unixPath);
    if (!check.allowed) {
      return deny("unix_socket_not_allowed", "baseline_policy", check.detail);
    }
    allowed = {
      decision: "allow",
      reason: "allowed",
      source: "baseline_policy",
      rule: check.rule,
      ruleSource: check.ruleSource,
      host,
      port,
      addresses: [],
      unixSocket: check.canonical,
    };
  } else if (tunnel !== null) {
    allowed = {
      decision: "allow",
      reason: "allowed",
      source: "baseline_policy",
      rule: tunnel.rule,
      ruleSource: tunnel.ruleSource,
      host,
      port,
      addresses: tunnel.addresses,
      unixSocket: null,
    };
  } else {
    const loopback = options.sandboxLoopback === true ? hostLoopbackReason(host) : null;
    if (loopback !== null) {
      return deny(
        "not_allowed_local",
        "baseline_policy",
        `${loopback}: inside the sandbox, loopback is the sandbox's own; the host's ` +
          `loopback is ${HOST_LOOPBACK_ALIAS}:PORT, with a rule allowing it`,
      );
    }
    const fromHost = fromHostDecision(
      await decideHost(policy, host, { resolver: options.resolver, port }),
      port,
    );
    if (fromHost.decision === "deny" && fromHost.reason !== "not_allowed") return fromHost;
    if (fromHost.decision === "deny") {
      pending = fromHost;
      allowed = {
        ...fromHost,
        decision: "allow",
        reason: "allowed",
        addresses: [],
        unixSocket: null,
      };
    } else {
      allowed = fromHost;
    }
  }

  // 5. Mode guard.
  const modeDeny = modeGuard(request, options, policy.mode);
  if (modeDeny !== null) {
    return pending ?? deny(modeDeny.reason, modeDeny.source, modeDeny.detail, allowed);
  }

  // 5a. Per-host request rules.
  const rules = options.policy.requestRules;
  if (rules !== undefined && rules.size > 0 && unixPath === null) {
    const hooked = rules.has(host);
    if (hooked && (request.door === "socks5" || request.door === "captured-tcp")) {
      return pending ?? deny(
        "mitm_required",
        "request_rules",
        `${host} has request rules; a ${
          request.door === "socks5" ? "SOCKS5" : "plain TCP"
        } tunnel cannot show its requests (use the HTTP proxy)`,
        allowed,
      );
    }
    if (
      hooked && (request.door === "https-connect" || request.door === "captured-tls") &&
      !options.mitm
    ) {
      return pending ?? deny(
        "mitm_required",
        "request_rules",
        `${host} has request rules; checking them in HTTPS needs MITM (a CA)`,
        allowed,
      );
    }
    if (hooked && request.method !== null && request.method !== "CONNECT") {
      const evaluation = evaluateRequestRules(rules, host, {
        method: request.method,
        target: request.target ?? "/",
        headers: request.headers ?? [],
      });
      if (evaluation.kind === "no_match") {
        return pending ?? deny(
          "mitm_hook_denied",
          "request_rules",
          `${request.method} ${
            pathOf(request.target ?? "/")
          } to ${host} matches none of its ${evaluation.rules} request rule(s)`,
          allowed,
        );
      }
      if (evaluation.kind === "matched") {
        allowed = {
          ...allowed,
          requestRule: evaluation.rule,
          rule: evaluation.rule.name,
          ruleSource: evaluation.rule.source,
        };
      }
    }
  }

  // 5b. Secret placeholders: only toward a bound host.
  const secrets = options.secrets ?? [];
  if (secrets.length > 0 && unixPath === null && (request.headers || request.target)) {
    const carried: string[] = [];
    for (const secret of secrets) {
      const inHeaders = (request.headers ?? []).some((h) =>
        carriesPlaceholder(h.value, secret.placeholder)
      );
      const inTarget = (request.target ?? "").includes(secret.placeholder);
      if (!inHeaders && !inTarget) continue;
      const bound = secret.hosts.some((p) => matchesDomainPattern(p, host));
      if (!bound || inTarget) {
        return pending ?? deny(
          "secret_wrong_host",
          "secrets",
          `the request carries the placeholder of secret ${secret.name} ${
            inTarget ? "in its URL" : `to ${host}, which it is not bound to`
          }`,
          allowed,
        );
      }
      carried.push(secret.name);
    }
    if (carried.length > 0) allowed = { ...allowed, secrets: carried };
  }

  // 6. The decider: only a plain allowlist miss, only when everything else would pass.
  if (pending !== null) {
    if (options.ask === undefined) return pending;
    let answer: "allow" | "deny";
    try {
      answer = await options.ask({ host: pending.host, port, door: request.door }) === "allow"
        ? "allow"
        : "deny";
    } catch {
      answer = "deny";
    }
    if (answer !== "allow") return { ...pending, source: "decider" };
    const once = await decideHost(policyAllowingOnce(policy, pending.host), host, {
      resolver: options.resolver,
      port,
    });
    const admitted = fromHostDecision(once, port);
    if (admitted.decision === "deny") return { ...admitted, source: "decider" };
    allowed = { ...admitted, source: "decider" };
  }

  // 7. The proxy's own listeners, on the checked addresses.
  const own = options.ownListeners;
  if (own !== undefined && allowed.addresses.some((address) => isOwnListener(address, port, own))) {
    return deny(
      "own_listener",
      "proxy_state",
      `${host}:${port} is the proxy's own listener`,
      allowed,
    );
  }
  return allowed;
}

function pathOf(target: string): string {
  const q = target.indexOf("?");
  return q < 0 ? target : target.slice(0, q);
}

/** The placeholder as written, or inside a Basic credential (base64 of `user:password`). */
function carriesPlaceholder(value: string, placeholder: string): boolean {
  if (value.includes(placeholder)) return true;
  const basic = /^\s*basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value);
  if (basic === null) return false;
  try {
    return atob(basic[1]).includes(placeholder);
  } catch {
    return false;
  }
}

function fromHostDecision(decision: HostDecision, port: number): Allow | Deny {
  if (decision.decision === "allow") {
    return {
      decision: "allow",
      reason: "allowed",
      source: "baseline_policy",
      rule: decision.rule,
      ruleSource: decision.source,
      host: decision.host,
      port,
      addresses: decision.addresses,
      unixSocket: null,
    };
  }
  return {
    decision: "deny",
    reason: decision.reason,
    source: decision.reason === "proxy_disabled" ? "proxy_state" : "baseline_policy",
    rule: decision.rule,
    ruleSource: decision.source,
    host: decision.host,
    port,
    detail: decision.detail,
  };
}

/**
 * An answered question admits one request: the policy is widened by that exact host for one
 * decision, so the usual checks (private addresses, one resolution) still apply to it. The
 * added rule is marked non-exact: an exact allow rule unlocks private addresses (explicit
 * intent in a config), but "yes" at a prompt for a name must not let that name reach
 * loopback, the LAN or the metadata address through its DNS answer.
 */
function policyAllowingOnce(policy: NetworkPolicy, host: string): NetworkPolicy {
  const pattern = compileDomainPattern(host, "allow");
  return {
    ...policy,
    allow: [...policy.allow, { pattern: { ...pattern, exact: false }, source: "ask" }],
  };
}

/** Step 3 inside MITM: the request must name the tunnel's host and port, with sound framing. */
function checkTunnelRequest(
  request: RequestFacts,
  tunnel: TunnelFacts,
): { reason: DenyReason; source: DecisionSource; detail: string } | null {
  // An inner CONNECT is the mode guard's (405) whatever host it names.
  if (request.method === "CONNECT") return null;
  if (request.host === "" || !sameHost(request.host, tunnel.host) || request.port !== tunnel.port) {
    const named = request.host === "" ? "no single host" : `"${request.host}:${request.port}"`;
    return {
      reason: "host_mismatch",
      source: "request_check",
      detail:
        `The request's host (${named}) is not the tunnel's host "${tunnel.host}:${tunnel.port}"`,
    };
  }
  return null;
}

/**
 * Step 5: what limited mode (and, inside MITM, any mode) refuses. Malformed
 * framing inside MITM is a `request_check` answered at this point, after
 * the method and upgrade rules and before the body rule.
 */
function modeGuard(
  request: RequestFacts,
  options: DecideRequestOptions,
  mode: NetworkPolicy["mode"],
): { reason: DenyReason; source: DecisionSource; detail: string } | null {
  const limited = mode === "limited";
  const refuse = (reason: DenyReason, detail: string, source: DecisionSource = "mode_guard") => ({
    reason,
    source,
    detail,
  });
  if (request.door === "mitm" && request.method === "CONNECT") {
    return refuse("method_not_allowed", "CONNECT inside a MITM tunnel is not allowed");
  }
  if (limited && request.door === "socks5") {
    return refuse("method_not_allowed", "SOCKS5 is not available in limited mode");
  }
  if (limited && request.door === "captured-tcp") {
    return refuse("method_not_allowed", "plain TCP tunnels are not available in limited mode");
  }
  if (
    limited && (request.door === "https-connect" || request.door === "captured-tls") &&
    !options.mitm
  ) {
    return refuse("mitm_required", "limited mode needs MITM to check methods in HTTPS");
  }
  if (request.method !== null && decideMethod(mode, request.method).decision === "deny") {
    return refuse("method_not_allowed", `method "${request.method}" in limited mode`);
  }
  if (request.upgrade && request.door === "mitm") {
    return refuse(
      "method_not_allowed",
      "Protocol upgrades (WebSocket) are not allowed through MITM",
    );
  }
  if (request.upgrade && limited) {
    return refuse("method_not_allowed", `upgrade to "${request.upgrade}" in limited mode`);
  }
  // Malformed framing is known only here (inside MITM), and answered before the body rule.
  if (request.malformed) {
    return refuse("bad_request", `Malformed request: ${request.malformed}`, "request_check");
  }
  if (limited && request.body === true) {
    // A body on GET/HEAD/OPTIONS would carry uploads through "read-only" mode.
    return refuse("method_not_allowed", `a request body on ${request.method} in limited mode`);
  }
  return null;
}

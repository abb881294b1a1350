/**
 * The network part of the effective configuration, and the resolver the
 * host decision calls: plain data at the bottom floor, so that the policy
 * engine, the profile loader and the proxy share one shape.
 *
 * @module
 */

/** Where a rule or setting came from, e.g. `managed:/etc/sandbox/requirements.toml`,
 * `user:/home/a/.config/sandbox/config.toml`, `flag:--allow`, `preset:common-dependencies`,
 * `default`. Shown by `sandbox profile show` and in decisions. */
export type RuleSource = string;

/** A domain rule: a pattern and whether it allows or denies. */
export interface DomainRule {
  /** The pattern as written (`example.com`, `*.example.com`, `**.example.com`, `*`). */
  readonly pattern: string;
  /** `allow` or `deny`; deny always wins. */
  readonly action: "allow" | "deny";
  /** Where the rule came from. */
  readonly source: RuleSource;
}

/** A unix socket rule: an absolute path and whether it is reachable. */
export interface UnixSocketRule {
  /** Absolute path of the socket. */
  readonly path: string;
  /** `allow` makes it connectable from the sandbox; `none` removes an earlier allow. */
  readonly action: "allow" | "none";
  /** Where the rule came from. */
  readonly source: RuleSource;
}

/** A header a request rule puts into matching requests, its value read by the proxy. */
export interface InjectedHeader {
  /** The header name. */
  readonly name: string;
  /** Read the value from this environment variable (of the launcher, never the sandbox). */
  readonly fromEnv: string | null;
  /** Or from this absolute file (trimmed). */
  readonly fromFile: string | null;
  /** Written before the value (`Bearer `). */
  readonly prefix: string;
}

/**
 * A per-host request rule (the reference design's `mitm_hooks` entry, or our
 * short `requests` form): for requests to `host`, the first rule whose
 * matchers all match decides; a host with rules and no match is refused.
 */
export interface RequestRule {
  /** A name for people: the hook's key, or `requests."host"[i]`. */
  readonly name: string;
  /** The exact host (no wildcards). */
  readonly host: string;
  /** Methods (upper case), at least one. */
  readonly methods: readonly string[];
  /** Path prefixes, or globs after `pattern:`; at least one. */
  readonly paths: readonly string[];
  /** Query key -> allowed values (exact, or `pattern:` globs); every key must be present with one of them. */
  readonly query: Readonly<Record<string, readonly string[]>>;
  /** Header name -> allowed values (an empty list: present with any value). */
  readonly headers: Readonly<Record<string, readonly string[]>>;
  /** Request headers removed before forwarding. */
  readonly stripHeaders: readonly string[];
  /** Request headers set before forwarding (after the strip). */
  readonly injectHeaders: readonly InjectedHeader[];
  /** Where the rule came from. */
  readonly source: RuleSource;
}

/** Method policy: `full` lets every method through; `limited` only GET, HEAD, OPTIONS. */
export type NetworkMode = "full" | "limited";

/** The network part of the effective configuration. */
export interface NetworkConfig {
  /** Whether the sandbox gets network (through the proxy) at all. */
  readonly enabled: boolean;
  /** Method policy. */
  readonly mode: NetworkMode;
  /** Let the policy reach loopback and private addresses. */
  readonly allowLocalBinding: boolean;
  /** Terminate TLS in limited mode so the method can be checked. */
  readonly mitm: boolean;
  /** A user-supplied CA for MITM, or null for the one `sandbox init` creates. */
  readonly mitmCa: { readonly cert: string; readonly key: string } | null;
  /** Every unix socket is reachable from the sandbox. */
  readonly dangerouslyAllowAllUnixSockets: boolean;
  /**
   * Linux: the command may not make unix sockets (`socket(AF_UNIX)`, datagram
   * socketpairs; seccomp), so no pathname socket is reachable inside at all.
   * Absent means false.
   */
  readonly strictUnixSockets?: boolean;
  /** The proxy may listen on a non-loopback address. */
  readonly dangerouslyAllowNonLoopbackProxy: boolean;
  /** Listen address for the HTTP proxy (`http://127.0.0.1:3128`), or null for the default. */
  readonly proxyUrl: string | null;
  /** Listen address for the SOCKS5 proxy, or null for the default. */
  readonly socksUrl: string | null;
  /** Whether the SOCKS5 listener runs. */
  readonly enableSocks5: boolean;
  /** Domain rules in merge order (managed first). */
  readonly domains: readonly DomainRule[];
  /** Unix socket rules in merge order. */
  readonly unixSockets: readonly UnixSocketRule[];
  /** A managed file pinned the allowlist to its own entries. */
  readonly managedAllowedDomainsOnly: boolean;
  /** Turn an allowlist miss into a prompt on the controlling terminal. */
  readonly ask: boolean;
  /**
   * Capture connections that bypass the proxy variables (Linux): names get
   * synthetic addresses inside, and connections to them are decided by this
   * policy. Absent means on.
   */
  readonly capture?: boolean;
  /**
   * `report`: what the rules would refuse for host or method reasons is let through and logged
   * as `would_block`; the floors (local addresses, managed denies, the proxy's own listeners)
   * stay enforced. Absent means `enforce`.
   */
  readonly enforcement?: "enforce" | "report";
  /** Per-host request rules in configuration order (absent: none). */
  readonly requestRules?: readonly RequestRule[];
}

/**
 * Resolves a normalized host name to its addresses (canonical IP strings).
 * Rejects when the name does not resolve; never resolves to an empty list.
 */
export type Resolver = (host: string) => Promise<string[]>;

/**
 * The effective configuration: what every command works from after config
 * files, the chosen profile, presets and command-line flags are merged.
 * Produced by `loadEffectiveConfig()` (profiles/load.ts); consumed by the
 * proxy, the sandbox and execpolicy. Plain data, no behaviour.
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
}

/** Filesystem view of the sandbox beyond the defaults (read-only root, writable cwd). */
export interface FilesystemConfig {
  /** Extra writable paths (absolute, `~` expanded). */
  readonly writable: readonly string[];
  /** Paths hidden from the sandbox (replaced by an empty tmpfs or an empty file). */
  readonly denyRead: readonly string[];
}

/** Which of the launcher's environment variables reach the command. */
export interface EnvConfig {
  /** If set, only variables matching one of these globs pass (`*` wildcard). */
  readonly allow: readonly string[] | null;
  /** Variables matching one of these globs are dropped. Deny beats allow. */
  readonly deny: readonly string[];
}

/** An execpolicy decision. Strictness: deny > allow > allow-network. */
export type ExecDecision = "deny" | "allow" | "allow-network";

/** One execpolicy rule. */
export interface ExecRule {
  /** The command pattern as written, e.g. `git push *`. */
  readonly pattern: string;
  /** What the rule decides. */
  readonly decision: ExecDecision;
  /** Why the rule exists, shown when it denies. */
  readonly justification: string | null;
  /** Example command lines that must match (checked at load). */
  readonly match: readonly string[];
  /** Example command lines that must not match (checked at load). */
  readonly notMatch: readonly string[];
  /** Where the rule came from. */
  readonly source: RuleSource;
}

/** The execpolicy table. */
export interface ExecPolicyConfig {
  /** Decision for a command no rule matches (`allow` unless set). */
  readonly default: ExecDecision;
  /** Rules in merge order. */
  readonly rules: readonly ExecRule[];
}

/** Everything a command needs to know, merged. */
export interface EffectiveConfig {
  /** The permissions profile in use, or null when none was selected. */
  readonly profileName: string | null;
  /** Network settings and rules. */
  readonly network: NetworkConfig;
  /** Filesystem additions. */
  readonly filesystem: FilesystemConfig;
  /** Environment filtering. */
  readonly env: EnvConfig;
  /** The execpolicy table, or null when none is configured. */
  readonly execpolicy: ExecPolicyConfig | null;
  /** Config files read, in the order they were merged. */
  readonly files: readonly string[];
  /** Where each scalar setting came from, by path (`network.mode` -> `flag:--mode`); unset paths are defaults. */
  readonly sources: Readonly<Record<string, RuleSource>>;
  /** Things the merge ignored on purpose (a user allow dropped by `managed_allowed_domains_only`, a looser
   * value than a managed one), one sentence each, for `sandbox profile show` and stderr. */
  readonly notices: readonly string[];
}

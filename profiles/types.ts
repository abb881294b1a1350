/**
 * The effective configuration: what every command works from after config
 * files, the chosen profile, presets and command-line flags are merged.
 * Produced by `loadEffectiveConfig()` (profiles/load.ts); consumed by the
 * proxy, the sandbox and execpolicy. Plain data, no behaviour.
 *
 * @module
 */
import type { NetworkConfig, RuleSource } from "../policy/types.ts";
import type { ExecPolicyConfig } from "../execpolicy/types.ts";

export type {
  DomainRule,
  NetworkConfig,
  NetworkMode,
  RuleSource,
  UnixSocketRule,
} from "../policy/types.ts";
export type { ExecDecision, ExecPolicyConfig, ExecRule } from "../execpolicy/types.ts";

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

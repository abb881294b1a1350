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
  /** Paths hidden from the sandbox (replaced by an empty tmpfs or an unopenable `/dev/null`). */
  readonly denyRead: readonly string[];
  /**
   * Absolute glob patterns (`*`, `?`, `[…]`, `**`) whose matches are hidden
   * like `denyRead`: expanded when the run starts, so a file created later
   * by the command is not hidden during that run. Absent means none.
   */
  readonly denyGlobs?: readonly string[];
  /** How deep a `**` of `denyGlobs` is expanded (Codex's `glob_scan_max_depth`); absent or null: no limit. */
  readonly globScanMaxDepth?: number | null;
  /** Paths inside writable areas that stay read-only (absolute). Absent means none. */
  readonly readOnly?: readonly string[];
  /**
   * The only readable places besides the workspace roots and writable paths
   * (Codex's restricted read: a profile without `":root" = "read"`). Absent or
   * null: the whole filesystem is readable (read-only).
   */
  readonly readRoots?: readonly string[] | null;
  /** The workspace (Codex's `:workspace_roots`); absent means the working dir is writable and nothing else. */
  readonly workspace?: WorkspaceConfig;
}

/**
 * The workspace roots and the rules that apply inside each of them. The
 * working directory is always the first root; it is known only when a run
 * starts, so the rules stay relative until then.
 */
export interface WorkspaceConfig {
  /** Whether the workspace roots are writable (`":workspace_roots" = "write"`). */
  readonly writable: boolean;
  /** Roots besides the working directory (absolute). */
  readonly roots: readonly string[];
  /** Per-root rules: a subpath (or a glob, which only denies) and its access. */
  readonly rules: readonly {
    readonly subpath: string;
    readonly access: "read" | "write" | "deny";
    readonly glob: boolean;
  }[];
}

/** Which of the launcher's environment variables reach the command. */
export interface EnvConfig {
  /** If set, only variables matching one of these globs pass (`*` wildcard). */
  readonly allow: readonly string[] | null;
  /** Variables matching one of these globs are dropped. Deny beats allow. */
  readonly deny: readonly string[];
}

/** A secret of the run: the command sees a placeholder, the proxy puts the value into requests to `hosts`. */
export interface SecretConfig {
  /** The variable the command sees. */
  readonly name: string;
  /** Read the real value from this launcher variable (null: `name`). */
  readonly fromEnv: string | null;
  /** Or from this absolute file. */
  readonly fromFile: string | null;
  /** Host patterns the value may go to. */
  readonly hosts: readonly string[];
  /** Skipped when the launcher has no value (built-in bindings). */
  readonly optional: boolean;
  /** Where the binding came from. */
  readonly source: RuleSource;
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
  /** Secrets bound to hosts (`[permissions.NAME.secrets]`, `--secret`); absent: none. */
  readonly secrets?: readonly SecretConfig[];
  /** Things the merge ignored on purpose (a user allow dropped by `managed_allowed_domains_only`, a looser
   * value than a managed one), one sentence each, for `sandbox profile show` and stderr. */
  readonly notices: readonly string[];
}

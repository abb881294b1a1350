/**
 * `validateConfig()`: the one place parsed TOML (`unknown`) becomes a typed
 * config file, or a list of every problem found in it, each with its file,
 * line and key path. Two kinds of file share the network keys:
 *
 * - a user config (`config.toml`, `--config FILE`): the Codex
 *   permissions-profile shape (`default_permissions`, `[permissions.NAME.…]`)
 *   plus our additions and the top-level `[execpolicy]` table;
 * - managed requirements (`requirements.toml`): `[experimental_network]`
 *   (legacy lists or canonical maps, not both) and `[execpolicy]`.
 *
 * Unknown keys are errors, except the top-level keys Codex itself defines
 * ({@linkcode CODEX_IGNORED_KEYS}), which are accepted and ignored so an
 * existing Codex `config.toml` loads unchanged.
 *
 * @module
 */
import { type ConfigProblem, errorMessage } from "../errors.ts";
import { compileRequestRule, READ_METHODS, RequestRuleError } from "../policy/request_rules.ts";
import type { InjectedHeader, RequestRule } from "../policy/types.ts";
import { checkDomainPattern, isPlainDomainPattern } from "./_pattern.ts";
import { materializeEntries, PlainEntries } from "./_toml_fast.ts";
import { isPresetName, PRESETS } from "./presets.ts";
import { formatKeyPath, type KeyLines, parseTomlText, splitDottedKey } from "./toml.ts";
import { checkExecPolicyExamples } from "../execpolicy/mod.ts";
import type { ExecDecision, ExecRule, NetworkMode } from "./types.ts";

/** Which kind of file is being validated. */
export type ConfigKind = "user" | "managed";

/** The network keys one file (or one profile of it) wrote; absent keys were not written. */
export interface NetworkLayer {
  /** `enabled`. */
  readonly enabled?: boolean;
  /** `mode`. */
  readonly mode?: NetworkMode;
  /** `allow_local_binding`. */
  readonly allowLocalBinding?: boolean;
  /** `mitm`. */
  readonly mitm?: boolean;
  /** `[mitm_ca]` `cert` and `key` paths as written (absolute or `~/`). */
  readonly mitmCa?: { readonly cert: string; readonly key: string };
  /** `dangerously_allow_all_unix_sockets`. */
  readonly dangerouslyAllowAllUnixSockets?: boolean;
  /** `strict_unix_sockets`. */
  readonly strictUnixSockets?: boolean;
  /** `dangerously_allow_non_loopback_proxy`. */
  readonly dangerouslyAllowNonLoopbackProxy?: boolean;
  /** `proxy_url` (or managed `http_port` as `http://127.0.0.1:PORT`). */
  readonly proxyUrl?: string;
  /** `socks_url` (or managed `socks_port`). */
  readonly socksUrl?: string;
  /** `enable_socks5`. */
  readonly enableSocks5?: boolean;
  /** `ask`. */
  readonly ask?: boolean;
  /** `capture`. */
  readonly capture?: boolean;
  /** `enforcement`: `enforce`, or `report` (let through and log what would be refused). */
  readonly enforcement?: "enforce" | "report";
  /** `managed_allowed_domains_only` (managed files only). */
  readonly managedAllowedDomainsOnly?: boolean;
  /** Domain rules, canonical or normalized from the legacy lists. */
  readonly domains: readonly { readonly pattern: string; readonly action: "allow" | "deny" }[];
  /** Unix socket rules. */
  readonly unixSockets: readonly { readonly path: string; readonly action: "allow" | "none" }[];
  /** `presets = [...]`: names of built-in presets to add as allow rules. */
  readonly presets: readonly string[];
  /** Per-host request rules (`[network.mitm.hooks]` or `requests`), source filled in by the loader. */
  readonly requestRules?: readonly RequestRule[];
}

/** One `[permissions.NAME]` profile. */
export interface ProfileLayer {
  /** `description`. */
  readonly description: string | null;
  /** `extends`: a parent profile whose keys this one overrides. */
  readonly extends: string | null;
  /** `[permissions.NAME.network]`. */
  readonly network: NetworkLayer;
  /** `[permissions.NAME.filesystem]`, paths as written. */
  readonly filesystem: FilesystemLayer;
  /** `[permissions.NAME.workspace_roots]`: extra workspace roots as written (absolute, `~/` or relative to the working directory), enabled or not. */
  readonly workspaceRoots: readonly { readonly path: string; readonly enabled: boolean }[];
  /**
   * What this profile asks for that the sandbox cannot enforce, each as the
   * problem to report if the profile is used (a profile that is never
   * selected does not stop a run).
   */
  readonly unsupported: readonly ConfigProblem[];
  /** `[permissions.NAME.env]`; `allow` absent means "not written". */
  readonly env: { readonly allow?: readonly string[]; readonly deny: readonly string[] };
  /** `[permissions.NAME.secrets]`. */
  readonly secrets?: readonly SecretLayer[];
}

/** One secret binding as written (or a built-in's). */
export interface SecretLayer {
  /** The variable the command sees (holding a placeholder). */
  readonly name: string;
  /** Read the real value from this launcher variable (default: `name`). */
  readonly fromEnv: string | null;
  /** Or from this file (absolute or `~/`). */
  readonly fromFile: string | null;
  /** Host patterns the real value may go to. */
  readonly hosts: readonly string[];
  /** Also bound to the npm registry this machine's npm is configured for. */
  readonly npmRegistry: boolean;
  /** A built-in: skipped when the launcher has no such variable. */
  readonly optional: boolean;
}

/** The built-in bindings a profile switches on with `secrets.builtin = [...]`. */
export const BUILTIN_SECRETS: Readonly<
  Record<string, { vars: readonly string[]; hosts: readonly string[]; npmRegistry?: boolean }>
> = Object.freeze({
  github: {
    vars: ["GH_TOKEN", "GITHUB_TOKEN"],
    hosts: ["github.com", "api.github.com", "uploads.github.com"],
  },
  npm: { vars: ["NPM_TOKEN"], hosts: [], npmRegistry: true },
  openai: { vars: ["OPENAI_API_KEY"], hosts: ["api.openai.com"] },
  anthropic: { vars: ["ANTHROPIC_API_KEY"], hosts: ["api.anthropic.com"] },
});

/** Access of a Codex filesystem entry (`none` is read as its older spelling of `deny`). */
export type FsAccess = "read" | "write" | "deny";

/**
 * One Codex filesystem entry of a profile: a special path (`:root`,
 * `:minimal`, `:workspace_roots`, `:tmpdir`, `:slash_tmp`), an absolute or
 * `~/` path, or a glob, with the access it gets. Entries under
 * `":workspace_roots"` carry the subpath relative to each workspace root
 * (`"."` for the root itself).
 */
export interface FsEntry {
  /** What the entry names. */
  readonly target:
    | { readonly kind: "special"; readonly name: string; readonly subpath?: string }
    | { readonly kind: "path"; readonly path: string }
    | { readonly kind: "glob"; readonly pattern: string };
  /** The access it gets. */
  readonly access: FsAccess;
  /** Identity for `extends`: a child's entry replaces its parent's entry with the same id. */
  readonly id: string;
  /** The key path it was written at (for problems found when it is applied). */
  readonly keyPath: readonly string[];
  /** The line it was written on, when known. */
  readonly line?: number;
}

/** `[permissions.NAME.filesystem]` of one profile. */
export interface FilesystemLayer {
  /** `writable = [...]` (ours). */
  readonly writable: readonly string[];
  /** `deny_read = [...]` (ours, and Codex's managed key). */
  readonly denyRead: readonly string[];
  /** Codex access entries, in file order. */
  readonly entries: readonly FsEntry[];
  /** `glob_scan_max_depth`, when written. */
  readonly globScanMaxDepth?: number;
}

/** The classic Codex sandbox keys of a user config (`sandbox_mode`, `[sandbox_workspace_write]`). */
export interface ClassicSandbox {
  /** `sandbox_mode`, or null when not written. */
  readonly mode: "read-only" | "workspace-write" | "danger-full-access" | null;
  /** The line `sandbox_mode` was written on. */
  readonly modeLine?: number;
  /** `[sandbox_workspace_write]` keys that were written. */
  readonly workspaceWrite: {
    readonly writableRoots?: readonly string[];
    readonly networkAccess?: boolean;
    readonly excludeTmpdirEnvVar?: boolean;
    readonly excludeSlashTmp?: boolean;
  };
}

/** `[application.network]`: destinations of the Codex application itself (managed in Codex). */
export interface ApplicationNetwork {
  /** `enabled` (default true). */
  readonly enabled: boolean;
  /** Exact domain names and their action. */
  readonly domains: readonly { readonly pattern: string; readonly action: "allow" | "deny" }[];
}

/** An execpolicy rule as written in one file (its source is added when merged). */
export type ExecRuleSpec = Omit<ExecRule, "source">;

/** A validated user config file. */
export interface UserConfigFile {
  /** Always `user`. */
  readonly kind: "user";
  /** The file it came from. */
  readonly file: string;
  /** `default_permissions`, or null when not written. */
  readonly defaultPermissions: string | null;
  /** `[permissions.NAME]` by name. */
  readonly profiles: Readonly<Record<string, ProfileLayer>>;
  /** `[execpolicy]` rules in file order. */
  readonly execpolicy: readonly ExecRuleSpec[];
  /** `execpolicy_default`, or null when not written. */
  readonly execpolicyDefault: ExecDecision | null;
  /** `rules = [...]`: Codex execpolicy `.rules` files, as written (relative to the file's dir). */
  readonly rulesFiles?: readonly string[];
  /** `sandbox_mode` and `[sandbox_workspace_write]`. */
  readonly classic: ClassicSandbox;
  /** `[application.network]`, or null when not written. */
  readonly application: ApplicationNetwork | null;
  /** Keys accepted but ignored (Codex keys this tool does not use), one sentence each. */
  readonly notices: readonly string[];
}

/** A validated managed requirements file. */
export interface ManagedConfigFile {
  /** Always `managed`. */
  readonly kind: "managed";
  /** The file it came from. */
  readonly file: string;
  /** `[experimental_network]`. */
  readonly network: NetworkLayer;
  /** `[execpolicy]` rules in file order. */
  readonly execpolicy: readonly ExecRuleSpec[];
  /** `execpolicy_default`, or null when not written. */
  readonly execpolicyDefault: ExecDecision | null;
  /** `[permissions.filesystem] deny_read`: absolute paths and globs no run may read. */
  readonly denyRead: readonly string[];
  /** `allowed_permissions` (or the true entries of `[allowed_permission_profiles]`): the only profiles a user may select, or null when not written. */
  readonly allowedPermissions: readonly string[] | null;
  /** `default_permissions`: the profile used when no user file or flag picks one, or null. */
  readonly defaultPermissions: string | null;
  /** `allowed_sandbox_modes`: the only classic `sandbox_mode` values a user file may set, or null. */
  readonly allowedSandboxModes: readonly string[] | null;
  /** `[permissions.NAME]` profiles the administrator defines (users may select, not redefine them). */
  readonly profiles: Readonly<Record<string, ProfileLayer>>;
  /** `[application.network]`, or null when not written. */
  readonly application: ApplicationNetwork | null;
  /** Keys accepted but ignored, one sentence each. */
  readonly notices: readonly string[];
}

/** Either kind of validated file. */
export type ConfigFile = UserConfigFile | ManagedConfigFile;

/** The result of {@linkcode validateConfig}: the typed file, or every problem found. */
export type ValidationResult =
  | { readonly ok: true; readonly config: ConfigFile }
  | { readonly ok: false; readonly problems: readonly ConfigProblem[] };

/** Options for {@linkcode validateConfig}. */
export interface ValidateConfigOptions {
  /** The file name used in problems. */
  file: string;
  /** User config or managed requirements. */
  kind: ConfigKind;
  /** Line lookup for problems (from `parseTomlText`); without it problems carry no line. */
  lines?: KeyLines;
}

/**
 * Top-level keys of a Codex `config.toml` that a user config may contain and
 * that this tool ignores (they configure the Codex agent, not the sandbox).
 * Anything else unknown at the top level is an error.
 */
export const CODEX_IGNORED_KEYS: ReadonlySet<string> = new Set([
  "model",
  "review_model",
  "model_provider",
  "model_providers",
  "model_context_window",
  "model_auto_compact_token_limit",
  "model_auto_compact_token_limit_scope",
  "model_reasoning_effort",
  "plan_mode_reasoning_effort",
  "model_reasoning_summary",
  "model_verbosity",
  "model_supports_reasoning_summaries",
  "model_catalog_json",
  "model_instructions_file",
  "approval_policy",
  "approvals_reviewer",
  "auto_review",
  "shell_environment_policy",
  "allow_login_shell",
  "notify",
  "instructions",
  "developer_instructions",
  "compact_prompt",
  "include_permissions_instructions",
  "include_apps_instructions",
  "include_collaboration_mode_instructions",
  "include_environment_context",
  "forced_chatgpt_workspace_id",
  "forced_login_method",
  "cli_auth_credentials_store",
  "preferred_auth_method",
  "mcp_servers",
  "mcp_oauth_credentials_store",
  "mcp_oauth_callback_port",
  "mcp_oauth_callback_url",
  "project_doc_max_bytes",
  "project_doc_fallback_filenames",
  "project_root_markers",
  "tool_output_token_limit",
  "background_terminal_max_timeout",
  "profile",
  "profiles",
  "history",
  "sqlite_home",
  "sqlite",
  "log_dir",
  "debug",
  "file_opener",
  "tui",
  "hide_agent_reasoning",
  "show_raw_agent_reasoning",
  "personality",
  "service_tier",
  "chatgpt_base_url",
  "openai_base_url",
  "projects",
  "web_search",
  "tools",
  "tool_suggest",
  "agents",
  "memories",
  "skills",
  "hooks",
  "plugins",
  "marketplaces",
  "features",
  "suppress_unstable_features_warning",
  "ghost_snapshot",
  "check_for_update_on_startup",
  "disable_paste_burst",
  "analytics",
  "feedback",
  "apps",
  "desktop",
  "otel",
  "windows",
  "notice",
  "oss_provider",
  "network",
]);

/** Top-level keys of a Codex `requirements.toml` that a managed file may contain and this tool ignores. */
export const CODEX_IGNORED_REQUIREMENT_KEYS: ReadonlySet<string> = new Set([
  "allowed_approval_policies",
  "allowed_approvals_reviewers",
  "allowed_web_search_modes",
  "allow_managed_hooks_only",
  "computer_use",
  "features",
  "hooks",
  "mcp_servers",
  "plugins",
  "rules",
  "remote_sandbox_config",
  "allow_appshots",
  "apps",
  "enforce_residency",
  "guardian_policy_config",
]);

const EXEC_DECISIONS: readonly ExecDecision[] = ["allow", "allow-network", "deny"];

/** The true/false keys of a network table and the {@linkcode NetworkLayer} field each sets. */
const NETWORK_BOOLEANS = {
  enabled: "enabled",
  allow_local_binding: "allowLocalBinding",
  mitm: "mitm",
  dangerously_allow_all_unix_sockets: "dangerouslyAllowAllUnixSockets",
  strict_unix_sockets: "strictUnixSockets",
  dangerously_allow_non_loopback_proxy: "dangerouslyAllowNonLoopbackProxy",
  enable_socks5: "enableSocks5",
  ask: "ask",
  capture: "capture",
} as const satisfies Record<string, keyof NetworkLayer>;

/**
 * Validates a parsed config file. Reports every problem (not just the
 * first), each with its key path; never fills in a default for a key the
 * user wrote.
 *
 * @example
 * ```ts
 * const result = validateConfig({ default_permissions: "ci", permissions: { ci: { network: { mode: "open" } } } },
 *   { file: "c.toml", kind: "user" });
 * // result.ok === false; result.problems[0].keyPath === "permissions.ci.network.mode"
 * ```
 */
export function validateConfig(value: unknown, options: ValidateConfigOptions): ValidationResult {
  const checker = new Checker(options.file, options.lines);
  const config = options.kind === "user" ? checker.userFile(value) : checker.managedFile(value);
  if (config !== null && config.execpolicy.length > 0) {
    // Pattern grammar and match/not_match examples belong to the execpolicy engine; asked here so
    // that its problems are listed together with every other problem of the file, not after them.
    const policy = {
      default: config.execpolicyDefault ?? "allow" as const,
      rules: config.execpolicy.map((rule) => ({ ...rule, source: `file:${options.file}` })),
    };
    for (const problem of checkExecPolicyExamples(policy)) {
      const path = splitDottedKey(problem.keyPath.replace(/\[\d+\]$/, ""));
      const line = path === null ? undefined : options.lines?.lineOf(path);
      checker.problems.push(
        line === undefined
          ? { ...problem, file: options.file }
          : { ...problem, file: options.file, line },
      );
    }
  }
  if (checker.problems.length > 0 || config === null) {
    return { ok: false, problems: checker.problems };
  }
  return { ok: true, config };
}

/**
 * Parses and validates TOML text in one step (syntax and duplicate-key
 * problems included).
 *
 * @example
 * ```ts
 * const result = await validateConfigText('default_permissions = "ci"\n[permissions.ci.network]\nenabled = true\n',
 *   { file: "c.toml", kind: "user" });
 * ```
 */
export async function validateConfigText(
  text: string,
  options: Omit<ValidateConfigOptions, "lines">,
): Promise<ValidationResult> {
  const parsed = await parseTomlText(text, options.file);
  if (!parsed.ok) return { ok: false, problems: parsed.problems };
  return validateConfig(parsed.value, { ...options, lines: parsed.lines });
}

/**
 * Decides which kind a file is for `sandbox profile validate`: managed when
 * it is named `requirements.toml` or has a top-level `[experimental_network]`
 * table, otherwise a user config.
 */
export function detectConfigKind(path: string, value: unknown): ConfigKind {
  const base = path.split("/").pop() ?? path;
  if (base === "requirements.toml") return "managed";
  if (isTable(value) && Object.hasOwn(value, "experimental_network")) return "managed";
  return "user";
}

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date);
}

function typeName(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date-time";
  if (isTable(value)) return "a table";
  if (typeof value === "number") return Number.isInteger(value) ? "an integer" : "a float";
  if (typeof value === "bigint") return "an integer";
  return `a ${typeof value}`;
}

function quoteList(values: Iterable<string>): string {
  return [...values].map((v) => `"${v}"`).join(", ");
}

class Checker {
  readonly problems: ConfigProblem[] = [];
  readonly notices: string[] = [];
  constructor(readonly file: string, readonly lines: KeyLines | undefined) {}

  problem(path: readonly string[], message: string): void {
    const line = this.lines?.lineOf(path);
    this.problems.push({
      file: this.file,
      ...(line === undefined ? {} : { line }),
      keyPath: formatKeyPath(path),
      message,
    });
  }

  /** Notes the keys accepted but ignored in the table at `path`, if there are any. */
  noteIgnored(path: readonly string[], what: string, keys: readonly string[]): void {
    if (keys.length === 0) return;
    const where = path.length === 0 ? "" : `: ${formatKeyPath(path)}`;
    this.notices.push(`${this.file}${where}: ${what}: ${keys.join(", ")}`);
  }

  /** Whether `text` is an absolute or `~/` path; reports it at `path` when not. */
  homePath(text: string, path: readonly string[]): boolean {
    if (isAbsoluteOrHome(text)) return true;
    this.problem(
      path,
      `Invalid path "${text}": expected an absolute path or one starting with "~/"`,
    );
    return false;
  }

  /** Reports every key of `table` not in `allowed`; returns false if any. */
  knownKeys(table: Table, path: readonly string[], allowed: readonly string[]): void {
    for (const key of Object.keys(table)) {
      if (!allowed.includes(key)) {
        this.problem([...path, key], `Unknown key: expected one of ${quoteList(allowed)}`);
      }
    }
  }

  /**
   * `check`s `table[key]` when the key is written; `fallback` when it is not
   * (or when its value was invalid, which `check` has reported).
   */
  optional<T, F>(
    table: Table,
    key: string,
    path: readonly string[],
    check: (this: Checker, value: unknown, path: readonly string[]) => T | null | undefined,
    fallback: F,
  ): T | F {
    if (table[key] === undefined) return fallback;
    return check.call(this, table[key], [...path, key]) ?? fallback;
  }

  table(value: unknown, path: readonly string[]): Table | null {
    // A `domains` table read as entries, met where an ordinary table is expected.
    if (value instanceof PlainEntries) return materializeEntries(value) as Table;
    if (isTable(value)) return value;
    this.problem(path, `Expected a table, found ${typeName(value)}`);
    return null;
  }

  bool(value: unknown, path: readonly string[]): boolean | undefined {
    if (typeof value === "boolean") return value;
    this.problem(path, `Expected true or false, found ${typeName(value)}`);
    return undefined;
  }

  string(value: unknown, path: readonly string[]): string | undefined {
    if (typeof value === "string") return value;
    this.problem(path, `Expected a string, found ${typeName(value)}`);
    return undefined;
  }

  oneOf<T extends string>(
    value: unknown,
    path: readonly string[],
    choices: readonly T[],
  ): T | undefined {
    if (typeof value === "string" && (choices as readonly string[]).includes(value)) {
      return value as T;
    }
    const found = typeof value === "string" ? `"${value}"` : typeName(value);
    this.problem(path, `Expected one of ${quoteList(choices)}, found ${found}`);
    return undefined;
  }

  /**
   * Checks a `{ NAME = ACTION }` table and hands each entry with a valid
   * action to `add`. The key path given to `add` is one array reused for
   * every entry (a 100,000-rule allowlist would otherwise allocate one per
   * rule): use it during the call only, as {@linkcode problem} does.
   */
  actionMap<T extends string>(
    value: unknown,
    path: readonly string[],
    actions: readonly T[],
    add: (name: string, action: T, path: readonly string[]) => void,
  ): void {
    // Entries (a large table as the plain reader hands it over) are visited in the order the
    // object's keys would be, without building the object.
    const entries = value instanceof PlainEntries ? value : null;
    const map = entries === null ? this.table(value, path) : null;
    if (map === null && entries === null) return;
    const at = [...path, ""];
    const last = path.length;
    const names = entries?.keys ?? Object.keys(map!);
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      const action = entries !== null ? entries.values[i] : map![name];
      at[last] = name;
      const checked = typeof action === "string" && (actions as readonly string[]).includes(action)
        ? action as T
        : this.oneOf(action, at, actions);
      if (checked !== undefined) add(name, checked, at);
    }
  }

  stringList(value: unknown, path: readonly string[]): string[] | undefined {
    if (!Array.isArray(value)) {
      this.problem(path, `Expected an array of strings, found ${typeName(value)}`);
      return undefined;
    }
    const out: string[] = [];
    let ok = true;
    value.forEach((item, index) => {
      if (typeof item === "string") out.push(item);
      else {
        ok = false;
        this.problem(
          path,
          `Expected an array of strings, found ${typeName(item)} at index ${index}`,
        );
      }
    });
    return ok ? out : undefined;
  }

  pathList(value: unknown, path: readonly string[]): string[] {
    return (this.stringList(value, path) ?? []).filter((item) => this.homePath(item, path));
  }

  port(value: unknown, path: readonly string[]): number | undefined {
    if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 65535) {
      return value;
    }
    this.problem(path, `Expected a port number from 0 to 65535, found ${typeName(value)}`);
    return undefined;
  }

  proxyAddress(value: unknown, path: readonly string[]): string | undefined {
    const text = this.string(value, path);
    if (text === undefined) return undefined;
    try {
      const url = new URL(text.includes("://") ? text : `http://${text}`);
      if (url.hostname === "") throw new Error("no host");
      return text;
    } catch {
      this.problem(
        path,
        `Invalid address "${text}": expected a URL such as "http://127.0.0.1:3128"`,
      );
      return undefined;
    }
  }

  userFile(value: unknown): UserConfigFile | null {
    const root = this.table(value, []);
    if (root === null) return null;
    let defaultPermissions: string | null = null;
    const profiles: Record<string, ProfileLayer> = {};
    let execpolicy: ExecRuleSpec[] = [];
    let execpolicyDefault: ExecDecision | null = null;
    let classic: ClassicSandbox = { mode: null, workspaceWrite: {} };
    let application: ApplicationNetwork | null = null;
    let rulesFiles: string[] = [];
    const ignored: string[] = [];
    for (const [key, inner] of Object.entries(root)) {
      const path = [key];
      switch (key) {
        case "rules":
          rulesFiles = (this.stringList(inner, path) ?? []).filter((f) => {
            if (f.trim() !== "") return true;
            this.problem(
              path,
              'A rules file path cannot be empty: write e.g. rules = ["default.rules"]',
            );
            return false;
          });
          break;
        case "default_permissions": {
          const name = this.string(inner, path);
          if (name !== undefined) {
            if (name.trim() === "") this.problem(path, "A profile name cannot be empty");
            else defaultPermissions = name;
          }
          break;
        }
        case "permissions": {
          const table = this.table(inner, path);
          if (table === null) break;
          for (const [name, profile] of Object.entries(table)) {
            const layer = this.profile(profile, [...path, name]);
            if (layer !== null) profiles[name] = layer;
          }
          break;
        }
        case "execpolicy":
          execpolicy = this.execpolicy(inner, path);
          break;
        case "execpolicy_default":
          execpolicyDefault = this.oneOf(inner, path, EXEC_DECISIONS) ?? null;
          break;
        case "experimental_network":
          this.problem(
            path,
            "Managed requirements are not allowed in a user config: put [experimental_network] in the managed file (/etc/sandbox/requirements.toml or $SANDBOX_MANAGED_CONFIG)",
          );
          break;
        case "sandbox_mode": {
          const mode = this.oneOf(
            inner,
            path,
            ["read-only", "workspace-write", "danger-full-access"] as const,
          );
          if (mode !== undefined) {
            const line = this.lines?.lineOf(path);
            classic = { ...classic, mode, ...(line === undefined ? {} : { modeLine: line }) };
          }
          break;
        }
        case "sandbox_workspace_write":
          classic = { ...classic, workspaceWrite: this.workspaceWrite(inner, path) };
          break;
        case "application":
          application = this.application(inner, path);
          break;
        default:
          if (CODEX_IGNORED_KEYS.has(key)) ignored.push(key);
          else {
            this.problem(
              path,
              `Unknown key: expected "default_permissions", "permissions", "execpolicy", "execpolicy_default", "rules" or a Codex config key (ignored here)`,
            );
          }
      }
    }
    this.noteIgnored([], "ignored Codex keys not used by sandbox", ignored);
    return {
      kind: "user",
      file: this.file,
      defaultPermissions,
      profiles,
      execpolicy,
      execpolicyDefault,
      ...(rulesFiles.length > 0 ? { rulesFiles } : {}),
      classic,
      application,
      notices: this.notices,
    };
  }

  managedFile(value: unknown): ManagedConfigFile | null {
    const root = this.table(value, []);
    if (root === null) return null;
    let network: NetworkLayer = emptyNetwork();
    let execpolicy: ExecRuleSpec[] = [];
    let execpolicyDefault: ExecDecision | null = null;
    let denyRead: string[] = [];
    let allowedPermissions: string[] | null = null;
    let defaultPermissions: string | null = null;
    let allowedSandboxModes: string[] | null = null;
    const profiles: Record<string, ProfileLayer> = {};
    let application: ApplicationNetwork | null = null;
    const ignored: string[] = [];
    for (const [key, inner] of Object.entries(root)) {
      const path = [key];
      switch (key) {
        case "experimental_network":
          network = this.network(inner, path, "managed") ?? network;
          break;
        case "permissions":
          denyRead = this.managedPermissions(inner, path, profiles);
          break;
        case "allowed_permissions":
          allowedPermissions = [
            ...(allowedPermissions ?? []),
            ...(this.stringList(inner, path) ?? []),
          ];
          break;
        case "allowed_sandbox_modes":
          allowedSandboxModes = this.stringList(inner, path) ?? null;
          break;
        case "allowed_permission_profiles": {
          // Codex's newer spelling: a table of profile names set to true (allowed) or false.
          const table = this.table(inner, path);
          if (table === null) break;
          const names: string[] = [];
          for (const [name, on] of Object.entries(table)) {
            if (this.bool(on, [...path, name]) === true) names.push(name);
          }
          allowedPermissions = [...(allowedPermissions ?? []), ...names];
          break;
        }
        case "default_permissions": {
          const name = this.string(inner, path);
          if (name !== undefined) defaultPermissions = name;
          break;
        }
        case "application":
          application = this.application(inner, path);
          break;
        case "execpolicy":
          execpolicy = this.execpolicy(inner, path);
          break;
        case "execpolicy_default":
          execpolicyDefault = this.oneOf(inner, path, EXEC_DECISIONS) ?? null;
          break;
        default:
          if (CODEX_IGNORED_REQUIREMENT_KEYS.has(key)) ignored.push(key);
          else {
            this.problem(
              path,
              `Unknown key: expected "experimental_network", "permissions", "allowed_permissions", "allowed_permission_profiles", "allowed_sandbox_modes", "default_permissions", "application", "execpolicy", "execpolicy_default" or a Codex requirements key (ignored here)`,
            );
          }
      }
    }
    this.noteIgnored([], "ignored Codex requirement keys not used by sandbox", ignored);
    return {
      kind: "managed",
      file: this.file,
      network,
      execpolicy,
      execpolicyDefault,
      denyRead,
      allowedPermissions,
      defaultPermissions,
      allowedSandboxModes,
      profiles,
      application,
      notices: this.notices,
    };
  }

  /**
   * A managed `[permissions]` table: `[permissions.filesystem] deny_read`
   * (absolute paths and globs, a floor for every run). Profiles defined in
   * a managed file are not supported yet and are reported.
   */
  managedPermissions(
    value: unknown,
    path: readonly string[],
    profiles: Record<string, ProfileLayer>,
  ): string[] {
    const table = this.table(value, path);
    if (table === null) return [];
    const out: string[] = [];
    for (const [name, inner] of Object.entries(table)) {
      const p = [...path, name];
      if (name !== "filesystem") {
        // A profile the administrator defines: users may select it, not redefine it.
        const layer = this.profile(inner, p);
        if (layer !== null) profiles[name] = layer;
        continue;
      }
      const fs = this.table(inner, p);
      if (fs === null) continue;
      for (const [key, list] of Object.entries(fs)) {
        if (key !== "deny_read") {
          this.problem(
            [...p, key],
            `Unknown key: [permissions.filesystem] in a managed file holds only "deny_read" (it cannot define a profile)`,
          );
          continue;
        }
        out.push(...this.pathList(list, [...p, key]));
      }
    }
    return out;
  }

  /** `[sandbox_workspace_write]` of the classic Codex sandbox settings. */
  workspaceWrite(value: unknown, path: readonly string[]): ClassicSandbox["workspaceWrite"] {
    const table = this.table(value, path);
    if (table === null) return {};
    this.knownKeys(table, path, [
      "writable_roots",
      "network_access",
      "exclude_tmpdir_env_var",
      "exclude_slash_tmp",
    ]);
    const out: {
      writableRoots?: string[];
      networkAccess?: boolean;
      excludeTmpdirEnvVar?: boolean;
      excludeSlashTmp?: boolean;
    } = {};
    if (table.writable_roots !== undefined) {
      out.writableRoots = this.pathList(table.writable_roots, [...path, "writable_roots"]);
    }
    const flag = (key: string) => this.optional(table, key, path, this.bool, undefined);
    const network = flag("network_access");
    if (network !== undefined) out.networkAccess = network;
    const tmpdir = flag("exclude_tmpdir_env_var");
    if (tmpdir !== undefined) out.excludeTmpdirEnvVar = tmpdir;
    const slashTmp = flag("exclude_slash_tmp");
    if (slashTmp !== undefined) out.excludeSlashTmp = slashTmp;
    return out;
  }

  /** `[application.network]`: `enabled` and exact domain names set to "allow" or "deny". */
  application(value: unknown, path: readonly string[]): ApplicationNetwork | null {
    const table = this.table(value, path);
    if (table === null) return null;
    this.knownKeys(table, path, ["network"]);
    if (table.network === undefined) return null;
    const p = [...path, "network"];
    const network = this.table(table.network, p);
    if (network === null) return null;
    this.knownKeys(network, p, ["enabled", "domains"]);
    const enabled = this.optional(network, "enabled", p, this.bool, true);
    const domains: { pattern: string; action: "allow" | "deny" }[] = [];
    if (network.domains !== undefined) {
      this.actionMap(
        network.domains,
        [...p, "domains"],
        ["allow", "deny"] as const,
        (name, action, at) => {
          const normal = name.replace(/\.$/, "").toLowerCase();
          const labels = normal.split(".");
          const exact = normal.length <= 253 &&
            labels.every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l));
          if (!exact) {
            this.problem(
              at,
              `Invalid domain "${name}": [application.network] takes exact ASCII domain names, without URLs, ports or wildcards`,
            );
            return;
          }
          domains.push({ pattern: normal, action });
        },
      );
    }
    return { enabled, domains };
  }

  profile(value: unknown, path: readonly string[]): ProfileLayer | null {
    const table = this.table(value, path);
    if (table === null) return null;
    const name = path[path.length - 1];
    if (name.trim() === "") this.problem(path, "A profile name cannot be empty");
    if (name.startsWith(":")) {
      this.problem(
        path,
        `A profile name cannot start with ":" (reserved for Codex's built-in profiles ":read-only", ":workspace", ":danger-full-access")`,
      );
    }
    this.knownKeys(table, path, [
      "description",
      "extends",
      "workspace_roots",
      "network",
      "filesystem",
      "env",
      "secrets",
    ]);
    const description = this.optional(table, "description", path, this.string, null);
    const parent = this.optional(table, "extends", path, this.string, null);
    const unsupported: ConfigProblem[] = [];
    const userNetwork = (v: unknown, p: readonly string[]) =>
      this.network(v, p, "user", unsupported);
    const network = this.optional(table, "network", path, userNetwork, emptyNetwork());
    const noFiles: FilesystemLayer = { writable: [], denyRead: [], entries: [] };
    const filesystem = this.optional(table, "filesystem", path, this.filesystem, noFiles);
    const env = this.optional(table, "env", path, this.env, { deny: [] });
    const workspaceRoots = this.optional(table, "workspace_roots", path, this.workspaceRoots, []);
    const secrets = Object.hasOwn(table, "secrets")
      ? this.secrets(table.secrets, [...path, "secrets"])
      : [];
    return {
      description,
      extends: parent,
      network,
      filesystem,
      workspaceRoots,
      env,
      unsupported,
      ...(secrets.length > 0 ? { secrets } : {}),
    };
  }

  /**
   * `[permissions.NAME.secrets]`: `VAR = { from_env = "X" | from_file = "/path", hosts = [...] }`,
   * and `builtin = ["github", "npm", "openai", "anthropic"]` for the usual tokens.
   */
  secrets(value: unknown, path: readonly string[]): SecretLayer[] {
    const table = this.table(value, path);
    const out: SecretLayer[] = [];
    for (const [name, spec] of Object.entries(table ?? {})) {
      const at = [...path, name];
      if (name === "builtin") {
        for (const builtin of this.stringList(spec, at) ?? []) {
          const found = BUILTIN_SECRETS[builtin];
          if (found === undefined) {
            this.problem(
              at,
              `Unknown built-in secret binding "${builtin}": expected one of ${
                quoteList(Object.keys(BUILTIN_SECRETS))
              }`,
            );
            continue;
          }
          for (const variable of found.vars) {
            out.push({
              name: variable,
              fromEnv: null,
              fromFile: null,
              hosts: [...found.hosts],
              npmRegistry: found.npmRegistry === true,
              optional: true,
            });
          }
        }
        continue;
      }
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        this.problem(at, "A secret's name is an environment variable name, e.g. NPM_TOKEN");
        continue;
      }
      const t = this.table(spec, at);
      if (t === null) continue;
      for (const k of Object.keys(t)) {
        if (!["from_env", "from_file", "hosts"].includes(k)) {
          this.problem([...at, k], 'Unknown key: expected one of "from_env", "from_file", "hosts"');
        }
      }
      if (Object.hasOwn(t, "from_env") && Object.hasOwn(t, "from_file")) {
        this.problem(at, 'Write at most one of "from_env" and "from_file"');
        continue;
      }
      const fromEnv = Object.hasOwn(t, "from_env")
        ? this.string(t.from_env, [...at, "from_env"]) ?? null
        : null;
      const fromFile = Object.hasOwn(t, "from_file")
        ? this.string(t.from_file, [...at, "from_file"]) ?? null
        : null;
      if (fromFile !== null && !fromFile.startsWith("/") && !fromFile.startsWith("~/")) {
        this.problem([...at, "from_file"], "from_file must be an absolute path (or start with ~/)");
        continue;
      }
      const hosts = this.stringList(t.hosts, [...at, "hosts"]) ?? [];
      if (hosts.length === 0) {
        this.problem([...at, "hosts"], "A secret needs hosts = [...] it may be sent to");
        continue;
      }
      let bad = false;
      for (const host of hosts) {
        const error = checkDomainPattern(host, "allow");
        if (error !== null) {
          this.problem([...at, "hosts"], error);
          bad = true;
        }
      }
      if (bad) continue;
      out.push({ name, fromEnv, fromFile, hosts, npmRegistry: false, optional: false });
    }
    return out;
  }

  /** `[permissions.NAME.workspace_roots]`: `"PATH" = true | false`. */
  workspaceRoots(value: unknown, path: readonly string[]): { path: string; enabled: boolean }[] {
    const table = this.table(value, path);
    if (table === null) return [];
    const out: { path: string; enabled: boolean }[] = [];
    for (const [root, enabled] of Object.entries(table)) {
      const p = [...path, root];
      const on = this.bool(enabled, p);
      if (on === undefined) continue;
      if (root.trim() === "") {
        this.problem(
          p,
          'A workspace root cannot be empty: write a directory, e.g. "~/code/app" = true',
        );
        continue;
      }
      out.push({ path: root, enabled: on });
    }
    return out;
  }

  /** Records a problem that stops a run only when the profile holding it is used. */
  unenforceable(into: ConfigProblem[], path: readonly string[], message: string): void {
    const line = this.lines?.lineOf(path);
    into.push({
      file: this.file,
      ...(line === undefined ? {} : { line }),
      keyPath: formatKeyPath(path),
      message,
    });
  }

  network(
    value: unknown,
    path: readonly string[],
    kind: ConfigKind,
    _unsupported?: ConfigProblem[],
  ): NetworkLayer | null {
    const table = this.table(value, path);
    if (table === null) return null;
    const out: {
      -readonly [K in keyof NetworkLayer]: NetworkLayer[K];
    } = emptyNetwork();
    const domains = new DomainBlock();
    const sockets: { path: string; action: "allow" | "none" }[] = [];
    const requestRules: RequestRule[] = [];
    const ignored: string[] = [];
    const at = (key: string) => [...path, key];
    const has = (key: string) => Object.hasOwn(table, key);
    if (kind === "managed") {
      if (has("domains") && (has("allowed_domains") || has("denied_domains"))) {
        this.problem(
          at("domains"),
          'Cannot mix the canonical "domains" map with the legacy "allowed_domains"/"denied_domains" lists in one block: use one form, e.g. domains = { "pkg.example" = "allow" }',
        );
      }
      if (has("unix_sockets") && has("allow_unix_sockets")) {
        this.problem(
          at("unix_sockets"),
          'Cannot mix the canonical "unix_sockets" map with the legacy "allow_unix_sockets" list in one block: use one form, e.g. unix_sockets = { "/run/app.sock" = "allow" }',
        );
      }
      if (has("http_port") && has("proxy_url")) {
        this.problem(
          at("http_port"),
          'Contradiction: set either "http_port" or "proxy_url", not both',
        );
      }
      if (has("socks_port") && has("socks_url")) {
        this.problem(
          at("socks_port"),
          'Contradiction: set either "socks_port" or "socks_url", not both',
        );
      }
    }
    for (const [key, inner] of Object.entries(table)) {
      const p = at(key);
      if (key === "mitm" && isTable(inner)) {
        // Codex's `[network.mitm]`: named hooks (host + matchers + action names) and named actions.
        const { rules, enabled } = this.mitmHooks(inner, p);
        requestRules.push(...rules);
        if (enabled !== undefined) out.mitm = enabled;
        else if (rules.length > 0) out.mitm = true;
        continue;
      }
      if (key === "requests") {
        requestRules.push(...this.requestsShort(inner, p));
        continue;
      }
      if (Object.hasOwn(NETWORK_BOOLEANS, key)) {
        out[NETWORK_BOOLEANS[key as keyof typeof NETWORK_BOOLEANS]] = this.bool(inner, p);
        continue;
      }
      switch (key) {
        case "mode":
          out.mode = this.oneOf(inner, p, ["full", "limited"] as const);
          break;
        case "enforcement":
          out.enforcement = this.oneOf(inner, p, ["enforce", "report"] as const);
          break;
        case "proxy_url":
          out.proxyUrl = this.proxyAddress(inner, p);
          break;
        case "socks_url":
          out.socksUrl = this.proxyAddress(inner, p);
          break;
        case "mitm_ca":
          out.mitmCa = this.mitmCa(inner, p);
          break;
        case "presets": {
          const names = this.stringList(inner, p) ?? [];
          for (const name of names) {
            if (!isPresetName(name)) {
              this.problem(
                p,
                `Unknown preset "${name}": expected one of ${quoteList(Object.keys(PRESETS))}`,
              );
            }
          }
          out.presets = names.filter(isPresetName);
          break;
        }
        case "domains":
          this.actionMap(inner, p, ["allow", "deny"] as const, (pattern, action, at) => {
            this.domainRule(domains, pattern, action, at, inner as object);
          });
          break;
        case "unix_sockets":
          // "deny" is Codex's current name for "none".
          this.actionMap(inner, p, ["allow", "deny", "none"] as const, (socket, action, at) => {
            this.socketRule(sockets, socket, action === "allow" ? "allow" : "none", at);
          });
          break;
        case "enable_socks5_udp":
        case "allow_upstream_proxy":
        case "dangerously_allow_non_loopback_admin":
          if (this.bool(inner, p) !== undefined) ignored.push(key);
          break;
        case "admin_url":
          if (this.proxyAddress(inner, p) !== undefined) ignored.push(key);
          break;
        default:
          if (kind === "managed" && this.managedNetworkKey(key, inner, p, out, domains, sockets)) {
            break;
          }
          this.problem(p, `Unknown key: expected one of ${quoteList(networkKeys(kind))}`);
      }
    }
    this.noteIgnored(path, "ignored Codex keys not used by sandbox", ignored);
    // Drop keys whose value was invalid (undefined) so "absent" keeps meaning "not written".
    for (const key of Object.keys(out) as (keyof NetworkLayer)[]) {
      if (out[key] === undefined) delete out[key];
    }
    out.domains = domains.rules;
    out.unixSockets = sockets;
    if (requestRules.length > 0) out.requestRules = requestRules;
    return out;
  }

  /** `[network.mitm]`: `hooks.NAME` (host, methods, path_prefixes, query, headers, action) and `actions.NAME`. */
  mitmHooks(
    table: Table,
    path: readonly string[],
  ): { rules: RequestRule[]; enabled: boolean | undefined } {
    const rules: RequestRule[] = [];
    let enabled: boolean | undefined;
    const actions = new Map<string, { strip: string[]; inject: InjectedHeader[] }>();
    for (const key of Object.keys(table)) {
      if (!["hooks", "actions", "enabled"].includes(key)) {
        this.problem([...path, key], 'Unknown key: expected one of "hooks", "actions", "enabled"');
      }
    }
    if (Object.hasOwn(table, "enabled")) enabled = this.bool(table.enabled, [...path, "enabled"]);
    const actionTable = Object.hasOwn(table, "actions")
      ? this.table(table.actions, [...path, "actions"])
      : null;
    for (const [name, value] of Object.entries(actionTable ?? {})) {
      const at = [...path, "actions", name];
      const t = this.table(value, at);
      if (t === null) continue;
      const strip: string[] = [];
      const inject: InjectedHeader[] = [];
      for (const [k, v] of Object.entries(t)) {
        if (k === "strip_request_headers") strip.push(...(this.stringList(v, [...at, k]) ?? []));
        else if (k === "inject_request_headers") {
          if (!Array.isArray(v)) {
            this.problem(
              [...at, k],
              "Expected an array of { name, secret_env_var | secret_file, prefix }",
            );
            continue;
          }
          v.forEach((item, i) => {
            const ip = [...at, k, String(i)];
            const it = this.table(item, ip);
            if (it === null) return;
            for (const ik of Object.keys(it)) {
              if (!["name", "secret_env_var", "secret_file", "prefix"].includes(ik)) {
                this.problem(
                  [...ip, ik],
                  'Unknown key: expected one of "name", "secret_env_var", "secret_file", "prefix"',
                );
              }
            }
            inject.push({
              name: this.string(it.name, [...ip, "name"]) ?? "",
              fromEnv: it.secret_env_var === undefined
                ? null
                : this.string(it.secret_env_var, [...ip, "secret_env_var"]) ?? null,
              fromFile: it.secret_file === undefined
                ? null
                : this.string(it.secret_file, [...ip, "secret_file"]) ?? null,
              prefix: it.prefix === undefined
                ? ""
                : this.string(it.prefix, [...ip, "prefix"]) ?? "",
            });
          });
        } else {
          this.problem(
            [...at, k],
            'Unknown key: expected one of "strip_request_headers", "inject_request_headers"',
          );
        }
      }
      actions.set(name, { strip, inject });
    }
    const hookTable = Object.hasOwn(table, "hooks")
      ? this.table(table.hooks, [...path, "hooks"])
      : null;
    for (const [name, value] of Object.entries(hookTable ?? {})) {
      const at = [...path, "hooks", name];
      const t = this.table(value, at);
      if (t === null) continue;
      const allowed = ["host", "methods", "path_prefixes", "query", "headers", "body", "action"];
      for (const k of Object.keys(t)) {
        if (!allowed.includes(k)) {
          this.problem([...at, k], `Unknown key: expected one of ${quoteList(allowed)}`);
        }
      }
      if (Object.hasOwn(t, "body")) {
        this.problem(
          [...at, "body"],
          "match.body is reserved for a future release and is not yet supported (as in Codex)",
        );
      }
      const host = this.string(t.host, [...at, "host"]);
      const methods = this.stringList(t.methods, [...at, "methods"]);
      const paths = this.stringList(t.path_prefixes, [...at, "path_prefixes"]);
      const valueMap = (k: "query" | "headers") => {
        const out: Record<string, string[]> = {};
        if (!Object.hasOwn(t, k)) return out;
        const mt = this.table(t[k], [...at, k]);
        for (const [mk, mv] of Object.entries(mt ?? {})) {
          out[mk] = this.stringList(mv, [...at, k, mk]) ?? [];
        }
        return out;
      };
      const query = valueMap("query");
      const headers = valueMap("headers");
      const strip: string[] = [];
      const inject: InjectedHeader[] = [];
      for (const actionName of this.stringList(t.action ?? [], [...at, "action"]) ?? []) {
        const action = actions.get(actionName);
        if (action === undefined) {
          this.problem(
            [...at, "action"],
            `Unknown action "${actionName}": define it under [${
              formatKeyPath([...path, "actions", actionName])
            }]`,
          );
          continue;
        }
        strip.push(...action.strip);
        inject.push(...action.inject);
      }
      if (host === undefined || methods === undefined || paths === undefined) continue;
      const rule: RequestRule = {
        name: formatKeyPath(["mitm", "hooks", name]),
        host,
        methods,
        paths,
        query,
        headers,
        stripHeaders: strip,
        injectHeaders: inject,
        source: "",
      };
      this.checkRule(rule, at);
      rules.push(rule);
    }
    return { rules, enabled };
  }

  /**
   * Our short form: `requests = { "HOST" = "read" }`, `{ allow = "read" | "all" }`,
   * `{ methods = [...], paths = [...] }`, or a list of such tables (first match wins).
   */
  requestsShort(value: unknown, path: readonly string[]): RequestRule[] {
    const table = this.table(value, path);
    const rules: RequestRule[] = [];
    for (const [host, spec] of Object.entries(table ?? {})) {
      const at = [...path, host];
      const items = Array.isArray(spec) ? spec : [spec];
      items.forEach((item, i) => {
        const ip = Array.isArray(spec) ? [...at, String(i)] : at;
        let methods: string[] | undefined;
        let paths: string[] = ["/"];
        if (typeof item === "string") {
          methods = shortMethods(item);
          if (methods === undefined) {
            this.problem(ip, `Expected "read" (GET, HEAD, OPTIONS) or "all", got "${item}"`);
            return;
          }
        } else {
          const t = this.table(item, ip);
          if (t === null) return;
          for (const k of Object.keys(t)) {
            if (!["allow", "methods", "paths"].includes(k)) {
              this.problem([...ip, k], 'Unknown key: expected one of "allow", "methods", "paths"');
            }
          }
          if (Object.hasOwn(t, "allow") === Object.hasOwn(t, "methods")) {
            this.problem(ip, 'Write exactly one of allow = "read" | "all" or methods = [...]');
            return;
          }
          if (Object.hasOwn(t, "allow")) {
            const a = this.string(t.allow, [...ip, "allow"]);
            methods = a === undefined ? undefined : shortMethods(a);
            if (a !== undefined && methods === undefined) {
              this.problem(
                [...ip, "allow"],
                `Expected "read" (GET, HEAD, OPTIONS) or "all", got "${a}"`,
              );
            }
          } else methods = this.stringList(t.methods, [...ip, "methods"]);
          if (Object.hasOwn(t, "paths")) paths = this.stringList(t.paths, [...ip, "paths"]) ?? [];
        }
        if (methods === undefined) return;
        const rule: RequestRule = {
          name: formatKeyPath(
            Array.isArray(spec) ? ["requests", host, String(i)] : ["requests", host],
          ),
          host,
          methods,
          paths,
          query: {},
          headers: {},
          stripHeaders: [],
          injectHeaders: [],
          source: "",
        };
        this.checkRule(rule, ip);
        rules.push(rule);
      });
    }
    return rules;
  }

  checkRule(rule: RequestRule, at: readonly string[]): void {
    try {
      compileRequestRule(rule);
    } catch (error) {
      const key = error instanceof RequestRuleError ? error.key : "";
      const last = key.split(".").at(-1) ?? "";
      const keyAt = last === "path_prefixes" && at.includes("requests") ? "paths" : last;
      this.problem(keyAt === "" || keyAt === "host" ? at : [...at, keyAt], errorMessage(error));
    }
  }

  managedNetworkKey(
    key: string,
    inner: unknown,
    p: readonly string[],
    out: { managedAllowedDomainsOnly?: boolean; proxyUrl?: string; socksUrl?: string },
    domains: DomainBlock,
    sockets: { path: string; action: "allow" | "none" }[],
  ): boolean {
    switch (key) {
      case "managed_allowed_domains_only":
        out.managedAllowedDomainsOnly = this.bool(inner, p);
        return true;
      case "allowed_domains":
      case "denied_domains": {
        const action = key === "allowed_domains" ? "allow" : "deny";
        for (const pattern of this.stringList(inner, p) ?? []) {
          this.domainRule(domains, pattern, action, p, null);
        }
        return true;
      }
      case "allow_unix_sockets":
        for (const socket of this.stringList(inner, p) ?? []) {
          this.socketRule(sockets, socket, "allow", p);
        }
        return true;
      case "http_port": {
        const port = this.port(inner, p);
        if (port !== undefined) out.proxyUrl = `http://127.0.0.1:${port}`;
        return true;
      }
      case "socks_port": {
        const port = this.port(inner, p);
        if (port !== undefined) out.socksUrl = `socks5://127.0.0.1:${port}`;
        return true;
      }
      default:
        return false;
    }
  }

  /**
   * Checks one domain rule and adds it to its block. `table`: the TOML table
   * the pattern is a key of (its keys are distinct), or null for a list entry.
   */
  domainRule(
    block: DomainBlock,
    pattern: string,
    action: "allow" | "deny",
    path: readonly string[],
    table: object | null,
  ): void {
    // A plain name in normal form (nearly every rule of a large allowlist) is valid and is its
    // own key: one regex test for both questions.
    const plain = isPlainDomainPattern(pattern, action);
    if (!plain) {
      const error = checkDomainPattern(pattern, action);
      if (error !== null) {
        this.problem(path, `Invalid ${action} pattern "${pattern}": ${error}`);
        return;
      }
    }
    const key = plain ? pattern : normalizePattern(pattern);
    const earlier = block.add({ pattern, action }, key, plain ? table : null);
    if (earlier !== undefined && earlier.action !== action) {
      this.problem(
        path,
        `Contradiction: "${pattern}" is both allowed and denied in this block: keep one`,
      );
    }
  }

  socketRule(
    rules: { path: string; action: "allow" | "none" }[],
    socket: string,
    action: "allow" | "none",
    path: readonly string[],
  ): void {
    if (!socket.startsWith("/")) {
      this.problem(
        path,
        `Invalid socket path "${socket}": expected an absolute path such as "/run/user/1000/bus"`,
      );
      return;
    }
    rules.push({ path: socket, action });
  }

  mitmCa(value: unknown, path: readonly string[]): { cert: string; key: string } | undefined {
    const table = this.table(value, path);
    if (table === null) return undefined;
    this.knownKeys(table, path, ["cert", "key"]);
    const get = (k: "cert" | "key") => {
      if (table[k] === undefined) {
        this.problem([...path, k], `Missing key: "mitm_ca" needs both "cert" and "key"`);
        return undefined;
      }
      const s = this.string(table[k], [...path, k]);
      return s !== undefined && this.homePath(s, [...path, k]) ? s : undefined;
    };
    const cert = get("cert");
    const key = get("key");
    return cert !== undefined && key !== undefined ? { cert, key } : undefined;
  }

  /**
   * `[permissions.NAME.filesystem]`: our `writable` and `deny_read` lists,
   * and Codex's entries (`":root" = "read"`, `"/abs" = "write"`,
   * `":workspace_roots" = { "." = "write", "**\/*.env" = "deny" }`, …). Only
   * the syntax is checked here; whether the sandbox can enforce what the
   * entries ask for is decided once `extends` is merged (profiles/codex_fs.ts).
   */
  filesystem(value: unknown, path: readonly string[]): FilesystemLayer {
    const out: {
      writable: string[];
      denyRead: string[];
      entries: FsEntry[];
      globScanMaxDepth?: number;
    } = {
      writable: [],
      denyRead: [],
      entries: [],
    };
    const table = this.table(value, path);
    if (table === null) return out;
    const ignored: string[] = [];
    for (const [key, inner] of Object.entries(table)) {
      const p = [...path, key];
      if (key === "writable") out.writable.push(...this.pathList(inner, p));
      else if (key === "deny_read") out.denyRead.push(...this.pathList(inner, p));
      else if (key === "allow_limited_git_writes") {
        if (this.bool(inner, p) !== undefined) ignored.push(key);
      } else if (key === "glob_scan_max_depth") {
        if (typeof inner === "number" && Number.isInteger(inner) && inner >= 1) {
          out.globScanMaxDepth = inner;
        } else this.problem(p, `Expected an integer of at least 1, found ${typeName(inner)}`);
      } else if (key.startsWith(":") || isAbsoluteOrHome(key)) {
        this.fsEntry(key, inner, p, out.entries);
      } else {
        this.problem(
          p,
          `Unknown key: expected "writable", "deny_read", "glob_scan_max_depth", a special path (":root", ":minimal", ":workspace_roots", ":tmpdir", ":slash_tmp") or an absolute or "~/" path set to "read", "write" or "deny"`,
        );
      }
    }
    this.noteIgnored(path, "ignored Codex keys not used by sandbox", ignored);
    return out;
  }

  /** One Codex filesystem key: `KEY = ACCESS` or `KEY = { SUBPATH = ACCESS, … }`. */
  fsEntry(written: string, value: unknown, path: readonly string[], into: FsEntry[]): void {
    // ":project_roots" is the name Codex's documentation used before ":workspace_roots".
    const key = written === ":project_roots" ? ":workspace_roots" : written;
    const special = key.startsWith(":");
    const push = (
      target: FsEntry["target"],
      access: FsAccess,
      id: string,
      at: readonly string[],
    ) => {
      const line = this.lines?.lineOf(at);
      into.push({ target, access, id, keyPath: at, ...(line === undefined ? {} : { line }) });
    };
    if (typeof value === "string") {
      const access = this.fsAccess(value, path);
      if (access === undefined) return;
      if (special) {
        push({ kind: "special", name: key }, access, key, path);
        return;
      }
      const target = this.fsTarget(key, access, path);
      if (target !== null) push(target, access, key, path);
      return;
    }
    const table = isTable(value) ? value : null;
    if (table === null) {
      this.problem(
        path,
        `Expected "read", "write", "deny" or a table of subpaths, found ${typeName(value)}`,
      );
      return;
    }
    const nestable = !special || key === ":workspace_roots" || !KNOWN_SPECIAL_PATHS.includes(key);
    if (!nestable) {
      this.problem(
        path,
        `The special path "${key}" does not take nested entries: write "${key}" = "read"`,
      );
      return;
    }
    for (const [sub, raw] of Object.entries(table)) {
      const p = [...path, sub];
      const access = this.fsAccess(raw, p);
      if (access === undefined) continue;
      if (sub !== "." && !isDescendant(sub)) {
        this.problem(
          p,
          `Invalid subpath "${sub}": expected "." or a relative path below "${key}" without "." or ".." parts, e.g. ".git" or "**/*.env"`,
        );
        continue;
      }
      const glob = hasGlob(sub);
      if (glob && access !== "deny") {
        const trimmed = sub.replace(/\/\*\*$/, "");
        if (hasGlob(trimmed)) {
          this.problem(
            p,
            `A glob can only deny: "${sub}" = "${access}" is not supported; use an exact path or a trailing "/**" for ${access} access to a subtree`,
          );
          continue;
        }
      }
      const subpath = glob && access !== "deny" ? sub.replace(/\/\*\*$/, "") : sub;
      const id = `${key}/${subpath}`;
      if (special) {
        push({ kind: "special", name: key, subpath }, access, id, p);
        continue;
      }
      const joined = subpath === "." ? key : `${key.replace(/\/+$/, "")}/${subpath}`;
      if (glob && access === "deny") push({ kind: "glob", pattern: joined }, access, id, p);
      else push({ kind: "path", path: joined }, access, id, p);
    }
  }

  /** `read`, `write`, `deny` or its older spelling `none`. */
  fsAccess(value: unknown, path: readonly string[]): FsAccess | undefined {
    const access = this.oneOf(value, path, ["read", "write", "deny", "none"] as const);
    return access === "none" ? "deny" : access;
  }

  /** The target of an absolute or `~/` key: a path, or (with `*`, `?`, `[`) a glob, which can only deny. */
  fsTarget(key: string, access: FsAccess, path: readonly string[]): FsEntry["target"] | null {
    if (!hasGlob(key)) return { kind: "path", path: key };
    if (access === "deny") return { kind: "glob", pattern: key };
    const trimmed = key.replace(/\/\*\*$/, "");
    if (!hasGlob(trimmed)) return { kind: "path", path: trimmed };
    this.problem(
      path,
      `A glob can only deny: "${key}" = "${access}" is not supported; use an exact path or a trailing "/**" for ${access} access to a subtree`,
    );
    return null;
  }

  env(value: unknown, path: readonly string[]): { allow?: string[]; deny: string[] } {
    const out: { allow?: string[]; deny: string[] } = { deny: [] };
    const table = this.table(value, path);
    if (table === null) return out;
    this.knownKeys(table, path, ["allow", "deny"]);
    for (const key of ["allow", "deny"] as const) {
      if (table[key] === undefined) continue;
      const list = this.stringList(table[key], [...path, key]);
      if (list === undefined) continue;
      const good = list.filter((glob) => {
        if (/^[A-Za-z0-9_*?]+$/.test(glob)) return true;
        this.problem(
          [...path, key],
          `Invalid variable glob "${glob}": expected letters, digits, "_" and the wildcards "*" and "?"`,
        );
        return false;
      });
      if (key === "allow") out.allow = good;
      else out.deny = good;
    }
    return out;
  }

  /** `hosts = [...]` of an execpolicy rule: domain patterns, only with `allow-network`. */
  execHosts(
    value: unknown,
    path: readonly string[],
    decision: ExecDecision | undefined,
  ): string[] | null {
    if (value === undefined) return null;
    const hosts = this.stringList(value, path);
    if (hosts === undefined) return null;
    if (decision !== undefined && decision !== "allow-network") {
      this.problem(
        path,
        `Hosts bind a rule's network, so they need decision = "allow-network", not "${decision}"`,
      );
      return null;
    }
    if (hosts.length === 0) {
      this.problem(
        path,
        'An empty host list allows nothing: list hosts, e.g. ["registry.example"]',
      );
      return null;
    }
    for (const [i, host] of hosts.entries()) {
      const error = checkDomainPattern(host, "allow");
      if (error !== null) this.problem([...path, String(i)], error);
    }
    return hosts;
  }

  execpolicy(value: unknown, path: readonly string[]): ExecRuleSpec[] {
    const table = this.table(value, path);
    if (table === null) return [];
    const rules: ExecRuleSpec[] = [];
    for (const [pattern, spec] of Object.entries(table)) {
      const p = [...path, pattern];
      if (pattern.trim() === "") {
        this.problem(p, 'A command pattern cannot be empty: write e.g. "git push *" = "deny"');
        continue;
      }
      if (typeof spec === "string") {
        const decision = this.oneOf(spec, p, EXEC_DECISIONS);
        if (decision !== undefined) {
          rules.push({ pattern, decision, justification: null, match: [], notMatch: [] });
        }
        continue;
      }
      if (!isTable(spec)) {
        this.problem(
          p,
          `Expected a decision ("allow", "allow-network" or "deny") or an inline table { decision = … }, found ${
            typeName(spec)
          }`,
        );
        continue;
      }
      this.knownKeys(spec, p, ["decision", "justification", "match", "not_match", "hosts"]);
      let decision: ExecDecision | undefined;
      if (spec.decision === undefined) {
        this.problem(
          [...p, "decision"],
          `Missing key: expected decision = ${quoteList(EXEC_DECISIONS)}`,
        );
      } else decision = this.oneOf(spec.decision, [...p, "decision"], EXEC_DECISIONS);
      const justification = this.optional(spec, "justification", p, this.string, null);
      const match = this.optional(spec, "match", p, this.stringList, []);
      const notMatch = this.optional(spec, "not_match", p, this.stringList, []);
      const hosts = this.execHosts(spec.hosts, [...p, "hosts"], decision);
      if (decision !== undefined) {
        rules.push({
          pattern,
          decision,
          justification,
          match,
          notMatch,
          ...(hosts === null ? {} : { hosts }),
        });
      }
    }
    return rules;
  }
}

function networkKeys(kind: ConfigKind): string[] {
  const common = [
    "enabled",
    "mode",
    "enforcement",
    "allow_local_binding",
    "mitm",
    "mitm_ca",
    "dangerously_allow_all_unix_sockets",
    "strict_unix_sockets",
    "dangerously_allow_non_loopback_proxy",
    "proxy_url",
    "socks_url",
    "enable_socks5",
    "ask",
    "capture",
    "presets",
    "domains",
    "requests",
    "unix_sockets",
    "enable_socks5_udp",
    "allow_upstream_proxy",
    "admin_url",
    "dangerously_allow_non_loopback_admin",
  ];
  return kind === "user" ? common : [
    ...common,
    "managed_allowed_domains_only",
    "allowed_domains",
    "denied_domains",
    "allow_unix_sockets",
    "http_port",
    "socks_port",
  ];
}

function shortMethods(allow: string): string[] | undefined {
  if (allow === "read") return [...READ_METHODS];
  if (allow === "all") return ["*"];
  return undefined;
}

function emptyNetwork(): NetworkLayer & { domains: []; unixSockets: []; presets: [] } {
  return { domains: [], unixSockets: [], presets: [] };
}

/**
 * The domain rules of one network block in the order written, indexed by
 * normalized pattern so that spotting a duplicate or a contradiction costs
 * one map lookup, not a pass over every earlier rule (10,000-rule managed
 * allowlists are real).
 */
class DomainBlock {
  readonly rules: { pattern: string; action: "allow" | "deny" }[] = [];
  readonly #byKey = new Map<string, { pattern: string; action: "allow" | "deny" }>();
  /**
   * The table whose plain-name entries `rules` holds so far without putting
   * them in the map: keys of one TOML table are distinct, and a plain name
   * is its own normalized key, so they cannot collide with each other. The
   * map gets them as soon as any other rule arrives (one that could).
   */
  #unindexedTable: object | null = null;

  /**
   * Adds a rule unless its key is taken; returns the earlier rule of that
   * key, or undefined when added. `table`: the TOML table a plain pattern
   * (its own key) is an entry of, if any.
   */
  add(
    rule: { pattern: string; action: "allow" | "deny" },
    key: string,
    table: object | null,
  ): { pattern: string; action: "allow" | "deny" } | undefined {
    if (table !== null && (this.rules.length === 0 || this.#unindexedTable === table)) {
      this.#unindexedTable = table;
      this.rules.push(rule);
      return undefined;
    }
    if (this.#unindexedTable !== null) {
      for (const earlier of this.rules) this.#byKey.set(earlier.pattern, earlier);
      this.#unindexedTable = null;
    }
    const earlier = this.#byKey.get(key);
    if (earlier !== undefined) return earlier;
    this.rules.push(rule);
    this.#byKey.set(key, rule);
    return undefined;
  }
}

const NORMAL_PATTERN = /^[a-z0-9_.*:\[\]-]*[a-z0-9_*\]-]$/;

/** Case and trailing-dot insensitive form of a pattern, for spotting duplicates. */
export function normalizePattern(pattern: string): string {
  // Most patterns are written in normal form already: no copy for them.
  if (NORMAL_PATTERN.test(pattern)) return pattern;
  return pattern.trim().toLowerCase().replace(/\.+$/, "");
}

/** The special paths Codex defines; another `:name` is a newer Codex's, unknown here. */
export const KNOWN_SPECIAL_PATHS: readonly string[] = [
  ":root",
  ":minimal",
  ":workspace_roots",
  ":tmpdir",
  ":slash_tmp",
];

/** Whether a path has glob characters (`*`, `?`, `[`). */
export function hasGlob(path: string): boolean {
  return /[*?[\]]/.test(path);
}

/** A relative path with no empty, `.` or `..` part. */
function isDescendant(path: string): boolean {
  if (path === "" || path.startsWith("/")) return false;
  return path.split("/").every((part) => part !== "" && part !== "." && part !== "..");
}

function isAbsoluteOrHome(path: string): boolean {
  return path.startsWith("/") || path === "~" || path.startsWith("~/");
}

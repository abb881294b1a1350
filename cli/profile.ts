/**
 * `sandbox profile show|validate`: print the effective, merged policy with
 * the source of every rule, and check config files listing every problem.
 *
 * @module
 */
import { filterEnv } from "../sandbox/env.ts";
import { hostToolHomeFacts, planToolHomes, type ToolHome } from "../sandbox/tool_homes.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { BUILT_IN_PROFILE_NAMES, isBuiltInProfileName } from "../profiles/builtin_profiles.ts";
import { parseTomlText } from "../profiles/toml.ts";
import { type ConfigKind, detectConfigKind, validateConfig } from "../profiles/validate.ts";
import type { EffectiveConfig } from "../profiles/types.ts";
import { parseCommandArgs, SHARED_OPTIONS, type SharedValues } from "./args.ts";
import { ConfigError, type ConfigProblem, formatProblem, UsageError } from "../errors.ts";

const SHOW_HELP = `Usage: sandbox profile show [OPTIONS]

Print the effective policy: the managed requirements file, the user file, each
--config file and the flags merged, with where every rule and setting came from
and what the merge ignored (e.g. a user allow dropped by a managed
managed_allowed_domains_only = true).

Options:
  --config FILE              A TOML config file (repeatable; later files win)
  --profile NAME             Permissions profile to use (default: default_permissions)
  --allow PATTERN            Add an allow rule (repeatable)
  --deny PATTERN             Add a deny rule (repeatable)
  --preset NAME              Add a named allowlist: common-dependencies, python-ml
  --mode full|limited        Method policy
  --mitm                     Terminate TLS in limited mode
  --allow-local-binding      Let the policy reach loopback/private addresses
  --allow-unix-socket PATH   Allow one unix socket (repeatable)
  --json                     Print the merged configuration as JSON on stdout
  -h, --help                 Show this help

Files read: $SANDBOX_MANAGED_CONFIG or /etc/sandbox/requirements.toml (managed),
$XDG_CONFIG_HOME/sandbox/config.toml or ~/.config/sandbox/config.toml (user),
then each --config FILE. Nothing is read from the working directory.

Exit status: 0, or 2 when a config file or flag is invalid.

Examples:
  sandbox profile show
  sandbox profile show --config ci.toml --profile ci --json
  sandbox profile show --preset common-dependencies --deny '*.tracker.example'`;

const VALIDATE_HELP = `Usage: sandbox profile validate [--json] FILE...

Check config files and list every problem as FILE:LINE: key KEYPATH: MESSAGE.
A file named requirements.toml, or one with an [experimental_network] table, is
checked as managed requirements; any other file as a user config.

Options:
  --json       Print {"files":[{"file","kind","valid","problems":[...]}]} on stdout
  -h, --help   Show this help

Exit status: 0 when every file is valid, 2 otherwise.

Examples:
  sandbox profile validate ~/.config/sandbox/config.toml
  sandbox profile validate ci.toml /etc/sandbox/requirements.toml`;

/** Help text for `sandbox help profile`. */
export const PROFILE_HELP = `Usage: sandbox profile show [OPTIONS]
       sandbox profile validate FILE...

Subcommands:
  show       Print the effective, merged policy with where each rule came from
  validate   Check config files; list every problem with its line and key path

Run "sandbox help profile show" or "sandbox help profile validate" for their options.

Examples:
  sandbox profile show --json
  sandbox profile validate ci.toml`;

/** Help texts of the subcommands, by name. */
export const PROFILE_SUBCOMMAND_HELP: Readonly<Record<string, string>> = {
  show: SHOW_HELP,
  validate: VALIDATE_HELP,
};

/** Where the profile commands write, and what they read; defaults to the process's. */
export interface ProfileCommandOptions {
  /** Receives stdout text. */
  readonly stdout?: (text: string) => void;
  /** Environment for locating config files. */
  readonly env?: Record<string, string>;
  /** Directory relative paths are resolved against. */
  readonly cwd?: string;
}

const encoder = new TextEncoder();

/**
 * Runs `sandbox profile`; returns the exit code.
 *
 * @example
 * ```ts
 * const code = await profileCommand(["validate", "ci.toml"]);
 * ```
 */
export function profileCommand(
  args: string[],
  options: ProfileCommandOptions = {},
): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "show":
      return profileShow(rest, options);
    case "validate":
      return profileValidate(rest, options);
    case undefined:
      return Promise.reject(
        new UsageError('Missing subcommand for "sandbox profile": expected "show" or "validate"', {
          command: "profile",
        }),
      );
    default:
      return Promise.reject(
        new UsageError(`Unknown subcommand "profile ${sub}": expected "show" or "validate"`, {
          command: "profile",
        }),
      );
  }
}

function writer(options: ProfileCommandOptions): (text: string) => void {
  return options.stdout ?? ((text) => void Deno.stdout.writeSync(encoder.encode(text)));
}

async function profileShow(args: string[], options: ProfileCommandOptions): Promise<number> {
  const { values } = parseCommandArgs("profile show", args, SHARED_OPTIONS);
  const out = writer(options);
  if (values.help === true) {
    out(SHOW_HELP + "\n");
    return 0;
  }
  const config = await loadEffectiveConfig(values as SharedValues, {
    env: options.env,
    cwd: options.cwd,
  });
  const env = options.env ?? Deno.env.toObject();
  const toolHomes = planToolHomes(env, {
    ...hostToolHomeFacts(filterEnv(env, config.env).PATH),
    writable: config.filesystem.writable,
  });
  out(
    values.json === true
      ? JSON.stringify({ ...config, toolHomes }, null, 2) + "\n"
      : renderConfig(config, { toolHomes }),
  );
  return 0;
}

/**
 * Renders the effective config for people: settings with their sources,
 * then rules, then what the merge ignored.
 */
export function renderConfig(
  config: EffectiveConfig,
  options: { readonly toolHomes?: readonly ToolHome[] } = {},
): string {
  const lines: string[] = [];
  const src = (path: string) => config.sources[path] ?? "default";
  lines.push(`Profile: ${config.profileName ?? "(none: defaults and flags only)"}`);
  lines.push("Files (in merge order):");
  if (config.files.length === 0) lines.push("  (none)");
  for (const file of config.files) lines.push(`  ${file}`);
  const n = config.network;
  lines.push("Network:");
  const settings: [string, string, unknown][] = [
    ["enabled", "enabled", n.enabled],
    ["mode", "mode", n.mode],
    ["allow_local_binding", "allowLocalBinding", n.allowLocalBinding],
    ["mitm", "mitm", n.mitm],
    ["mitm_ca", "mitmCa", n.mitmCa],
    ["ask", "ask", n.ask],
    ["proxy_url", "proxyUrl", n.proxyUrl],
    ["socks_url", "socksUrl", n.socksUrl],
    ["enable_socks5", "enableSocks5", n.enableSocks5],
    ["enforcement", "enforcement", n.enforcement ?? "enforce"],
    [
      "dangerously_allow_all_unix_sockets",
      "dangerouslyAllowAllUnixSockets",
      n.dangerouslyAllowAllUnixSockets,
    ],
    ["strict_unix_sockets", "strictUnixSockets", n.strictUnixSockets ?? false],
    [
      "dangerously_allow_non_loopback_proxy",
      "dangerouslyAllowNonLoopbackProxy",
      n.dangerouslyAllowNonLoopbackProxy,
    ],
    ["managed_allowed_domains_only", "managedAllowedDomainsOnly", n.managedAllowedDomainsOnly],
  ];
  for (const [name, key, value] of settings) {
    const shown = value === null
      ? "(auto)"
      : typeof value === "object"
      ? JSON.stringify(value)
      : String(value);
    lines.push(`  ${name.padEnd(37)}${shown.padEnd(10)} ${src(`network.${key}`)}`);
  }
  lines.push("Domain rules (deny wins; no allow rule means every host is refused):");
  if (n.domains.length === 0) lines.push("  (none)");
  const width = Math.max(0, ...n.domains.map((r) => r.pattern.length));
  for (const rule of n.domains) {
    lines.push(`  ${rule.action.padEnd(6)}${rule.pattern.padEnd(width)}  ${rule.source}`);
  }
  lines.push("Unix sockets:");
  if (n.unixSockets.length === 0) lines.push("  (none)");
  const socketWidth = Math.max(0, ...n.unixSockets.map((r) => r.path.length));
  for (const rule of n.unixSockets) {
    lines.push(`  ${rule.action.padEnd(6)}${rule.path.padEnd(socketWidth)}  ${rule.source}`);
  }
  const fs = config.filesystem;
  const ws = fs.workspace ?? { writable: true, roots: [], rules: [] };
  lines.push("Filesystem:");
  lines.push(
    `  read       ${
      fs.readRoots == null
        ? "everything (read-only)"
        : `only ${[...fs.readRoots, "the workspace roots"].join(", ")}`
    }`,
  );
  lines.push(
    `  workspace  working directory${ws.roots.map((r) => `, ${r}`).join("")}: ${
      ws.writable ? "writable" : "read-only"
    }${ws.rules.map((r) => `; ${r.subpath} ${r.access}`).join("")}`,
  );
  lines.push(`  writable   ${fs.writable.join(", ") || "(none besides the workspace)"}`);
  if ((fs.readOnly ?? []).length > 0) lines.push(`  read-only  ${fs.readOnly?.join(", ")}`);
  lines.push(`  deny_read  ${fs.denyRead.join(", ") || "(none)"}`);
  if ((fs.denyGlobs ?? []).length > 0) {
    lines.push(
      `  deny glob  ${fs.denyGlobs?.join(", ")}${
        fs.globScanMaxDepth == null ? "" : ` (at most ${fs.globScanMaxDepth} deep)`
      }`,
    );
  }
  if (options.toolHomes !== undefined) {
    lines.push(
      "Tool homes (writable inside, kept in the sandbox home, never read by tools outside):",
    );
    if (options.toolHomes.length === 0) lines.push("  (none)");
    const homeWidth = Math.max(0, ...options.toolHomes.map((h) => h.target.length));
    for (const home of options.toolHomes) {
      lines.push(
        `  ${home.target.padEnd(homeWidth)}  <- ${
          home.scratch === undefined
            ? home.source
            : "a throwaway view of the host's (changes are dropped when the run ends)"
        }`,
      );
    }
  }
  lines.push("Environment:");
  lines.push(
    `  allow  ${config.env.allow === null ? "(all)" : config.env.allow.join(", ")}  ${
      src("env.allow")
    }`,
  );
  lines.push(`  deny   ${config.env.deny.join(", ") || "(none)"}`);
  lines.push("Execpolicy:");
  if (config.execpolicy === null) {
    lines.push("  (none: every command runs, with the network policy above)");
  } else {
    lines.push(`  default  ${config.execpolicy.default}  ${src("execpolicy.default")}`);
    for (const rule of config.execpolicy.rules) {
      lines.push(`  ${rule.decision.padEnd(14)}${JSON.stringify(rule.pattern)}  ${rule.source}`);
    }
  }
  if (config.notices.length > 0) {
    lines.push("Notices:");
    for (const notice of config.notices) lines.push(`  ${notice}`);
  }
  return lines.join("\n") + "\n";
}

/** One file's result in `profile validate --json`. */
export interface ValidateFileReport {
  /** The file as given. */
  readonly file: string;
  /** How it was checked. */
  readonly kind: ConfigKind;
  /** Whether it has no problem. */
  readonly valid: boolean;
  /** Every problem. */
  readonly problems: readonly ConfigProblem[];
  /** Keys accepted but ignored. */
  readonly notices: readonly string[];
}

async function profileValidate(args: string[], options: ProfileCommandOptions): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    "profile validate",
    args,
    { json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    { allowPositionals: true },
  );
  const out = writer(options);
  if (values.help === true) {
    out(VALIDATE_HELP + "\n");
    return 0;
  }
  if (positionals.length === 0) {
    throw new UsageError(
      'Missing FILE for "sandbox profile validate": e.g. sandbox profile validate config.toml',
      {
        command: "profile",
      },
    );
  }
  const checked = [];
  for (const file of positionals) checked.push(await validateFile(file, options.cwd));
  const reports = await checkSelectedProfile(checkDefaultPermissions(checked), options);
  if (values.json === true) {
    out(JSON.stringify({ files: reports }, null, 2) + "\n");
  } else {
    for (const report of reports) {
      if (report.valid) {
        out(
          `${report.file}: ok (${
            report.kind === "managed" ? "managed requirements" : "user config"
          })\n`,
        );
      }
      for (const problem of report.problems) out(formatProblem(problem) + "\n");
      for (const notice of report.notices) {
        out(`${report.file}: note: ${notice.replace(`${report.file}: `, "")}\n`);
      }
    }
  }
  return reports.every((r) => r.valid) ? 0 : 2;
}

/** A file's report plus what `checkDefaultPermissions` needs from it. */
interface CheckedFile {
  readonly report: ValidateFileReport;
  /** `[permissions.NAME]` names the file defines (read even when the file has problems). */
  readonly profiles: readonly string[];
  /** `default_permissions` as written, with its line. */
  readonly defaultPermissions: { readonly name: string; readonly line?: number } | null;
}

/**
 * Adds a problem for each `default_permissions` that names a profile none
 * of the files given together defines (nor a built-in one): `sandbox run`
 * refuses such a config, so `validate` must not call it fine.
 */
function checkDefaultPermissions(checked: readonly CheckedFile[]): ValidateFileReport[] {
  const defined = new Set(checked.flatMap((c) => c.profiles));
  return checked.map(({ report, defaultPermissions }) => {
    if (defaultPermissions === null) return report;
    const name = defaultPermissions.name;
    if (defined.has(name) || isBuiltInProfileName(name)) return report;
    const known = [...defined].map((n) => `"${n}"`);
    const problem: ConfigProblem = {
      file: report.file,
      ...(defaultPermissions.line === undefined ? {} : { line: defaultPermissions.line }),
      keyPath: "default_permissions",
      message: `Unknown profile "${name}": expected ${
        known.length > 0 ? `one of ${known.join(", ")}, ` : ""
      }a built-in profile (${
        BUILT_IN_PROFILE_NAMES.map((n) => `"${n}"`).join(", ")
      }), or a [permissions.${name}] table (files given together to "profile validate" are checked as one config)`,
    };
    return { ...report, valid: false, problems: [...report.problems, problem] };
  });
}

/**
 * When every file is valid, merges them the way `sandbox run --config …`
 * would (the managed file given, if any, as the managed requirements) and
 * adds what only the merge finds: a selected profile whose entries the
 * sandbox cannot enforce (`":root" = "write"`, a deny on an unknown special
 * path, …), an extends loop, a profile the managed file does not allow.
 * `run` refuses such a config, so `validate` must not call it fine.
 */
async function checkSelectedProfile(
  reports: ValidateFileReport[],
  options: ProfileCommandOptions,
): Promise<ValidateFileReport[]> {
  if (!reports.every((r) => r.valid)) return reports;
  const resolve = (file: string) =>
    file.startsWith("/") || options.cwd === undefined ? file : `${options.cwd}/${file}`;
  const user = reports.filter((r) => r.kind === "user").map((r) => resolve(r.file));
  const managed = reports.find((r) => r.kind === "managed");
  if (user.length === 0) return reports;
  const env = options.env ?? Deno.env.toObject();
  try {
    await loadEffectiveConfig({ config: user }, {
      cwd: options.cwd,
      env: {
        ...(env.HOME === undefined ? {} : { HOME: env.HOME }),
        // Only the files given: not the user's own config, and the managed file only if given.
        XDG_CONFIG_HOME: "/nonexistent-sandbox-validate",
        SANDBOX_MANAGED_CONFIG: managed === undefined ? "/dev/null" : resolve(managed.file),
      },
    });
    return reports;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return reports.map((report) => {
      const mine = error.problems.filter((p) =>
        p.file === resolve(report.file) || p.file === report.file
      ).map((p) => ({ ...p, file: report.file }));
      return mine.length === 0 ? report : { ...report, valid: false, problems: mine };
    }).map((report, i, all) =>
      // A problem naming no file given (e.g. HOME) goes to the first file.
      i === 0 && all.every((r) => r.valid)
        ? { ...report, valid: false, problems: error.problems }
        : report
    );
  }
}

async function validateFile(file: string, cwd: string | undefined): Promise<CheckedFile> {
  const path = file.startsWith("/") || cwd === undefined ? file : `${cwd}/${file}`;
  const byName: ConfigKind = (file.split("/").pop() ?? file) === "requirements.toml"
    ? "managed"
    : "user";
  const failed = (kind: ConfigKind, problems: readonly ConfigProblem[]): CheckedFile => ({
    report: { file, kind, valid: false, problems, notices: [] },
    profiles: [],
    defaultPermissions: null,
  });
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound ? "the file does not exist" : String(error);
    return failed(byName, [{ file, keyPath: "", message: `Cannot read config file: ${why}` }]);
  }
  const parsed = await parseTomlText(text, file);
  if (!parsed.ok) return failed(byName, parsed.problems);
  const kind = detectConfigKind(file, parsed.value);
  const permissions = parsed.value.permissions;
  const profiles = kind === "user" && typeof permissions === "object" && permissions !== null
    ? Object.keys(permissions)
    : [];
  const written = parsed.value.default_permissions;
  const line = parsed.lines.lineOf(["default_permissions"]);
  const defaultPermissions = kind === "user" && typeof written === "string" && written !== ""
    ? { name: written, ...(line === undefined ? {} : { line }) }
    : null;
  // validateConfig() also runs the execpolicy engine's checks (pattern grammar, match examples).
  const result = validateConfig(parsed.value, { file, kind, lines: parsed.lines });
  const report: ValidateFileReport = result.ok
    ? { file, kind, valid: true, problems: [], notices: result.config.notices }
    : { file, kind, valid: false, problems: result.problems, notices: [] };
  return { report, profiles, defaultPermissions };
}

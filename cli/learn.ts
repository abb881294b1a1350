/**
 * `sandbox learn [OPTIONS] -- CMD [ARGS…]`: runs CMD in the sandbox with
 * every public host allowed (an allow `*` rule is added; loopback and
 * private addresses stay refused unless `--allow-local-binding`), records
 * each host, port and protocol the proxy let through, and writes a profile
 * that allows exactly those hosts: to `--out FILE`, into an existing profile
 * with `--merge FILE`, or to stdout. Exits with CMD's code.
 *
 * The written text is checked before it replaces anything: it must load
 * with `loadEffectiveConfig()` and allow every learned host.
 *
 * @module
 */
import { writeTextNoFollow } from "../safe_file.ts";
import { dirname } from "node:path";
import { loadEffectiveConfig } from "../profiles/load.ts";
import type { EffectiveConfig } from "../profiles/types.ts";
import { validateDomainPattern } from "../policy/pattern.ts";
import { createResolver, parseResolveFlags } from "../proxy/resolver.ts";
import { runSandboxed } from "../run/run.ts";
import { parseCommandArgs, SHARED_OPTIONS, type SharedValues } from "./args.ts";
import { ConfigError, UsageError } from "../errors.ts";
import {
  describeCommand,
  mergeLearnedHosts,
  renderLearnedProfile,
} from "../profiles/learn_profile.ts";
import { hostLoopbackReason } from "../policy/loopback.ts";
import { createBlockWatch } from "../run/block_watch.ts";
import {
  type AllowedHost,
  type BlockedHost,
  reportRun,
  summarizeDecisions,
} from "../run/report.ts";
import { absoluteWritable, checkLogFile } from "./run_checks.ts";

/** Help text for `sandbox help learn`. */
export const LEARN_HELP = `Usage: sandbox learn [OPTIONS] -- CMD [ARGS...]

Runs CMD in the sandbox with every public host allowed through the proxy,
records the hosts it used (host, port, protocol), and writes a profile that
allows exactly those hosts, sorted, each with a comment of how it was used.
Loopback and private addresses stay refused; hosts refused for being on a
private or reserved address (a company mirror) are written as exact allows,
commented, which unlock them. At the end it prints the "sandbox run" command
that uses the written profile.
Deny rules of the loaded config still apply. Exits with CMD's exit code.

Options:
  --out FILE             Write the new profile to FILE (default: stdout)
  --merge FILE           Add the learned hosts to the profile in FILE, editing
                         its text (comments and other keys stay); FILE is also
                         loaded for the run. With --out, the result goes there
  --profile NAME         The profile to add to with --merge (default: the
                         file's default_permissions), or the name of the new
                         profile (default: "learned")
  --config FILE          A TOML config file to run with (repeatable)
  --allow PATTERN        Add an allow rule (repeatable)
  --deny PATTERN         Add a deny rule (repeatable; deny wins, even here)
  --allow-local-binding  Let the learn run reach loopback/private addresses
  --resolve HOST=ADDR    Resolve HOST to ADDR (repeatable)
  --writable PATH        Make PATH writable for the run (repeatable; created when
                         missing) and write it into the profile
  --log FILE             Append every decision as a JSON line
  --json                 Print the run report as the last line of stdout
                         (needs --out or --merge: otherwise stdout is the profile)

Examples:
  sandbox learn --out sandbox.toml -- npm ci
  sandbox run --config sandbox.toml -- npm ci
  sandbox learn --merge sandbox.toml -- npm test`;

const LEARN_OPTIONS = {
  ...SHARED_OPTIONS,
  out: { type: "string" },
  merge: { type: "string" },
  writable: { type: "string", multiple: true },
} as const;

/** Options for {@linkcode learnCommand}, for tests. */
export interface LearnCommandOptions {
  /** Environment (default: the process's). */
  readonly env?: Record<string, string>;
  /** Working directory (default `Deno.cwd()`). */
  readonly cwd?: string;
  /** Receives stdout text (default `Deno.stdout`). */
  readonly stdout?: (text: string) => void;
  /** Receives stderr text (default `Deno.stderr`). */
  readonly stderr?: (text: string) => void;
}

const encoder = new TextEncoder();

function writer(file: { writeSync(p: Uint8Array): number }): (text: string) => void {
  return (text) => {
    const bytes = encoder.encode(text);
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
  };
}

/**
 * Runs `sandbox learn`; returns the exit code (CMD's own).
 *
 * @example
 * ```ts
 * const code = await learnCommand(["--out", "ci.toml", "--", "npm", "ci"]);
 * ```
 */
export async function learnCommand(
  args: string[],
  options: LearnCommandOptions = {},
): Promise<number> {
  const env = options.env ?? Deno.env.toObject();
  const cwd = options.cwd ?? Deno.cwd();
  const stdout = options.stdout ?? writer(Deno.stdout);
  const stderr = options.stderr ?? writer(Deno.stderr);
  const { values, positionals, rest } = parseCommandArgs("learn", args, LEARN_OPTIONS);
  const flags = {
    ...values,
    writable: absoluteWritable(values.writable, cwd),
  } as SharedValues & { out?: string; merge?: string };
  if (flags.log !== undefined) checkLogFile(flags.log, cwd, "learn");
  if (positionals.length > 0 || rest === null || rest.length === 0) {
    throw new UsageError(
      'Missing command: put it after "--", e.g. "sandbox learn --out sandbox.toml -- npm ci"',
      { command: "learn" },
    );
  }
  if (flags.json === true && flags.out === undefined && flags.merge === undefined) {
    throw new UsageError(
      "--json needs --out FILE or --merge FILE: without them stdout carries the profile",
      { command: "learn" },
    );
  }
  const absolute = (path: string) =>
    path.startsWith("/") ? path : `${cwd.replace(/\/$/, "")}/${path}`;

  // Read and check the merge target before running anything.
  const mergeText = flags.merge === undefined ? null : await readMergeTarget(flags.merge, {
    path: absolute(flags.merge),
    command: "learn",
    profile: flags.profile,
    instead: `use --out "${flags.merge}" to write a new profile`,
  });

  const configFiles = [...(flags.config ?? [])];
  if (flags.merge !== undefined && !configFiles.map(absolute).includes(absolute(flags.merge))) {
    configFiles.push(flags.merge);
  }
  // A new profile's name is not a profile of the loaded config: only --merge selects by it.
  const loadFlags: SharedValues = {
    ...flags,
    config: configFiles,
    profile: flags.merge !== undefined ? flags.profile : undefined,
    allow: [...(flags.allow ?? []), "*"],
  };
  const loaded = await loadEffectiveConfig(loadFlags, { env, cwd });
  const config: EffectiveConfig = {
    ...loaded,
    network: { ...loaded.network, enabled: true, ask: false },
  };
  for (const notice of loaded.notices) stderr(`sandbox learn: ${notice}\n`);
  if (loaded.network.managedAllowedDomainsOnly) {
    stderr(
      "sandbox learn: the managed requirements pin the allowlist, so only the hosts they allow can be learned\n",
    );
  }
  const resolver = createResolver({ overrides: parseResolveFlags(flags.resolve) });

  // A command that only retries refused hosts teaches nothing more: the run ends there.
  const spun = new AbortController();
  const watch = createBlockWatch({
    stderr,
    prefix: "sandbox learn",
    onSpin: () => {
      stderr(
        "sandbox learn: ending the run: it keeps retrying refused hosts and nothing else gets " +
          "through; what was learned so far is written\n",
      );
      spun.abort();
    },
  });
  const result = await runSandboxed(config, rest, {
    onDecision: watch.onDecision,
    signal: spun.signal,
    resolver,
    logFile: flags.log ?? null,
    caDir: flags["ca-dir"] ?? null,
    // The profile written afterwards (a --merge target exists now): read-only while the run lasts.
    protect: [flags.out, flags.merge].filter((path) => path !== undefined),
    cwd,
    env,
  });
  const exitCode = await reportRun(result, {
    command: rest,
    json: flags.json === true,
    env,
    stdout,
    stderr,
    prefix: "sandbox learn",
  });
  if (result.verdict.decision === "deny") {
    stderr(
      "sandbox learn: the command did not run (execpolicy denied it), so nothing was learned\n",
    );
    return exitCode;
  }
  if (result.verdict.decision === "allow") {
    stderr(
      'sandbox learn: execpolicy runs this command without network (decision "allow"), so nothing was learned\n',
    );
    return exitCode;
  }

  const summary = summarizeDecisions(result.decisions);
  const hosts: AllowedHost[] = [];
  for (const host of [...summary.allowed, ...refusedLocalHosts(summary.blocked)]) {
    const problem = validateDomainPattern(host.host, "allow");
    if (problem === null) hosts.push(host);
    else stderr(`sandbox learn: left out "${host.host}": ${problem}\n`);
  }
  const local = hosts.filter((h) => h.note !== undefined);
  if (local.length > 0) {
    stderr(
      `sandbox learn: ${local.map((h) => `"${h.host}"`).join(", ")} ${
        local.length === 1 ? "is" : "are"
      } on a private or reserved address: refused while learning (the command may not have ` +
        "finished its work), written as exact allows you can keep\n",
    );
  }
  const writable = (flags.writable ?? []).map((path) => homeRelative(path, env.HOME));
  const command = rest;
  let text: string;
  let profile: string;
  let what: string;
  if (mergeText !== null && flags.merge !== undefined) {
    const merged = mergeLearnedHosts(mergeText, hosts, {
      file: flags.merge,
      command,
      profile: flags.profile,
      writable,
    });
    text = merged.text;
    profile = merged.profile;
    what =
      `added ${merged.added.length} host${
        merged.added.length === 1 ? "" : "s"
      } to profile "${profile}"` +
      (merged.alreadyAllowed.length > 0
        ? ` (${merged.alreadyAllowed.length} already allowed)`
        : "") +
      (merged.keptDenied.length > 0
        ? `; kept the file's deny for ${merged.keptDenied.map((h) => `"${h}"`).join(", ")}`
        : "");
  } else {
    profile = flags.profile ?? "learned";
    text = renderLearnedProfile(hosts, { command, profile, writable });
    what = `an allowlist of ${hosts.length} host${
      hosts.length === 1 ? "" : "s"
    } in profile "${profile}"`;
  }
  const target = flags.out ?? flags.merge ?? null;
  await checkAndWrite(text, target === null ? null : absolute(target), {
    profile,
    hosts: hosts.map((h) => h.host),
    cwd,
    home: env.HOME,
    unchanged: mergeText !== null && text === mergeText && flags.out === undefined,
  });
  if (target === null) stdout(text);
  const codeNote = result.exitCode === 0
    ? ""
    : ` (the command exited ${result.exitCode}: check it did all its work)`;
  stderr(`sandbox learn: ${target === null ? "printed" : `wrote ${target}:`} ${what}${codeNote}\n`);
  if (target !== null) {
    stderr(
      `sandbox learn: lock it down with: ${
        lockDownCommand(target, {
          profile: flags.merge !== undefined || flags.profile !== undefined ? profile : null,
          resolve: flags.resolve ?? [],
          command,
        })
      }\n`,
    );
  }
  return exitCode;
}

/** Options for {@linkcode readMergeTarget}. */
export interface ReadMergeTargetOptions {
  /** The file's absolute path. */
  readonly path: string;
  /** The command that merges (for the usage error). */
  readonly command: "learn" | "run";
  /** The profile to add to (`--profile`). */
  readonly profile: string | undefined;
  /** What to do instead when the file does not exist. */
  readonly instead: string;
}

/**
 * Reads a `--merge FILE` target before anything runs, and proves it can
 * take the additions (a file that cannot is refused now, not after the run).
 */
export async function readMergeTarget(
  file: string,
  options: ReadMergeTargetOptions,
): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(options.path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(
        `Cannot merge into "${file}": the file does not exist: ${options.instead}`,
        { command: options.command },
      );
    }
    throw error;
  }
  mergeLearnedHosts(text, [], { file, command: [], profile: options.profile });
  return text;
}

/**
 * Writes `text` to `target` (or only checks it when `target` is null) after
 * proving that it loads as a config whose profile allows every learned host.
 * The file is replaced atomically; nothing is written when the check fails.
 */
export async function checkAndWrite(
  text: string,
  target: string | null,
  options: {
    profile: string;
    hosts: readonly string[];
    cwd: string;
    home: string | undefined;
    unchanged: boolean;
  },
): Promise<void> {
  if (options.unchanged) return;
  const dir = target === null
    ? await Deno.makeTempDir({ prefix: "sandbox-learn-" })
    : dirname(target);
  const temp = `${dir}/.sandbox-learn-${crypto.randomUUID()}.toml`;
  const cleanup = [temp];
  try {
    // A fresh name, created exclusively: never through a symlink (see safe_file.ts).
    writeTextNoFollow(temp, text, { mode: 0o644, what: "learned profile" });
    // Load only this file (no user file, an empty managed file): the check is about what was written.
    const managed = `${temp}.managed`;
    cleanup.push(managed);
    writeTextNoFollow(managed, "", { what: "learned profile's check file" });
    const env: Record<string, string> = {
      SANDBOX_MANAGED_CONFIG: managed,
      XDG_CONFIG_HOME: `${dir}/.sandbox-learn-no-user-config`,
    };
    // `~/` paths in the written profile expand as they will for the run.
    if (options.home !== undefined) env.HOME = options.home;
    const loaded = await loadEffectiveConfig({ config: [temp], profile: options.profile }, {
      env,
      cwd: options.cwd,
    });
    const allowed = new Set(
      loaded.network.domains.filter((r) => r.action === "allow").map((r) =>
        r.pattern.toLowerCase()
      ),
    );
    const missing = options.hosts.filter((h) => !allowed.has(h.toLowerCase()));
    if (missing.length > 0) {
      throw new ConfigError([{
        file: target ?? "(stdout)",
        keyPath: `permissions.${options.profile}.network.domains`,
        message: `The written profile does not allow ${
          missing.map((h) => `"${h}"`).join(", ")
        }: not written`,
      }]);
    }
    if (target !== null) {
      await Deno.rename(temp, target);
    }
  } finally {
    for (const path of cleanup) await Deno.remove(path).catch(() => {});
    if (target === null) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Hosts the proxy refused as local (a name on a private or reserved address,
 * or such an address itself) while learning: the wildcard of a learn run
 * cannot unlock them, an exact allow can. Loopback is left out: inside, it is
 * the sandbox's own (the host's is `host.sandbox.internal:PORT`).
 */
function refusedLocalHosts(blocked: readonly BlockedHost[]): AllowedHost[] {
  return blocked
    .filter((b) => b.reason === "not_allowed_local" && hostLoopbackReason(b.host) === null)
    .map((b) => ({
      host: b.host,
      ports: b.ports,
      protocols: [],
      count: b.count,
      note: `refused while learning (${b.count} time${b.count === 1 ? "" : "s"}, port${
        b.ports.length === 1 ? "" : "s"
      } ${b.ports.join(", ")}): on a private or reserved address; allowed by this exact name`,
    }));
}

/** `path` as `~/…` when it lies under `home` (a profile that travels with its user). */
function homeRelative(path: string, home: string | undefined): string {
  if (home === undefined || !home.startsWith("/")) return path;
  const base = home.replace(/\/+$/, "");
  if (path === base) return "~";
  return path.startsWith(`${base}/`) ? `~${path.slice(base.length)}` : path;
}

/** The `sandbox run` command that uses what learn wrote, quoted for a POSIX shell. */
function lockDownCommand(
  file: string,
  options: { profile: string | null; resolve: readonly string[]; command: readonly string[] },
): string {
  const args = ["sandbox", "run", "--config", file];
  if (options.profile !== null) args.push("--profile", options.profile);
  for (const pin of options.resolve) args.push("--resolve", pin);
  args.push("--", ...options.command);
  return describeCommand(args);
}

/**
 * The macOS backend: turns a {@linkcode SandboxPlan} into a `sandbox-exec`
 * command line, and runs it on a Mac while watching the system log for the
 * profile's denials.
 *
 * Only `/usr/bin/sandbox-exec` is ever run (an absolute path, never a lookup
 * in `PATH`, which the command's environment could influence). The profile is
 * passed with `-p`, every path as `-DNAME=VALUE`, and `--` ends the options so
 * a command named `-x` is still the command.
 *
 * Canonicalization: Seatbelt matches a file's resolved path, so
 * {@linkcode canonicalizePlanForMacos} resolves every path of the plan with
 * `realpath` (for a path that does not exist yet, its nearest existing
 * ancestor) before the profile is rendered; the pure renderer additionally
 * gives `/tmp`, `/var` and `/etc` paths their `/private/…` twin.
 *
 * Violation reporting is best effort: {@linkcode runOnMacos} streams the
 * unified log (`log stream --style ndjson --predicate 'sender == "Sandbox"'`)
 * while the command runs, and keeps the denial lines that carry this run's
 * tag (`(deny default (with message "TAG"))`) or the child's pid. The log can
 * lag, drop lines under load, or be unavailable; no violation reported does
 * not prove none happened. None of this could be run here (no Mac); see the
 * README section "macos".
 *
 * @module
 */
import { SandboxError } from "../errors.ts";
import type { SandboxPlan } from "./plan.ts";
import { renderSeatbeltProfile } from "./seatbelt.ts";
import { assertSeatbeltProfile } from "./seatbelt_check.ts";

/** The only program this backend executes. */
export const SANDBOX_EXEC = "/usr/bin/sandbox-exec";

/** The unified log tool, for violation reporting. */
const LOG_TOOL = "/usr/bin/log";

/** Options for {@linkcode buildSandboxExecArgv}. */
export interface BuildSandboxExecOptions {
  /** Tag the profile's denials carry in the system log (see `renderSeatbeltProfile`). */
  logTag?: string;
}

/**
 * The full argv that runs `plan.argv` under the plan's Seatbelt profile:
 * `["/usr/bin/sandbox-exec", "-p", PROFILE, "-DNAME=VALUE"…, "--", …argv]`.
 * Pure. The profile is checked with the strict checker first; a profile that
 * fails it is refused with a {@linkcode SandboxError} (fail closed).
 *
 * @example
 * ```ts
 * const argv = buildSandboxExecArgv(plan);
 * // argv[0] === "/usr/bin/sandbox-exec", argv.at(-plan.argv.length - 1) === "--"
 * ```
 */
export function buildSandboxExecArgv(
  plan: SandboxPlan,
  options: BuildSandboxExecOptions = {},
): string[] {
  if (plan.argv.length === 0) {
    throw new SandboxError(
      "sandbox_failed",
      "Cannot build the sandbox-exec command: argv is empty",
    );
  }
  const { profile, params } = renderSeatbeltProfile(plan, { logTag: options.logTag });
  assertSeatbeltProfile(profile, params);
  return [
    SANDBOX_EXEC,
    "-p",
    profile,
    ...Object.entries(params).map(([name, value]) => `-D${name}=${value}`),
    "--",
    ...plan.argv,
  ];
}

/**
 * Text for `sandbox run --dry-run --platform macos`: the profile, then the
 * parameters one per line, then the command. Pure.
 *
 * @example
 * ```ts
 * console.log(formatSeatbeltDryRun(plan));
 * ```
 */
export function formatSeatbeltDryRun(plan: SandboxPlan): string {
  const { profile, params } = renderSeatbeltProfile(plan);
  assertSeatbeltProfile(profile, params);
  const lines = [
    `# ${SANDBOX_EXEC} -p PROFILE -DNAME=VALUE... -- COMMAND`,
    "# profile:",
    profile.trimEnd(),
    "# parameters:",
    ...Object.entries(params).map(([name, value]) => `-D${name}=${value}`),
    "# command:",
    JSON.stringify(plan.argv),
  ];
  return lines.join("\n") + "\n";
}

/** One denial the sandbox logged. */
export interface SandboxViolation {
  /** Name of the process that was denied, as the log gives it. */
  readonly process: string;
  /** Its pid. */
  readonly pid: number;
  /** The Seatbelt operation, e.g. `network-outbound`, `file-write-create`. */
  readonly operation: string;
  /** What it was denied on (a path, an address, a service name), or "" if the log gave none. */
  readonly target: string;
  /** The log line's message as received. */
  readonly message: string;
}

const DENIAL = /Sandbox: (.+?)\((\d+)\) deny\((\d+)\) ([a-z*][a-z0-9*-]*)(?: ([^\n]*))?/;

/**
 * Parses one line of `log stream` output (the `ndjson` style, or plain text)
 * into a {@linkcode SandboxViolation}, or null when the line is not a
 * Seatbelt denial. Pure.
 *
 * @example
 * ```ts
 * parseSandboxDenial("Sandbox: curl(812) deny(1) network-outbound 1.2.3.4:443");
 * // { process: "curl", pid: 812, operation: "network-outbound", target: "1.2.3.4:443", … }
 * ```
 */
export function parseSandboxDenial(line: string): SandboxViolation | null {
  let message = line;
  const trimmed = line.trim();
  if (trimmed.startsWith("{")) {
    try {
      const event = JSON.parse(trimmed) as { eventMessage?: unknown };
      if (typeof event.eventMessage !== "string") return null;
      message = event.eventMessage;
    } catch {
      return null;
    }
  }
  const match = DENIAL.exec(message);
  if (match === null) return null;
  return {
    process: match[1],
    pid: Number(match[2]),
    operation: match[4],
    target: (match[5] ?? "").trim(),
    message: message.trim(),
  };
}

/**
 * Canonicalizes every path of `plan` for Seatbelt, which matches resolved
 * paths: `cwd`, `writable`, `denyRead`, the allowlisted unix sockets,
 * `runDir` and an absolute `TMPDIR` go through `realpath`. A path that does
 * not exist yet keeps its missing tail under its nearest existing ancestor's
 * real path (`/tmp/new/x` -> `/private/tmp/new/x`). Reads the file system;
 * returns a new plan.
 *
 * @example
 * ```ts
 * const real = await canonicalizePlanForMacos(plan);
 * const argv = buildSandboxExecArgv(real);
 * ```
 */
export async function canonicalizePlanForMacos(plan: SandboxPlan): Promise<SandboxPlan> {
  const all = (paths: readonly string[]) => Promise.all(paths.map((p) => realpathOrAncestor(p)));
  const env = { ...plan.env };
  if (env.TMPDIR !== undefined && env.TMPDIR.startsWith("/")) {
    env.TMPDIR = await realpathOrAncestor(env.TMPDIR);
  }
  return {
    ...plan,
    cwd: await realpathOrAncestor(plan.cwd),
    env,
    writable: await all(plan.writable),
    denyRead: await all(plan.denyRead),
    unixSockets: plan.unixSockets.kind === "all"
      ? plan.unixSockets
      : { kind: "allowlist", paths: await all(plan.unixSockets.paths) },
    runDir: await realpathOrAncestor(plan.runDir),
  };
}

async function realpathOrAncestor(path: string): Promise<string> {
  const parts = path.split("/").filter((p) => p !== "");
  for (let keep = parts.length; keep >= 0; keep--) {
    const head = "/" + parts.slice(0, keep).join("/");
    try {
      const real = await Deno.realPath(head);
      const tail = parts.slice(keep);
      return tail.length === 0 ? real : `${real === "/" ? "" : real}/${tail.join("/")}`;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return path;
}

/** Options for {@linkcode runOnMacos}. */
export interface RunOnMacosOptions {
  /** Called for each violation as it is seen. */
  onViolation?: (violation: SandboxViolation) => void;
  /** Aborting kills the command (SIGTERM). */
  signal?: AbortSignal;
  /** Watch the system log for denials (default true). */
  reportViolations?: boolean;
  /** How long to keep reading the log after the command exits, for late lines (default 500 ms). */
  logGraceMs?: number;
  /** How long to wait for `log stream` to start before running the command anyway (default 2000 ms). */
  logStartTimeoutMs?: number;
  /** stdin/stdout/stderr of the command (default: inherited). */
  stdio?: "inherit" | "null";
}

/** What {@linkcode runOnMacos} reports. */
export interface MacosRunResult {
  /** The command's exit code (128 + signal number when it was killed). */
  readonly exitCode: number;
  /** The signal that killed it, or null. */
  readonly signal: string | null;
  /** Denials seen in the system log for this run (best effort, see module doc). */
  readonly violations: SandboxViolation[];
  /** Whether the system log could be watched at all. */
  readonly violationLog: "watched" | "unavailable" | "off";
}

/**
 * Runs `plan` under `/usr/bin/sandbox-exec` on macOS: canonicalizes the plan,
 * builds the argv, starts the command with exactly `plan.env` in `plan.cwd`,
 * and collects the profile's denials from the system log. Throws a
 * {@linkcode SandboxError} (`sandbox_failed`) anywhere but macOS, or when
 * sandbox-exec is missing.
 *
 * @example
 * ```ts
 * const result = await runOnMacos(plan, { onViolation: (v) => console.error(v.message) });
 * ```
 */
export async function runOnMacos(
  plan: SandboxPlan,
  options: RunOnMacosOptions = {},
): Promise<MacosRunResult> {
  if (Deno.build.os !== "darwin") {
    throw new SandboxError(
      "sandbox_failed",
      `Cannot run the macOS sandbox on "${Deno.build.os}": sandbox-exec exists only on macOS`,
    );
  }
  try {
    await Deno.stat(SANDBOX_EXEC);
  } catch (cause) {
    throw new SandboxError("sandbox_failed", `Cannot find "${SANDBOX_EXEC}"`, { cause });
  }
  const real = await canonicalizePlanForMacos(plan);
  const tag = `sandbox_run_${crypto.randomUUID().replaceAll("-", "")}`;
  const argv = buildSandboxExecArgv(real, { logTag: tag });

  const violations: SandboxViolation[] = [];
  await using watcher = options.reportViolations === false
    ? null
    : await startLogWatcher(tag, options.logStartTimeoutMs ?? 2000);
  const stdio = options.stdio ?? "inherit";
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: real.cwd,
    env: { ...real.env },
    clearEnv: true,
    stdin: stdio,
    stdout: stdio,
    stderr: stdio,
  }).spawn();
  const onAbort = () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let status: Deno.CommandStatus;
  try {
    watcher?.watchPid(child.pid);
    status = await child.status;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
  }
  if (watcher !== null) {
    for (const v of await watcher.finish(options.logGraceMs ?? 500)) {
      violations.push(v);
      options.onViolation?.(v);
    }
  }
  return {
    exitCode: status.signal === null ? status.code : 128 + signalNumber(status.signal),
    signal: status.signal,
    violations,
    violationLog: watcher === null ? "off" : watcher.available ? "watched" : "unavailable",
  };
}

/** A running `log stream`; collects this run's denials. */
interface LogWatcher extends AsyncDisposable {
  readonly available: boolean;
  watchPid(pid: number): void;
  finish(graceMs: number): Promise<SandboxViolation[]>;
}

async function startLogWatcher(tag: string, startTimeoutMs: number): Promise<LogWatcher> {
  let process: Deno.ChildProcess;
  try {
    process = new Deno.Command(LOG_TOOL, {
      args: [
        "stream",
        "--style",
        "ndjson",
        "--level",
        "info",
        "--predicate",
        'sender == "Sandbox"',
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
  } catch {
    return unavailableWatcher();
  }
  const pids = new Set<number>();
  const seen: SandboxViolation[] = [];
  let ended = false;
  let started!: () => void;
  const firstLine = new Promise<void>((resolve) => (started = resolve));
  const reading = (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of process.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buffer.indexOf("\n")) !== -1) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        started();
        const v = parseSandboxDenial(line);
        if (v !== null && (line.includes(tag) || pids.has(v.pid))) seen.push(v);
      }
    }
  })().catch(() => {}).finally(() => {
    ended = true;
    started();
  });
  // `log stream` prints a "Filtering the log data…" header once it listens.
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    firstLine,
    new Promise<void>((resolve) => (timer = setTimeout(resolve, startTimeoutMs))),
  ]);
  clearTimeout(timer);

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    try {
      process.kill("SIGTERM");
    } catch {
      // already gone
    }
    await process.status;
    await reading;
  };
  if (ended) {
    await process.status;
    return unavailableWatcher();
  }
  return {
    available: true,
    watchPid: (pid) => pids.add(pid),
    finish: async (graceMs) => {
      await new Promise((resolve) => setTimeout(resolve, graceMs));
      await close();
      return seen;
    },
    [Symbol.asyncDispose]: close,
  };
}

function unavailableWatcher(): LogWatcher {
  return {
    available: false,
    watchPid: () => {},
    finish: () => Promise.resolve([]),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
}

const SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 10,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGUSR1: 30,
  SIGUSR2: 31,
};

/** macOS signal numbers (they differ from Linux for SIGBUS, SIGUSR1, SIGUSR2). */
function signalNumber(signal: string): number {
  return SIGNALS[signal] ?? 0;
}

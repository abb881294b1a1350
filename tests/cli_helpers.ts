/**
 * Helpers shared by the tests that run the `sandbox` CLI as a real
 * subprocess (and by the in-process CLI tests): start a command with a
 * timeout and chosen environment, collect its exit code and output, and
 * temporary directories that remove themselves.
 *
 * @module
 */
import type { MainIo } from "../cli/main.ts";

/** Path of the binary entry point. */
export const MAIN = decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);

/** What a subprocess did. */
export interface CliResult {
  /** Exit code (128+N when it died of signal N). */
  readonly code: number;
  /** Everything written to stdout. */
  readonly stdout: string;
  /** Everything written to stderr. */
  readonly stderr: string;
}

/** Options for {@linkcode runCommand}. */
export interface RunCommandOptions {
  /** Working directory. */
  readonly cwd?: string;
  /**
   * Environment variables: on top of the test's own, or the whole
   * environment with {@linkcode RunCommandOptions.clearEnv}.
   */
  readonly env?: Record<string, string>;
  /** Pass only `env`, nothing of the test's own environment. */
  readonly clearEnv?: boolean;
  /** Names of the test's own variables to leave out (the rest is passed, then `env`). */
  readonly unset?: readonly string[];
  /** stdin of the process (default `"null"`). */
  readonly stdin?: "null" | "inherit";
  /** Stop it after this long and throw (default 60 s). */
  readonly timeoutMs?: number;
}

/** How long a stopped process gets after SIGTERM before SIGKILL. */
const KILL_GRACE_MS = 5_000;

/**
 * Runs `argv` to completion and returns its exit code and output. When it
 * outlives `timeoutMs` it is stopped (SIGTERM, then SIGKILL) and this
 * throws, so a timeout never passes for an exit code.
 *
 * @example
 * ```ts
 * const { code, stderr } = await runCommand(["setsid", "-w", "true"], { timeoutMs: 30_000 });
 * ```
 */
export async function runCommand(
  argv: readonly string[],
  options: RunCommandOptions = {},
): Promise<CliResult> {
  const [cmd, ...args] = argv;
  let env = options.env;
  let clearEnv = options.clearEnv ?? false;
  if (!clearEnv && options.unset !== undefined) {
    const parent = Deno.env.toObject();
    for (const name of options.unset) delete parent[name];
    env = { ...parent, ...options.env };
    clearEnv = true;
  }
  const child = new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    env,
    clearEnv,
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timeoutMs = options.timeoutMs ?? 60_000;
  let timedOut = false;
  let grace: ReturnType<typeof setTimeout> | undefined;
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill("SIGTERM");
    grace = setTimeout(() => kill("SIGKILL"), KILL_GRACE_MS);
  }, timeoutMs);
  try {
    const out = await child.output();
    const decoder = new TextDecoder();
    const result = {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
    if (timedOut) {
      throw new Error(
        `Timed out after ${timeoutMs} ms: ${JSON.stringify(argv)}; stderr: ${result.stderr}`,
      );
    }
    return result;
  } finally {
    clearTimeout(timer);
    clearTimeout(grace);
  }
}

/** Options for {@linkcode sandboxArgv}. */
export interface SandboxArgvOptions {
  /** Start `$SANDBOX_BIN` (a compiled binary) instead of `deno run main.ts` when it is set. */
  readonly sandboxBin?: boolean;
}

/**
 * argv that starts `sandbox ARGS…`: under the Deno running the tests, the
 * same way the program starts itself (self.ts).
 */
export function sandboxArgv(
  args: readonly string[],
  options: SandboxArgvOptions = {},
): string[] {
  const binary = options.sandboxBin ? Deno.env.get("SANDBOX_BIN") : undefined;
  if (binary) return [binary, ...args];
  // As the sandbox task starts it (transparent capture's DNS stub listens on UDP).
  return [Deno.execPath(), "run", "-A", "--no-prompt", "--quiet", "--unstable-net", MAIN, ...args];
}

/** Options for {@linkcode sandboxCli}. */
export interface SandboxCliOptions extends RunCommandOptions, SandboxArgvOptions {}

/**
 * Runs `sandbox ARGS…` to completion and returns its exit code and output.
 *
 * @example
 * ```ts
 * const { code, stdout } = await sandboxCli(["run", "--", "true"], { timeoutMs: 90_000 });
 * ```
 */
export function sandboxCli(
  args: readonly string[],
  options: SandboxCliOptions = {},
): Promise<CliResult> {
  return runCommand(sandboxArgv(args, options), options);
}

/** A temporary directory, removed with everything in it on dispose. */
export interface TempDir extends AsyncDisposable {
  /** Its absolute path. */
  readonly path: string;
}

/**
 * Creates a temporary directory for `await using`.
 *
 * @example
 * ```ts
 * await using dir = await tempDir("my_test_");
 * await Deno.writeTextFile(`${dir.path}/a.toml`, "");
 * ```
 */
export async function tempDir(prefix?: string): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** Whether a program called `name` is in a directory on `$PATH`. */
export function onPath(name: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((dir) => {
    try {
      return Deno.statSync(`${dir}/${name}`).isFile;
    } catch {
      return false;
    }
  });
}

/** A {@linkcode MainIo} that keeps what `main()` writes. */
export function captureIo(): MainIo & { out: string; err: string } {
  const io = {
    out: "",
    err: "",
    stdout(text: string) {
      io.out += text;
    },
    stderr(text: string) {
      io.err += text;
    },
  };
  return io;
}

/** Whether anything (even a dangling symlink) is at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

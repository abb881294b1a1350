/**
 * The in-sandbox half of a conditional shim: decides the argv a program was
 * started with against the run's deny rules, then refuses (exit 126, the rule
 * on stderr) or runs the real program and passes its exit status on. It
 * starts for every call of a shimmed program, so it imports only the
 * execpolicy engine.
 *
 * @module
 */
import type { ExecPolicyConfig } from "./types.ts";
import { decideCommandLazily, formatExecDenial, strictest } from "./decide.ts";
import { programName } from "./match.ts";

/** What `sandbox __shim` was asked to do. */
export interface ShimRequest {
  /** The deny-only rules file written by `prepareShims()`. */
  readonly rulesFile: string;
  /** The real program at its hidden path. */
  readonly real: string;
  /** The names the rules know the program by (the first word they are decided with). */
  readonly names: readonly string[];
  /** The argv the program was started with (`$0` first). */
  readonly argv: readonly string[];
}

/** Where {@linkcode runShim} writes its refusal; tests pass their own. */
export interface RunShimOptions {
  /** Receives the refusal text. */
  readonly stderr?: (text: string) => void;
}

const SIGNALS: readonly Deno.Signal[] = [
  "SIGINT",
  "SIGTERM",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
];
const SIGNAL_NUMBERS: Readonly<Partial<Record<string, number>>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGABRT: 6,
}; // deno-fmt-ignore

/**
 * Decides `request.argv` and returns the exit code: 126 when denied,
 * otherwise the real program's code (128+N when it died of signal N).
 * An unreadable rules file denies (fail closed).
 *
 * @example
 * ```ts
 * const code = await runShim({ rulesFile, real: "/run/x/real/0/git", names: ["git"], argv: ["git", "push"] });
 * ```
 */
export async function runShim(request: ShimRequest, options: RunShimOptions = {}): Promise<number> {
  const stderr = options.stderr ??
    ((text: string) => void Deno.stderr.writeSync(new TextEncoder().encode(text)));
  const args = request.argv.slice(1);
  let policy: ExecPolicyConfig;
  try {
    policy = JSON.parse(await Deno.readTextFile(request.rulesFile));
  } catch (error) {
    stderr(
      `sandbox: Cannot read the execpolicy rules "${request.rulesFile}", so the command is denied: ${
        error instanceof Error ? error.message : error
      }\n`,
    );
    return 126;
  }
  const invoked = programName(request.argv[0] ?? request.real);
  const names = request.names.length > 0 ? request.names : [invoked];
  const verdicts = await Promise.all(
    names.map((name) => decideCommandLazily(policy, [name, ...args], { networkEnabled: true })),
  );
  if (strictest(verdicts.map((v) => v.decision)) === "deny") {
    const denied = verdicts.find((v) => v.decision === "deny")!;
    stderr(`sandbox: ${formatExecDenial({ ...denied, argv: [invoked, ...args] })}\n`);
    return 126;
  }
  const child = new Deno.Command(request.real, {
    args,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const forwarders = SIGNALS.map((signal) => {
    const forward = () => {
      try {
        child.kill(signal);
      } catch {
        // the child is gone already
      }
    };
    Deno.addSignalListener(signal, forward);
    return () => Deno.removeSignalListener(signal, forward);
  });
  try {
    const status = await child.status;
    if (status.signal !== null) return 128 + (SIGNAL_NUMBERS[status.signal] ?? 0);
    return status.code;
  } finally {
    for (const remove of forwarders) remove();
  }
}

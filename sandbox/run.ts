/**
 * `runSandboxed()`: one sandboxed run from start to finish. Decides the
 * command by execpolicy, starts the proxy on a unix socket when the command
 * gets the network, runs it under Bubblewrap with the bridge, and returns
 * what happened. `sandbox run`, `sandbox learn` and CI reporting call it.
 *
 * @module
 */
import type { DecisionEvent } from "../proxy/decision_log.ts";
import type { Resolver } from "../proxy/resolver.ts";
import type { EffectiveConfig, ExecDecision } from "../profiles/types.ts";
import { SandboxError } from "../cli/errors.ts";

/** The execpolicy verdict carried in a {@linkcode RunResult} (contract 4's `ExecVerdict`). */
export interface RunVerdict {
  /** The strictest decision over every command of the command line. */
  readonly decision: ExecDecision;
  /** The rules that matched. */
  readonly matched: readonly {
    readonly pattern: string;
    readonly decision: ExecDecision;
    readonly source: string;
    readonly justification: string | null;
  }[];
}

/** Options for {@linkcode runSandboxed}. */
export interface RunOptions {
  /** How the proxy resolves names (`--resolve` overrides first). */
  readonly resolver?: Resolver;
  /** Append every decision to this file as JSON lines. */
  readonly logFile?: string | null;
  /** Turn an allowlist miss into a question (learn / ask mode). */
  readonly askOnMiss?: (
    miss: { host: string; port: number; protocol: DecisionEvent["protocol"] },
  ) => Promise<"allow" | "deny">;
  /** Called for every proxy decision as it happens. */
  readonly onDecision?: (event: DecisionEvent) => void;
  /** Variables added to the command's environment last. */
  readonly extraEnv?: Readonly<Record<string, string>>;
  /** Print the plan instead of running. */
  readonly dryRun?: boolean;
  /** Which platform's plan `dryRun` prints (default: this one). */
  readonly platform?: "linux" | "macos";
  /** Working directory (default `Deno.cwd()`). */
  readonly cwd?: string;
  /** The launcher's environment (default `Deno.env.toObject()`). */
  readonly env?: Readonly<Record<string, string>>;
}

/** What a run did. */
export interface RunResult {
  /** The command's exit code; 128+N when it died of signal N; 126/127 when it never ran. */
  readonly exitCode: number;
  /** Name of the signal that ended the command, or null. */
  readonly signal: string | null;
  /** Wall time of the run in milliseconds. */
  readonly durationMs: number;
  /** Every decision the proxy made, in order. */
  readonly decisions: DecisionEvent[];
  /** The execpolicy verdict for the command. */
  readonly verdict: RunVerdict;
}

/**
 * Runs `argv` in the sandbox described by `config` and returns its result.
 *
 * @example
 * ```ts
 * const result = await runSandboxed(config, ["npm", "ci"], {});
 * console.log(result.exitCode, result.decisions.filter((d) => d.decision === "deny"));
 * ```
 */
export function runSandboxed(
  _config: EffectiveConfig,
  _argv: readonly string[],
  _options: RunOptions,
): Promise<RunResult> {
  return Promise.reject(new SandboxError("sandbox_failed", "The sandbox is not built yet"));
}

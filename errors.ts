/**
 * Error classes shared by every command. Each carries a closed `code` so that
 * `main.ts` can map it to an exit code without parsing messages.
 *
 * - {@linkcode UsageError}: the user typed something wrong (exit 2).
 * - {@linkcode ConfigError}: a config file or flag value is invalid (exit 2);
 *   it lists every problem with its file, line and key path.
 * - {@linkcode SandboxError}: a real failure (bwrap missing, namespace
 *   setup failed, …); `run` maps it to 126, other commands to 1.
 *
 * @module
 */

/** One problem found while validating configuration. */
export interface ConfigProblem {
  /** The file the problem is in, or a flag name such as `--allow`. */
  file: string;
  /** 1-based line number when it is known. */
  line?: number;
  /** The key path, e.g. `permissions.ci.network.domains."*"`. */
  keyPath: string;
  /** What is wrong and what would be right. */
  message: string;
}

/**
 * The message of anything thrown: `error.message` for an Error, the value as
 * text otherwise. One place for what every error path used to spell out.
 */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Renders a problem as `FILE:LINE: key KEYPATH: MESSAGE`. */
export function formatProblem(problem: ConfigProblem): string {
  const where = problem.line === undefined ? problem.file : `${problem.file}:${problem.line}`;
  const key = problem.keyPath === "" ? "" : ` key ${problem.keyPath}:`;
  return `${where}:${key} ${problem.message}`;
}

/** The codes a {@linkcode UsageError} can carry. */
export type UsageErrorCode = "usage";

/** A mistake in the command line: exit code 2. */
export class UsageError extends Error {
  /** Always `"usage"`. */
  readonly code: UsageErrorCode = "usage";
  /** The command whose usage was wrong, for the hint `sandbox help COMMAND`. */
  readonly command: string | undefined;
  constructor(message: string, options?: { command?: string; cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = "UsageError";
    this.command = options?.command;
  }
}

/** The codes a {@linkcode ConfigError} can carry. */
export type ConfigErrorCode = "config";

/** Invalid configuration: exit code 2. `problems` lists every problem found. */
export class ConfigError extends Error {
  /** Always `"config"`. */
  readonly code: ConfigErrorCode = "config";
  /** Every problem, each with its file, line and key path. */
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[], options?: { cause?: unknown }) {
    super(
      problems.length === 1
        ? `Invalid configuration: ${formatProblem(problems[0])}`
        : `Invalid configuration: ${problems.length} problems:\n` +
          problems.map((p) => `  ${formatProblem(p)}`).join("\n"),
      { cause: options?.cause },
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** The codes a {@linkcode SandboxError} can carry. */
export type SandboxErrorCode =
  | "bwrap_missing"
  | "userns_disabled"
  | "sandbox_failed"
  | "command_not_found"
  | "exec_denied"
  | "proxy_failed"
  | "ca_error"
  | "io";

/** A real failure of the launcher (not the user's typing). */
export class SandboxError extends Error {
  /** What kind of failure this is. */
  readonly code: SandboxErrorCode;
  constructor(code: SandboxErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = "SandboxError";
    this.code = code;
  }
}

/**
 * Command-line parsing shared by every subcommand: the options of
 * `../shared/CLI.md` that run, proxy, policy, learn and profile have in
 * common, and a strict parser that turns every mistake into a
 * {@linkcode UsageError} naming the command.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./errors.ts";

/** Option specs in `node:util` `parseArgs` form. */
export type OptionSpecs = NonNullable<ParseArgsConfig["options"]>;

/** Options shared by run, proxy, policy, learn and profile (CLI.md). */
export const SHARED_OPTIONS = {
  config: { type: "string", multiple: true },
  profile: { type: "string" },
  allow: { type: "string", multiple: true },
  deny: { type: "string", multiple: true },
  preset: { type: "string", multiple: true },
  mode: { type: "string" },
  mitm: { type: "boolean" },
  "allow-local-binding": { type: "boolean" },
  "allow-unix-socket": { type: "string", multiple: true },
  resolve: { type: "string", multiple: true },
  log: { type: "string" },
  "ca-dir": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionSpecs;

/** Values of the shared options after parsing. */
export interface SharedValues {
  config?: string[];
  profile?: string;
  allow?: string[];
  deny?: string[];
  preset?: string[];
  mode?: string;
  mitm?: boolean;
  "allow-local-binding"?: boolean;
  "allow-unix-socket"?: string[];
  resolve?: string[];
  log?: string;
  "ca-dir"?: string;
  json?: boolean;
  help?: boolean;
}

/** Options for {@linkcode parseCommandArgs}. */
export interface ParseCommandArgsOptions {
  /** Accept positionals (otherwise any positional is a usage error). */
  allowPositionals?: boolean;
}

/**
 * Parses `args` strictly against `specs`. Everything after a lone `--` is
 * returned untouched in `rest` (the command to run), never interpreted.
 *
 * @example
 * ```ts
 * const { values, rest } = parseCommandArgs("run", ["--allow", "a.test", "--", "curl", "-v"], SHARED_OPTIONS);
 * // values.allow = ["a.test"], rest = ["curl", "-v"]
 * ```
 */
export function parseCommandArgs<T extends OptionSpecs>(
  command: string,
  args: readonly string[],
  specs: T,
  options: ParseCommandArgsOptions = {},
): { values: Record<string, string | boolean | string[] | boolean[] | undefined>; positionals: string[]; rest: string[] | null } {
  const dashDash = args.indexOf("--");
  const head = dashDash === -1 ? args : args.slice(0, dashDash);
  const rest = dashDash === -1 ? null : args.slice(dashDash + 1);
  try {
    const parsed = parseArgs({
      args: [...head],
      options: specs,
      allowPositionals: options.allowPositionals ?? false,
      strict: true,
    });
    return { values: parsed.values, positionals: parsed.positionals, rest };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(`Invalid arguments for "sandbox ${command}": ${tidyParseArgsMessage(message)}`, {
      command,
      cause: error,
    });
  }
}

function tidyParseArgsMessage(message: string): string {
  // node:util messages end with advice about "--" that is wrong for us; keep the first sentence.
  const first = message.split(/\. (?:To specify|Did you)/)[0];
  return first.replace(/\.$/, "");
}

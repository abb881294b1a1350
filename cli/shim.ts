/**
 * `sandbox __shim --rules FILE --real PATH [--name NAME]… -- ARGV…`: the
 * hidden command that conditional execpolicy shims run inside the sandbox
 * (see execpolicy/shim.ts). Not for people; not listed in help.
 *
 * @module
 */
import { runShim } from "../execpolicy/shim_run.ts";
import { errorMessage, UsageError } from "../errors.ts";

/** Help text (the command is hidden; this is for `sandbox __shim --help`). */
export const SHIM_HELP = `Usage: sandbox __shim --rules FILE --real PATH [--name NAME]... -- ARGV...

Internal: run by execpolicy shims inside the sandbox. Decides ARGV against
the deny rules in FILE; exits 126 with the rule on stderr when denied,
otherwise runs PATH with ARGV's arguments and exits with its status.`;

/**
 * Runs `sandbox __shim`; returns the exit code.
 *
 * @example
 * ```ts
 * await shimCommand(["--rules", "/run/x/rules.json", "--real", "/run/x/real/0/git", "--name", "git", "--", "git", "push"]);
 * ```
 */
export function shimCommand(args: string[]): Promise<number> {
  let rulesFile: string | null = null;
  let real: string | null = null;
  const names: string[] = [];
  let i = 0;
  // A tiny parser of our own: this runs on every shimmed call, so no shared option machinery.
  for (; i < args.length && args[i] !== "--"; i++) {
    const value = args[i + 1];
    if (value === undefined) break;
    if (args[i] === "--rules") rulesFile = value;
    else if (args[i] === "--real") real = value;
    else if (args[i] === "--name") names.push(value);
    else break;
    i++;
  }
  if (rulesFile === null || real === null || args[i] !== "--" || i + 1 >= args.length) {
    throw new UsageError(
      `Invalid arguments for "sandbox __shim": expected "--rules FILE --real PATH [--name NAME]... -- ARGV..."`,
      { command: "__shim" },
    );
  }
  return runShim({ rulesFile, real, names, argv: args.slice(i + 1) });
}

/**
 * Entry point used by `main.ts` for `sandbox __shim …` without loading the
 * whole CLI: `args` are the program's arguments, `__shim` first. Usage
 * mistakes exit 2; anything else that fails exits 126 (the program did not run).
 *
 * @example
 * ```ts
 * Deno.exit(await main(Deno.args)); // Deno.args = ["__shim", "--rules", …]
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  try {
    return await shimCommand(args[0] === "__shim" ? args.slice(1) : [...args]);
  } catch (error) {
    const message = errorMessage(error);
    Deno.stderr.writeSync(new TextEncoder().encode(`sandbox: ${message}\n`));
    return error instanceof UsageError ? 2 : 126;
  }
}

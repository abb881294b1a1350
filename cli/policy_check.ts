/**
 * `sandbox policy check [OPTIONS] -- CMD [ARGS…]`: how execpolicy decides
 * CMD, without running it: the decision, every matching rule, and for a
 * `sh -c` script the decision of each part.
 *
 * @module
 */
import {
  decideCommandLazily,
  type ExecCommandVerdict,
  type ExecVerdict,
  shellJoin,
} from "../execpolicy/mod.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { parseCommandArgs, SHARED_OPTIONS, type SharedValues } from "./args.ts";
import { UsageError } from "../errors.ts";

/** Help text for `sandbox help policy check`. */
export const POLICY_CHECK_HELP = `Usage: sandbox policy check [OPTIONS] -- CMD [ARGS...]

How execpolicy decides CMD, without running it: deny (refuse to run), allow
(run sandboxed with no network at all) or allow-network (run sandboxed with
the proxy). Prints the decision, every rule that matched, which rule decided
each command and which rules it beat (the most specific matching rule
decides), and for a shell script (sh -c '...') the decision of each of its
commands.

Options:
  --config FILE      A TOML config file (repeatable)
  --profile NAME     Permissions profile to use
  --rules FILE       A Codex execpolicy .rules file (repeatable): forbidden
                     denies, allow takes the network posture, prompt denies
  --json             Print {"decision","matched","commands"} on stdout
  -h, --help         Show this help
  (the other shared options are accepted and affect only the network setting)

Exit status: 0 allowed (allow or allow-network), 1 denied, 2 usage or config error.

Example:
  sandbox policy check --json -- sh -c 'npm ci && npm test'`;

/** Options for {@linkcode policyCheckCommand}; the defaults are the real process's. */
export interface PolicyCheckCommandOptions {
  /** Receives stdout text. */
  readonly stdout?: (text: string) => void;
  /** Environment for config discovery (`HOME`, `XDG_CONFIG_HOME`, …). */
  readonly env?: Record<string, string>;
  /** Directory for config discovery and relative `--config` paths. */
  readonly cwd?: string;
}

const encoder = new TextEncoder();

/**
 * Runs `sandbox policy check`; returns 0 when CMD may run, 1 when it is
 * denied. Usage and config mistakes throw (exit 2 via `main()`).
 *
 * @example
 * ```ts
 * const code = await policyCheckCommand(["--json", "--", "curl", "-s", "x"]);
 * // prints {"decision":"deny","matched":[{"pattern":"curl *",…}],"commands":[…]}; code === 1
 * ```
 */
export async function policyCheckCommand(
  args: string[],
  options: PolicyCheckCommandOptions = {},
): Promise<number> {
  const stdout = options.stdout ??
    ((text: string) => void Deno.stdout.writeSync(encoder.encode(text)));
  const { values, positionals, rest } = parseCommandArgs("policy check", args, SHARED_OPTIONS, {
    allowPositionals: true,
  });
  const flags = values as SharedValues;
  if (flags.help === true) {
    stdout(POLICY_CHECK_HELP + "\n");
    return 0;
  }
  const argv = [...positionals, ...(rest ?? [])];
  if (argv.length === 0) {
    throw new UsageError(
      'Missing command for "sandbox policy check": expected "-- CMD [ARGS...]", e.g. "-- npm ci"',
      { command: "policy check" },
    );
  }
  const config = await loadEffectiveConfig(flags, { cwd: options.cwd, env: options.env });
  const verdict = await decideCommandLazily(config.execpolicy, argv, {
    networkEnabled: config.network.enabled,
  });
  stdout(
    (flags.json === true ? JSON.stringify(policyCheckJson(verdict)) : formatVerdict(verdict)) +
      "\n",
  );
  return verdict.decision === "deny" ? 1 : 0;
}

/**
 * The `--json` object: `decision`, `matched`, `commands` (CLI.md), then
 * `argv` and `hosts` (the hosts the run's network is bound to, or null).
 * Each command carries `decidedBy` (the rules that decided it) and `beat`
 * (the matching rules they won over).
 *
 * @example
 * ```ts
 * JSON.stringify(policyCheckJson(verdict)); // {"decision":"allow",...}
 * ```
 */
export function policyCheckJson(verdict: ExecVerdict): Record<string, unknown> {
  return {
    decision: verdict.decision,
    matched: verdict.matched,
    commands: verdict.commands,
    argv: verdict.argv,
    hosts: verdict.hosts,
  };
}

/** Renders a verdict for people (what `policy check` prints without `--json`). */
export function formatVerdict(verdict: ExecVerdict): string {
  const lines = [`${verdict.decision}: ${shellJoin(verdict.argv)}`];
  if (verdict.matched.length > 0) {
    lines.push("matched rules:");
    for (const m of verdict.matched) {
      lines.push(
        `  ${JSON.stringify(m.pattern)} = ${m.decision}  (from ${m.source})` +
          (m.justification === null ? "" : `: ${m.justification}`),
      );
    }
  } else {
    lines.push("matched rules: none");
  }
  if (verdict.hosts !== null) {
    lines.push(`network bound to: ${verdict.hosts.join(", ")} (within the profile's domain rules)`);
  }
  const single = verdict.commands.length === 1 &&
    verdict.commands[0].argv.join("\0") === verdict.argv.join("\0");
  if (!single) lines.push("commands:");
  for (const c of verdict.commands) {
    const indent = single ? "" : "  ";
    if (!single) lines.push(`  ${c.decision.padEnd(13)} ${shellJoin(c.argv)}`);
    lines.push(`${indent}  ${explain(c)}`);
    if (c.beat.length > 0) {
      lines.push(
        `${indent}  beat ${c.beat.map((m) => `"${m.pattern}" = ${m.decision}`).join(", ")}`,
      );
    }
    if (c.note !== null) lines.push(`${indent}  ${c.note}`);
  }
  return lines.join("\n");
}

function explain(c: ExecCommandVerdict): string {
  const rules = c.decidedBy.map((m) =>
    `"${m.pattern}" = ${m.decision}` + (m.hosts === null ? "" : ` (hosts: ${m.hosts.join(", ")})`)
  ).join(", ");
  switch (c.basis) {
    case "rule":
      return `by rule ${rules}`;
    case "wrapper":
      return `the invocation as a whole, by rule ${rules}`;
    case "default":
      return `no rule matches: the table's default "${c.decision}"`;
    case "no-policy":
      return "no execpolicy is configured";
    case "opaque":
      return rules === "" ? "opaque: the table's default" : `opaque, decided by ${rules}`;
    case "error":
      return "denied because deciding failed";
  }
}

/**
 * `sandbox log verify [--json] [--last-hash HASH] FILE`: checks a decision
 * log's hash chain and names the first line that was removed or changed.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { verifyDecisionLog } from "../proxy/decision_log.ts";
import { parseCommandArgs } from "./args.ts";

/** Help text for `sandbox help log`. */
export const LOG_HELP = `Usage: sandbox log verify [OPTIONS] FILE

Checks a decision log written with --log: every line's schema, and the hash
chain (each line carries the SHA-256 of the line before it), so a removed,
edited or reordered line is found and named. A log cut off at the end is
found with --last-hash, the final hash the run's receipt recorded.

Options:
  --last-hash HASH   The SHA-256 the last line must have (from --receipt)
  --json             Print the result as one JSON object

Exit codes: 0 when the log is intact, 1 when it is not, 2 for a usage error
or a file that cannot be read.

Examples:
  sandbox log verify decisions.jsonl
  sandbox log verify --last-hash "$(jq -r .log.last_hash receipt.json)" decisions.jsonl`;

const VERIFY_OPTIONS = {
  "last-hash": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Runs `sandbox log`; returns the exit code. */
export async function logCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "verify") {
    throw new UsageError(
      sub === undefined
        ? 'Missing subcommand for "sandbox log": expected "verify"'
        : `Unknown subcommand "log ${sub}": expected "verify"`,
      { command: "log" },
    );
  }
  const { values, positionals } = parseCommandArgs("log verify", rest, VERIFY_OPTIONS, {
    allowPositionals: true,
  });
  if (values.help === true) {
    console.log(LOG_HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      `Expected one FILE: "sandbox log verify [OPTIONS] FILE" (got ${positionals.length})`,
      { command: "log" },
    );
  }
  const file = positionals[0];
  const lastHash = values["last-hash"] as string | undefined;
  if (lastHash !== undefined && !/^[0-9a-f]{64}$/.test(lastHash)) {
    throw new UsageError(
      `Invalid value for --last-hash: "${lastHash}": expected 64 lowercase hex digits (a SHA-256)`,
      { command: "log" },
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (error) {
    throw new UsageError(
      `Cannot read the decision log "${file}": ${error instanceof Error ? error.message : error}`,
      { command: "log" },
    );
  }
  const result = await verifyDecisionLog(bytes);
  const problems = [...result.problems];
  if (lastHash !== undefined && result.lastHash !== lastHash) {
    problems.push({
      line: result.lines,
      message:
        `the last line (${result.lines}) does not have the expected hash: lines were cut off the end or the last line was changed`,
    });
  }
  if (values.json === true) {
    console.log(JSON.stringify({
      file,
      ok: problems.length === 0,
      lines: result.lines,
      last_hash: result.lastHash,
      problems,
    }));
  } else if (problems.length === 0) {
    console.log(`${file}: intact, ${result.lines} lines, last hash ${result.lastHash}`);
  } else {
    console.error(`sandbox: ${file}: ${problems[0].message}`);
    for (const p of problems.slice(1)) console.error(`  also: ${p.message}`);
  }
  return problems.length === 0 ? 0 : 1;
}

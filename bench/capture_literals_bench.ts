/**
 * What capturing literal addresses costs at start-up: `sandbox run -- true`
 * with no address rule (the baseline, same run), with 16 and with 256
 * (`CAPTURE_MAX_ADDRESSES`) allow rules that name TEST-NET-3 addresses on
 * one port. Each address is one RTM_NEWADDR and a listener per captured
 * port (80, 443 and the rule's), all set up by the bridge before the
 * command starts. Nothing is dialled: the command is `true`.
 *
 *   deno run -A bench/capture_literals_bench.ts [--runs N]
 *
 * Prints the median wall time of N runs per case (cases interleaved, so a
 * change of machine load hits them alike) and each case's ratio to the
 * baseline.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { median, sandboxArgv } from "./common.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string", default: "11" } },
});
const RUNS = Number(values.runs);
const MAIN = decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);
const SELF = await sandboxArgv({ main: MAIN });

/** `--allow 203.0.113.X:5432` for the first `n` addresses of TEST-NET-3 (and 198.51.100.0/24). */
function literalRules(n: number): string[] {
  return Array.from({ length: n }, (_, i) => [
    "--allow",
    `${i < 254 ? "203.0.113" : "198.51.100"}.${(i % 254) + 1}:5432`,
  ]).flat();
}

const cases: [string, string[]][] = [
  ["no literal rule (baseline)", []],
  ["16 literal address rules", literalRules(16)],
  ["256 literal address rules", literalRules(256)],
];

async function time(extra: string[]): Promise<number> {
  const start = performance.now();
  const out = await new Deno.Command(SELF[0], {
    args: [...SELF.slice(1), "run", "--allow", "bench.test", ...extra, "--", "true"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const elapsed = performance.now() - start;
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success || stderr.includes("Cannot capture")) {
    throw new Error(`sandbox run failed or left an address out: ${stderr}`);
  }
  return elapsed;
}

const times = cases.map(() => [] as number[]);
await time([]); // warm the module cache
for (let run = 0; run < RUNS; run++) {
  for (const [i, [, extra]] of cases.entries()) times[i].push(await time(extra));
}
const base = median(times[0]);
console.log(`capture of literal addresses: sandbox run -- true, median of ${RUNS} (ms)`);
for (const [i, [name]] of cases.entries()) {
  const m = median(times[i]);
  console.log(`  ${name.padEnd(30)} ${m.toFixed(1).padStart(8)}  x${(m / base).toFixed(2)}`);
}

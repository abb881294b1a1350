/**
 * What the shell grammar (tree-sitter-bash) adds to execpolicy decisions:
 *
 * - `sandbox policy check` as a process: a script the hand-written splitter
 *   splits (no grammar loaded) against one it refuses (grammar loaded), and
 *   `--version` as the process baseline;
 * - in process: loading the grammar once, and deciding the agent corpus with
 *   and without it.
 *
 * `sandbox run` pays the same load only for a script that needs the grammar;
 * its start-up graph is unchanged (`tests/startup_imports_test.ts`).
 * Prints medians and ratios to the same-run baseline.
 *
 * Usage: deno run -A bench/execpolicy_bench.ts [--runs N]
 *
 * @module
 */
import { decideCommand } from "../execpolicy/decide.ts";
import { loadShellParser } from "../execpolicy/bash_parser.ts";
import type { ExecDecision, ExecPolicyConfig } from "../execpolicy/types.ts";
import { median } from "./common.ts";

const runsAt = Deno.args.indexOf("--runs");
const RUNS = runsAt === -1 ? 11 : Number(Deno.args[runsAt + 1]);
const ROOT = new URL("../", import.meta.url);
const MAIN = decodeURIComponent(new URL("main.ts", ROOT).pathname);

async function timeProcess(args: string[]): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-prompt", "--quiet", MAIN, ...args],
    stdout: "null",
    stderr: "null",
    env: { HOME: "/nonexistent" },
  }).output();
  const ms = performance.now() - t0;
  if (out.code > 1) throw new Error(`sandbox ${args.join(" ")} exited ${out.code}`);
  return ms;
}

const sharedToml = await Deno.makeTempFile({ suffix: ".toml" });
{
  const shared: { table: [string, string][] } = JSON.parse(
    await Deno.readTextFile(new URL("testdata/conformance/execpolicy_table.json", ROOT)),
  );
  await Deno.writeTextFile(
    sharedToml,
    `[execpolicy]\n${shared.table.map(([p, d]) => `${JSON.stringify(p)} = "${d}"`).join("\n")}\n`,
  );
}
const cases: [string, string[]][] = [
  ["--version (baseline)", ["--version"]],
  ["policy check, split by hand", [
    "policy",
    "check",
    "--config",
    sharedToml,
    "--",
    "bash",
    "-lc",
    "npm ci && npm test",
  ]],
  ["policy check, needs the grammar", [
    "policy",
    "check",
    "--config",
    sharedToml,
    "--",
    "bash",
    "-lc",
    "for f in *.js; do node $f; done",
  ]],
];
const medians: number[] = [];
for (const [name, args] of cases) {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) times.push(await timeProcess(args));
  medians.push(median(times));
  console.log(
    `${name.padEnd(34)} median ${median(times).toFixed(1)} ms  (${
      (median(times) / medians[0]).toFixed(2)
    }x baseline, ${RUNS} runs)`,
  );
}
console.log(`grammar adds to policy check: ${(medians[2] - medians[1]).toFixed(1)} ms (median)`);
await Deno.remove(sharedToml);

const loads: number[] = [];
for (let i = 0; i < Math.min(RUNS, 5); i++) {
  const t0 = performance.now();
  const p = await loadShellParser();
  loads.push(performance.now() - t0);
  if (!("split" in p)) throw new Error(p.error);
}
console.log(`in process: loadShellParser() median ${median(loads).toFixed(1)} ms`);

const table: { table: [string, ExecDecision][] } = JSON.parse(
  await Deno.readTextFile(new URL("testdata/conformance/execpolicy_table.json", ROOT)),
);
const corpus: { argv: string[] }[] = JSON.parse(
  await Deno.readTextFile(new URL("testdata/execpolicy/agent_corpus.json", ROOT)),
);
const policy: ExecPolicyConfig = {
  default: "allow",
  rules: table.table.map(([pattern, decision]) => ({
    pattern,
    decision,
    justification: null,
    match: [],
    notMatch: [],
    source: "bench",
  })),
};
const parser = await loadShellParser();
if (!("split" in parser)) throw new Error(parser.error);
for (
  const [name, withParser] of [["hand-written splitter", false], ["with grammar", true]] as const
) {
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    for (const c of corpus) {
      decideCommand(policy, c.argv, {
        networkEnabled: true,
        env: {},
        cwd: null,
        shellParser: withParser ? parser : undefined,
      });
    }
    times.push(performance.now() - t0);
  }
  console.log(
    `corpus (${corpus.length} lines), ${name.padEnd(22)} median ${median(times).toFixed(1)} ms ` +
      `(${(median(times) * 1000 / corpus.length).toFixed(0)} µs/line)`,
  );
}

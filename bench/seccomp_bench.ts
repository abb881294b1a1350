/**
 * The cost of the seccomp filter, with baselines from the same run.
 *
 *   deno run -A bench/seccomp_bench.ts [--runs N]
 *
 * The filter is on in every `sandbox run`, and there is no switch to turn it
 * off (a hidden one would be a way around it). So its cost is measured where
 * it is paid: bwrap started with the exact argv `sandbox run` builds for
 * `true` (the plan from `buildSandboxPlan()`, the argv from
 * `buildBwrapArgs()`), once without `--seccomp` and once with the filter on
 * descriptor 3 (both through the same `sh -c 'exec … 3<file'`, so the shell
 * costs both alike), for `true` and for `node -e 0` (a start-up with a few
 * thousand syscalls, each of which runs the filter). Beside them,
 * `sandbox run -- true` end to end (allow posture: no proxy), to put the
 * difference in proportion, and the time `buildSeccompFilter()` itself
 * takes in the launcher. Cases are interleaved so that load from other users
 * of the machine hits every case alike; figures are medians.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { buildSandboxPlan, collectHostFacts } from "../sandbox/build_plan.ts";
import { buildBwrapArgs } from "../sandbox/bwrap_args.ts";
import { buildSeccompFilter, currentSeccompArch } from "../sandbox/seccomp.ts";
import { median, sandboxArgv } from "./common.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string", default: "30" } },
});
const RUNS = Number(values.runs);
const MAIN = decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);
const SELF = await sandboxArgv({ main: MAIN });
const arch = currentSeccompArch();
if (arch === null) throw new Error(`no seccomp filter for ${Deno.build.arch}`);

async function time(argv: string[], cwd: string): Promise<number> {
  const start = performance.now();
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const elapsed = performance.now() - start;
  if (!out.success) {
    throw new Error(`${argv.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return elapsed;
}

const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "seccomp-bench-" }));
try {
  await Deno.writeTextFile(`${dir}/allow.toml`, `[execpolicy]\n"true" = "allow"\n`);
  const env = Deno.env.toObject();
  const config = await loadEffectiveConfig({}, { env, cwd: dir });
  const runDir = await Deno.makeTempDir({ prefix: "sandbox-run-bench-" });
  const host = await collectHostFacts(config, { env, runDir });
  const planFor = (argv: string[]) =>
    buildSandboxPlan(config, argv, { cwd: dir, env, runDir, network: null, host });
  const filter = buildSeccompFilter(planFor(["true"]), arch);
  await Deno.writeFile(`${dir}/filter.bpf`, filter);

  // bwrap's argv for a command, run through sh so that descriptor 3 can be the filter file.
  const viaShell = (argv: string[], seccomp: boolean) => {
    const args = buildBwrapArgs(planFor(argv));
    // A real run fills its run dir before bwrap starts: make the bind sources that live
    // there, so the argv stays exactly the plan's.
    for (let i = 0; i < args.length - 1; i++) {
      if (!["--bind", "--ro-bind", "--bind-try", "--ro-bind-try"].includes(args[i])) continue;
      if (args[i + 1].startsWith(`${runDir}/`)) Deno.mkdirSync(args[i + 1], { recursive: true });
    }
    if (seccomp) args.splice(args.indexOf("--"), 0, "--seccomp", "3");
    return ["/bin/sh", "-c", 'exec "$@" 3<filter.bpf', "sh", "bwrap", ...args];
  };
  const cases: [string, string[]][] = [
    ["bwrap (plan argv) … true, no filter", viaShell(["true"], false)],
    ["bwrap (plan argv) … true, filter", viaShell(["true"], true)],
    ["bwrap (plan argv) … node -e 0, no filter", viaShell(["node", "-e", "0"], false)],
    ["bwrap (plan argv) … node -e 0, filter", viaShell(["node", "-e", "0"], true)],
    [
      "sandbox run -- true (allow posture, filter on)",
      [...SELF, "run", "--config", `${dir}/allow.toml`, "--", "true"],
    ],
  ];
  const results = new Map<string, number[]>(cases.map(([name]) => [name, []]));
  for (const [, argv] of cases) await time(argv, dir); // warm caches
  for (let i = 0; i < RUNS; i++) {
    for (const [name, argv] of cases) results.get(name)!.push(await time(argv, dir));
  }
  const build: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const start = performance.now();
    buildSeccompFilter(planFor(["true"]), arch);
    build.push(performance.now() - start);
  }
  await Deno.remove(runDir, { recursive: true });

  const m = (name: string) => median(results.get(name)!);
  console.log(`seccomp filter (${filter.length / 8} instructions), median of ${RUNS} runs (ms):`);
  for (const [name] of cases) console.log(`  ${m(name).toFixed(1).padStart(7)}  ${name}`);
  // Paired: each round ran every case once, back to back, so the per-round difference
  // cancels most of the load that other users put on the machine in that round.
  const paired = (without: number, withFilter: number) =>
    median(
      results.get(cases[withFilter][0])!.map((x, i) => x - results.get(cases[without][0])![i]),
    );
  const dTrue = paired(0, 1);
  const dNode = paired(2, 3);
  console.log(
    `  filter cost on true (median of paired differences): ${dTrue.toFixed(2)} ms (${
      (100 * dTrue / m(cases[0][0])).toFixed(1)
    }% of bwrap alone, ${(100 * dTrue / m(cases[4][0])).toFixed(1)}% of sandbox run -- true)`,
  );
  console.log(
    `  filter cost on node -e 0 (median of paired differences): ${dNode.toFixed(2)} ms (${
      (100 * dNode / m(cases[2][0])).toFixed(1)
    }% of it without the filter)`,
  );
  console.log(`  buildSeccompFilter(): median ${(median(build) * 1000).toFixed(1)} µs`);
} finally {
  await Deno.remove(dir, { recursive: true });
}

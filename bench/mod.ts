/**
 * `deno task bench [--quick] [NAME…]`: runs the benchmark scripts one after another,
 * each in its own process so that one's memory and threads do not colour
 * the next one's figures. Without names it runs `proxy`, `requests`,
 * `rules`, `run` and `mitm`; `soak` (10 minutes by default), `globs` and
 * `seccomp` run only when named. `--quick` passes each script fewer repetitions, so the
 * whole default set finishes in a few minutes.
 *
 * Every script prints its own figures (medians, and ratios against a
 * baseline measured in the same run).
 *
 * @module
 */

/** A benchmark script, whether a bare `deno task bench` runs it, and its arguments under `--quick`. */
const BENCHES: Readonly<
  Record<string, { file: string; byDefault: boolean; quick: readonly string[] }>
> = {
  proxy: { file: "proxy_bench.ts", byDefault: true, quick: ["--requests", "1000"] },
  requests: { file: "requests_bench.ts", byDefault: true, quick: ["--quick"] },
  rules: { file: "rules_bench.ts", byDefault: true, quick: ["--quick"] },
  run: { file: "run_bench.ts", byDefault: true, quick: ["--runs", "7"] },
  mitm: { file: "mitm_bench.ts", byDefault: true, quick: ["--runs", "1"] },
  soak: { file: "soak.ts", byDefault: false, quick: [] },
  globs: { file: "deny_glob_bench.ts", byDefault: false, quick: [] },
  seccomp: { file: "seccomp_bench.ts", byDefault: false, quick: ["--runs", "7"] },
  execpolicy: { file: "execpolicy_bench.ts", byDefault: false, quick: ["--runs", "5"] },
  "tool-homes": { file: "tool_homes_bench.ts", byDefault: false, quick: ["--runs", "1"] },
  "capture-literals": {
    file: "capture_literals_bench.ts",
    byDefault: false,
    quick: ["--runs", "5"],
  },
};

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const given = Deno.args.filter((arg) => arg !== "--quick");
  const names = given.length > 0
    ? given
    : Object.keys(BENCHES).filter((name) => BENCHES[name].byDefault);
  const unknown = names.filter((name) => !(name in BENCHES));
  if (unknown.length > 0) {
    console.error(
      `bench: Unknown benchmark "${unknown[0]}": expected one of ${
        Object.keys(BENCHES).join(", ")
      } (and --quick)`,
    );
    Deno.exit(2);
  }
  const load = () => Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
  console.log(
    `bench: ${names.join(", ")}${
      quick ? " (--quick)" : ""
    }; ${navigator.hardwareConcurrency} cores, load average ${load()}`,
  );
  let failed = 0;
  for (const name of names) {
    const file = new URL(BENCHES[name].file, import.meta.url).pathname;
    console.log(`\n== bench ${name} (${file})`);
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", file, ...(quick ? BENCHES[name].quick : [])],
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (code !== 0) {
      console.error(`bench: ${name} exited with ${code}`);
      failed++;
    }
  }
  console.log(
    `\nbench: done; load average ${load()} (figures are medians beside same-run baselines)`,
  );
  Deno.exit(failed === 0 ? 0 : 1);
}

/**
 * `deno task bench [NAME…]`: runs the benchmark scripts one after another,
 * each in its own process so that one's memory and threads do not colour
 * the next one's figures. Without names it runs `proxy`, `run` and `mitm`;
 * `soak` (10 minutes by default) runs only when named.
 *
 * Every script prints its own figures (medians, and ratios against a
 * baseline measured in the same run).
 *
 * @module
 */

const BENCHES: Readonly<Record<string, { file: string; byDefault: boolean }>> = {
  proxy: { file: "proxy_bench.ts", byDefault: true },
  run: { file: "run_bench.ts", byDefault: true },
  mitm: { file: "mitm_bench.ts", byDefault: true },
  soak: { file: "soak.ts", byDefault: false },
  globs: { file: "deny_glob_bench.ts", byDefault: false },
};

if (import.meta.main) {
  const names = Deno.args.length > 0
    ? Deno.args
    : Object.keys(BENCHES).filter((name) => BENCHES[name].byDefault);
  const unknown = names.filter((name) => !(name in BENCHES));
  if (unknown.length > 0) {
    console.error(
      `bench: Unknown benchmark "${unknown[0]}": expected one of ${
        Object.keys(BENCHES).join(", ")
      }`,
    );
    Deno.exit(2);
  }
  let failed = 0;
  for (const name of names) {
    const file = new URL(BENCHES[name].file, import.meta.url).pathname;
    console.log(`\n== bench ${name} (${file})`);
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", file],
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (code !== 0) {
      console.error(`bench: ${name} exited with ${code}`);
      failed++;
    }
  }
  Deno.exit(failed === 0 ? 0 : 1);
}

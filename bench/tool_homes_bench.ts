/**
 * Tool homes: how much faster the second sandboxed `npm ci` is, served from
 * the sandbox home, with baselines from the same run.
 *
 *   deno run -A bench/tool_homes_bench.ts [--runs N]
 *
 * Project: testdata/npm_project (141 packages). Each sample runs in a fresh
 * copy of the project with a HOME of its own. Median wall time of N samples:
 *   - unsandboxed `npm ci`, cold cache (empty HOME) and warm (second run);
 *   - `sandbox run --allow REGISTRY -- npm ci`, cold (empty sandbox home) and
 *     warm (the sandbox home of a previous run).
 * The registry comes from `npm config get registry`; the bench stops with a
 * message when it is not reachable.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { median } from "./common.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string", default: "3" } },
});
const RUNS = Number(values.runs);
const MAIN = decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);
const PROJECT = decodeURIComponent(new URL("../testdata/npm_project", import.meta.url).pathname);

const registryText = new TextDecoder().decode(
  (await new Deno.Command("npm", { args: ["config", "get", "registry"], stdout: "piped" }).output())
    .stdout,
).trim();
const registry = new URL(registryText);
try {
  const ping = await fetch(new URL("-/ping", registry), { signal: AbortSignal.timeout(5_000) });
  await ping.body?.cancel();
  if (!ping.ok) throw new Error(`status ${ping.status}`);
} catch (error) {
  console.log(`tool_homes_bench: skipped: the npm registry is not reachable (${error})`);
  Deno.exit(0);
}

async function timed(argv: string[], cwd: string, home: string): Promise<number> {
  const started = performance.now();
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd,
    clearEnv: true,
    env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: home, npm_config_registry: registry.href },
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - started;
  if (!out.success) throw new Error(`${argv.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return ms;
}

async function fresh(base: string, name: string): Promise<string> {
  const dir = `${base}/${name}`;
  await new Deno.Command("/bin/cp", { args: ["-r", PROJECT, dir] }).output();
  return dir;
}

const npm = ["npm", "ci", "--no-audit", "--no-fund"];
const sandboxed = [
  Deno.execPath(),
  "run",
  "-A",
  "--quiet",
  MAIN,
  "run",
  "--allow",
  registry.hostname,
  "--",
  ...npm,
];
const figures: Record<string, number[]> = {
  plainCold: [],
  plainWarm: [],
  sandboxCold: [],
  sandboxWarm: [],
};
const base = await Deno.makeTempDir({ prefix: "tool-homes-bench-" });
try {
  for (let i = 0; i < RUNS; i++) {
    for (const [kind, argv] of [["plain", npm], ["sandbox", sandboxed]] as const) {
      const home = `${base}/home-${kind}-${i}`;
      await Deno.mkdir(home);
      figures[`${kind}Cold`].push(await timed(argv, await fresh(base, `${kind}-cold-${i}`), home));
      figures[`${kind}Warm`].push(await timed(argv, await fresh(base, `${kind}-warm-${i}`), home));
    }
  }
} finally {
  await Deno.remove(base, { recursive: true });
}
const m = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, median(v)]));
const row = (label: string, ms: number) =>
  console.log(`${label.padEnd(44)} ${(ms / 1000).toFixed(2)} s`);
console.log(
  `npm ci of 141 packages, median of ${RUNS} (load average ${Deno.loadavg()[0].toFixed(2)})`,
);
row("unsandboxed npm ci, cold cache", m.plainCold);
row("unsandboxed npm ci, warm cache", m.plainWarm);
row("sandbox run npm ci, cold sandbox home", m.sandboxCold);
row("sandbox run npm ci, warm sandbox home", m.sandboxWarm);
console.log(
  `warm/cold: unsandboxed ${(m.plainWarm / m.plainCold).toFixed(2)}, sandboxed ${
    (m.sandboxWarm / m.sandboxCold).toFixed(2)
  }; sandboxed warm / unsandboxed warm ${(m.sandboxWarm / m.plainWarm).toFixed(2)}`,
);

/**
 * Large allowlists: start-up and per-request decision time at 1 / 100 /
 * 10,000 / 100,000 domain patterns, each beside the 1-pattern figure of the
 * same run (the baseline).
 *
 *   deno run -A bench/rules_bench.ts [--runs N] [--sizes 1,100,10000,100000] [--quick]
 *
 * The rules (one config file per size): 90% exact names (`dI.example.com`),
 * 5% `**.wI.example.net`, 5% `*.xI.example.org` denied.
 *
 * - start-up: wall time of `sandbox run --config FILE -- true` (network on:
 *   the config is read, validated, merged and compiled, the proxy starts,
 *   bwrap runs `true`), median of N runs, sizes interleaved so the load of
 *   other users of the machine hits each size alike; with GNU time
 *   installed, also its CPU time (user + sys of the run and its children),
 *   which other users of the machine disturb less;
 * - decision: `decideHost()` in this process on a policy compiled from the
 *   same file, over the same mix of hosts at every size (the last exact rule,
 *   a subdomain of it, an unknown name); per-decision time is
 *   the mean of a batch of decisions, median of batches. Names resolve
 *   through `--resolve`-style overrides, never DNS.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { compileNetworkPolicy, decideHost } from "../policy/policy.ts";
import { createResolver } from "../proxy/resolver.ts";
import { median, sandboxArgv } from "./common.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string" },
    sizes: { type: "string", default: "1,100,10000,100000" },
    quick: { type: "boolean", default: false },
    main: { type: "string" },
  },
});
const QUICK = values.quick === true;
const RUNS = Number(values.runs ?? (QUICK ? 5 : 11));
const SIZES = values.sizes.split(",").map(Number);
// `--main` points at another checkout's main.ts (an A/B comparison in one run).
const MAIN = values.main ?? decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);
const SELF = await sandboxArgv({ main: MAIN });

/** The rules of one size, as a config file's text. */
function configText(size: number): string {
  const lines = [
    'default_permissions = "big"',
    "[permissions.big.network]",
    "enabled = true",
    // The overrides below answer with a loopback address (nothing is connected to).
    "allow_local_binding = true",
    "[permissions.big.network.domains]",
  ];
  for (let i = 0; i < size; i++) {
    if (size > 1 && i % 20 === 1) lines.push(`"**.w${i}.example.net" = "allow"`);
    else if (size > 1 && i % 20 === 2) lines.push(`"*.x${i}.example.org" = "deny"`);
    else lines.push(`"d${i}.example.com" = "allow"`);
  }
  return lines.join("\n") + "\n";
}

/**
 * Hosts decided per batch, the same kinds at every size so that sizes compare: the last exact
 * rule (allowed, one override lookup), a subdomain of it and an unknown name (both refused
 * `not_allowed`, no lookup). At sizes > 1 the lists also hold `**.` and `*.` rules, so the walk
 * probes every suffix of each host against a map holding all of them.
 */
function hostsFor(size: number): string[] {
  let exact = size - 1;
  while (size > 1 && exact % 20 <= 2 && exact % 20 >= 1) exact--;
  return [`d${exact}.example.com`, `a.d${exact}.example.com`, "unknown.example.com"];
}

// CPU time (user + sys of the launcher and its children: bwrap, the bridge, the command) is less
// sensitive to other users of the machine than wall time; GNU time reports it when installed.
const GNU_TIME = (() => {
  try {
    return Deno.statSync("/usr/bin/time").isFile ? "/usr/bin/time" : null;
  } catch {
    return null;
  }
})();

/** Runs `argv`; returns its wall time and (with GNU time) its CPU time, in ms. */
async function time(argv: string[], cwd: string): Promise<{ wall: number; cpu: number | null }> {
  const timed = GNU_TIME === null ? argv : [GNU_TIME, "-f", "CPU %U %S", ...argv];
  const start = performance.now();
  const out = await new Deno.Command(timed[0], {
    args: timed.slice(1),
    cwd,
    // A config dir of its own: only the rules file under test is loaded, never the user's
    // config (HOME stays: Deno's own cache lives under it).
    env: { XDG_CONFIG_HOME: `${cwd}/.config` },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const elapsed = performance.now() - start;
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${argv.join(" ")} failed: ${stderr}`);
  const cpu = /CPU ([0-9.]+) ([0-9.]+)\s*$/.exec(stderr);
  return { wall: elapsed, cpu: cpu === null ? null : (Number(cpu[1]) + Number(cpu[2])) * 1000 };
}

const dir = await Deno.makeTempDir({ prefix: "rules-bench-" });
try {
  const files = new Map<number, string>();
  for (const size of SIZES) {
    const file = `${dir}/rules-${size}.toml`;
    await Deno.writeTextFile(file, configText(size));
    files.set(size, file);
  }

  // Start-up.
  const startUp = new Map<number, number[]>(SIZES.map((size) => [size, []]));
  const startUpCpu = new Map<number, number[]>(SIZES.map((size) => [size, []]));
  const argv = (size: number) => [...SELF, "run", "--config", files.get(size)!, "--", "true"];
  for (const size of SIZES) await time(argv(size), dir); // Warm the caches.
  for (let i = 0; i < RUNS; i++) {
    for (const size of SIZES) {
      const { wall, cpu } = await time(argv(size), dir);
      startUp.get(size)!.push(wall);
      if (cpu !== null) startUpCpu.get(size)!.push(cpu);
    }
  }
  const base = median(startUp.get(SIZES[0])!);
  console.log(
    `start-up, sandbox run --config RULES -- true (network on), median of ${RUNS} (ms; ratio to ${
      SIZES[0]
    } pattern${SIZES[0] === 1 ? "" : "s"}):`,
  );
  for (const size of SIZES) {
    const m = median(startUp.get(size)!);
    console.log(
      `  ${size.toLocaleString("en-US").padStart(9)} patterns  ${m.toFixed(1).padStart(8)}  ratio ${
        (m / base).toFixed(2)
      }`,
    );
  }
  if (startUpCpu.get(SIZES[0])!.length > 0) {
    const cpuBase = median(startUpCpu.get(SIZES[0])!);
    console.log(
      `start-up CPU time (user+sys of the run and its children, GNU time, 10 ms steps), median of ${RUNS} (ms; ratio):`,
    );
    for (const size of SIZES) {
      const m = median(startUpCpu.get(size)!);
      console.log(
        `  ${size.toLocaleString("en-US").padStart(9)} patterns  ${
          m.toFixed(0).padStart(8)
        }  ratio ${(m / cpuBase).toFixed(2)}`,
      );
    }
  }

  // Per-request decision time.
  const batches = QUICK ? 15 : 41;
  const perBatch = 4000;
  const decision = new Map<number, number[]>(SIZES.map((size) => [size, []]));
  const policies = new Map<number, ReturnType<typeof compileNetworkPolicy>>();
  const resolver = createResolver({
    overrides: new Map(SIZES.flatMap((size) => hostsFor(size).map((h) => [h, ["127.0.0.2"]]))),
  });
  for (const size of SIZES) {
    const config = await loadEffectiveConfig({ config: [files.get(size)!] }, {
      env: { HOME: dir, PATH: Deno.env.get("PATH") ?? "" },
      cwd: dir,
    });
    policies.set(size, compileNetworkPolicy(config.network));
  }
  const expected = new Map<number, string[]>();
  for (let b = -3; b < batches; b++) { // 3 warm-up batches.
    // The order of sizes rotates from batch to batch, so no size always runs first (after a GC).
    const order = SIZES.map((_, i) => SIZES[(i + b + 3) % SIZES.length]);
    for (const size of order) {
      const policy = policies.get(size)!;
      const hosts = hostsFor(size);
      const start = performance.now();
      const outcomes: string[] = [];
      for (let i = 0; i < perBatch; i++) {
        const d = await decideHost(policy, hosts[i % hosts.length], { resolver });
        if (i < hosts.length) outcomes.push(`${d.decision}:${d.rule}`);
      }
      const elapsed = performance.now() - start;
      if (b >= 0) decision.get(size)!.push((elapsed / perBatch) * 1000);
      const seen = expected.get(size);
      if (seen === undefined) expected.set(size, outcomes);
      else if (seen.join() !== outcomes.join()) {
        throw new Error("decisions changed between batches");
      }
    }
  }
  const decisionBase = median(decision.get(SIZES[0])!);
  console.log(
    `decision, decideHost() in-process, µs per decision (median of ${batches} batches of ${perBatch}):`,
  );
  for (const size of SIZES) {
    const m = median(decision.get(size)!);
    console.log(
      `  ${size.toLocaleString("en-US").padStart(9)} patterns  ${m.toFixed(2).padStart(8)}  ratio ${
        (m / decisionBase).toFixed(2)
      }   (${expected.get(size)!.join(", ")})`,
    );
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

/**
 * `sandbox run` start-up and throughput, with baselines from the same run.
 *
 *   deno run -A bench/run_bench.ts [--runs N] [--mib M] [--main PATH] [--nobody]
 *
 * `--runs 0` skips the start-up part, `--mib 0` the throughput part;
 * `--main` points at another checkout's main.ts (for A/B comparisons);
 * `--base PATH` adds the three `sandbox run` cases of another checkout's
 * main.ts, interleaved with this one's (an A/B in one run, so the machine's
 * load hits both alike), and prints each side's network part (network run
 * minus `allow` run);
 * `--nobody` (as root) runs every case as uid 65534 through `setpriv`, with
 * a copy of Deno and its npm cache that nobody can read: the unprivileged
 * path (bwrap's own user namespace, the bridge entering it).
 *
 * Start-up (median wall time of N runs each, measured from this process):
 *   - bare `bwrap` with the same namespaces running `true` (the floor),
 *   - `deno run main.ts --version` (the launcher's own start-up),
 *   - bwrap starting the bridge inside it (`__bridge`, exits at once): the
 *     cost of the "bridge inside" design, for comparison,
 *   - `sandbox run -- true` with network (proxy, bwrap, the listeners inside: the launcher's
 *     own as root, the bridge process's unprivileged; capture on, the default),
 *   - the same with `--no-capture` (no DNS stub, no synthetic range),
 *   - `sandbox run -- true` for an execpolicy `allow` command (no proxy, no bridge).
 * Throughput: curl inside the sandbox downloads M MiB through the listeners inside and
 * the proxy (CONNECT tunnel) from a loopback server, and again connecting
 * directly (`--noproxy '*'`: captured, a plain tunnel for the `host:PORT`
 * rule); beside them, curl on the host straight from the same server.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { prepareNobody } from "../tests/nobody_helpers.ts";
import { median, sandboxArgv } from "./common.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "15" },
    mib: { type: "string", default: "1024" },
    main: { type: "string" },
    nobody: { type: "boolean", default: false },
    base: { type: "string" },
  },
});
const RUNS = Number(values.runs);
const MIB = Number(values.mib);
const MAIN = values.main ?? decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);
const nobody = values.nobody ? await prepareNobody() : null;
/** Runs a program as nobody (empty without --nobody). */
const AS = nobody === null ? [] : nobody.script("/bin/true").slice(0, 4);
// As `deno task sandbox` starts it (its V8 flags included).
const SELF = [
  ...AS,
  ...await sandboxArgv({
    main: MAIN,
    deno: nobody === null ? Deno.execPath() : `${nobody.dir}/deno`,
  }),
];
/** nobody cannot use root's HOME or Deno cache. */
const ENV: Record<string, string> | undefined = nobody === null
  ? undefined
  : { ...nobody.denoEnv, HOME: `${nobody.dir}/home` };

async function time(argv: string[], options: { cwd?: string } = {}): Promise<number> {
  const start = performance.now();
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: options.cwd,
    env: ENV,
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

const dir = await Deno.makeTempDir({ prefix: "run-bench-" });
await Deno.writeTextFile(`${dir}/allow.toml`, `[execpolicy]\n"true" = "allow"\n`);
if (nobody !== null) {
  await Deno.mkdir(`${nobody.dir}/home`);
  await nobody.chown(dir);
  await nobody.chown(`${nobody.dir}/home`);
}
const BWRAP_NS = [
  ...AS,
  "bwrap",
  "--unshare-user",
  "--unshare-pid",
  "--unshare-ipc",
  "--unshare-net",
  "--unshare-uts",
  "--die-with-parent",
  "--new-session",
  "--ro-bind",
  "/",
  "/",
  "--dev",
  "/dev",
  "--proc",
  "/proc",
  "--tmpfs",
  "/tmp",
];
const allCases: [string, string[]][] = [
  ["bare bwrap … true", [...BWRAP_NS, "true"]],
  ["deno run main.ts --version", [...SELF, "--version"]],
  [
    "bwrap … sandbox __bridge (bridge-inside design, start-up only)",
    [
      ...BWRAP_NS,
      ...SELF.slice(AS.length),
      "__bridge",
      "--target",
      "/nonexistent",
      "--listen",
      "127.0.0.1:3128",
    ],
  ],
  ["sandbox run -- true (network: proxy + listeners inside)", [...SELF, "run", "--", "true"]],
  [
    "sandbox run --no-capture -- true (network, capture off)",
    [...SELF, "run", "--no-capture", "--", "true"],
  ],
  [
    "sandbox run -- true (execpolicy allow: no network)",
    [...SELF, "run", "--config", `${dir}/allow.toml`, "--", "true"],
  ],
];
if (values.base !== undefined) {
  const base = [...SELF.slice(0, -1), values.base];
  allCases.push(
    ["[base] sandbox run -- true (network)", [...base, "run", "--", "true"]],
    ["[base] sandbox run --no-capture -- true", [...base, "run", "--no-capture", "--", "true"]],
    [
      "[base] sandbox run -- true (execpolicy allow)",
      [...base, "run", "--config", `${dir}/allow.toml`, "--", "true"],
    ],
  );
}
// The bridge-inside case needs the Deno copy under /tmp, which that bwrap covers: root only.
const cases = nobody === null
  ? allCases
  : allCases.filter(([name]) => !name.includes("bridge-inside"));
try {
  if (RUNS > 0) await startUp();
  if (MIB > 0) await throughput();
} finally {
  await Deno.remove(dir, { recursive: true });
  if (nobody !== null) await nobody[Symbol.asyncDispose]();
}

async function startUp(): Promise<void> {
  const results = new Map<string, number[]>(cases.map(([name]) => [name, []]));
  // Warm Deno's caches. The bridge inside bwrap sees DENO_DIR read-only and cannot save what it
  // compiles, and a root run no longer starts a bridge process: start it once outside first.
  await time([...SELF, "__bridge", "--target", "/nonexistent", "--listen", "127.0.0.1:0"], {
    cwd: dir,
  });
  for (const [, argv] of cases) await time(argv, { cwd: dir });
  // Interleaved, so that load from other users of the machine hits every case alike.
  for (let i = 0; i < RUNS; i++) {
    for (const [name, argv] of cases) results.get(name)!.push(await time(argv, { cwd: dir }));
  }
  console.log(`start-up, median of ${RUNS} runs (ms):`);
  for (const [name, xs] of results) console.log(`  ${median(xs).toFixed(1).padStart(7)}  ${name}`);
  if (values.base === undefined) return;
  const at = (name: string) => median(results.get(name)!);
  const sides: [string, string, string, string][] = [
    ["this", cases[cases.length - 6][0], cases[cases.length - 5][0], cases[cases.length - 4][0]],
    ["base", cases[cases.length - 3][0], cases[cases.length - 2][0], cases[cases.length - 1][0]],
  ];
  for (const [side, on, off, allow] of sides) {
    console.log(
      `  network part (${side}): capture on ${(at(on) - at(allow)).toFixed(1)}, ` +
        `off ${(at(off) - at(allow)).toFixed(1)}`,
    );
  }
}

async function throughput(): Promise<void> {
  const chunk = new Uint8Array(1024 * 1024).fill(97);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        try {
          const buf = new Uint8Array(8192);
          let head = "";
          while (!head.includes("\r\n\r\n")) {
            const n = await conn.read(buf);
            if (n === null) return;
            head += new TextDecoder().decode(buf.subarray(0, n));
          }
          const header = `HTTP/1.1 200 OK\r\nContent-Length: ${MIB * 1024 * 1024}\r\n\r\n`;
          await conn.write(new TextEncoder().encode(header));
          for (let i = 0; i < MIB; i++) {
            let off = 0;
            while (off < chunk.length) off += await conn.write(chunk.subarray(off));
          }
        } catch {
          // client went away
        } finally {
          conn.close();
        }
      })();
    }
  })();
  const url = `http://big.test:${listener.addr.port}/big`;
  const speed = async (argv: string[]) => {
    const out = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      cwd: dir,
      env: ENV,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
    const bytesPerSecond = Number(text);
    if (!out.success || !Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) {
      throw new Error(`download failed: ${text} ${new TextDecoder().decode(out.stderr)}`);
    }
    return bytesPerSecond / 1e6;
  };
  const curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}\n"];
  const direct: number[] = [];
  const sandboxed: number[] = [];
  const captured: number[] = [];
  for (let i = 0; i < 3; i++) {
    direct.push(
      await speed([...curl, "--resolve", `big.test:${listener.addr.port}:127.0.0.1`, url]),
    );
    sandboxed.push(
      await speed([
        ...SELF,
        "run",
        "--resolve",
        "big.test=127.0.0.1",
        "--allow",
        "big.test",
        "--",
        ...curl,
        "-p",
        url,
      ]),
    );
    captured.push(
      await speed([
        ...SELF,
        "run",
        "--resolve",
        "big.test=127.0.0.1",
        "--allow",
        `big.test:${listener.addr.port}`,
        "--",
        ...curl,
        "--noproxy",
        "*",
        url,
      ]),
    );
  }
  listener.close();
  await serving.catch(() => {});
  console.log(`download of ${MIB} MiB, median of 3 (MB/s):`);
  console.log(`  ${median(direct).toFixed(0).padStart(7)}  curl on the host, direct`);
  console.log(
    `  ${median(sandboxed).toFixed(0).padStart(7)}  curl in the sandbox via the proxy (CONNECT)`,
  );
  console.log(
    `  ${
      median(captured).toFixed(0).padStart(7)
    }  curl in the sandbox connecting directly (captured, plain tunnel)`,
  );
}

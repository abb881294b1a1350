import { BASH_WASM } from "../execpolicy/bash_parser.ts";
import assert from "node:assert/strict";
import { selfInvocation } from "../self.ts";
import { VERSION } from "../version.ts";
import { runCommand, tempDir } from "./cli_helpers.ts";
import {
  cachedRuntimePath,
  compileArgs,
  detectBinaryTriple,
  findRuntime,
  INCLUDE,
  type RuntimeEnvironment,
  TARGETS,
  V8_FLAGS,
} from "../tools/compile.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

function elfHeader(machine: number): Uint8Array {
  const bytes = new Uint8Array(64);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  new DataView(bytes.buffer).setUint16(18, machine, true);
  return bytes;
}

function machoHeader(cpu: number): Uint8Array {
  const bytes = new Uint8Array(64);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 0xfeedfacf, true);
  view.setUint32(4, cpu, true);
  return bytes;
}

Deno.test("detectBinaryTriple() reads ELF and Mach-O headers, and knows this Deno", async () => {
  assert.equal(detectBinaryTriple(elfHeader(0x3e)), "x86_64-unknown-linux-gnu");
  assert.equal(detectBinaryTriple(elfHeader(0xb7)), "aarch64-unknown-linux-gnu");
  assert.equal(detectBinaryTriple(elfHeader(0x28)), null);
  assert.equal(detectBinaryTriple(machoHeader(0x01000007)), "x86_64-apple-darwin");
  assert.equal(detectBinaryTriple(machoHeader(0x0100000c)), "aarch64-apple-darwin");
  assert.equal(detectBinaryTriple(new TextEncoder().encode("#!/bin/sh\n")), null);
  const self = await Deno.open(Deno.execPath());
  try {
    const header = new Uint8Array(64);
    await self.read(header);
    if (TARGETS.some((t) => t.triple === Deno.build.target)) {
      assert.equal(detectBinaryTriple(header), Deno.build.target);
    }
  } finally {
    self.close();
  }
});

Deno.test("findRuntime() uses DENORT_BIN only for its own target, then the cache, else says why", () => {
  const linux = TARGETS[0];
  const mac = TARGETS[3];
  const cached = new Set([cachedRuntimePath("/cache", "2.9.6", mac.triple)]);
  const env: RuntimeEnvironment = {
    denortBin: "/opt/denort",
    denortBinExists: true,
    denortBinTriple: linux.triple,
    denoDir: "/cache",
    denoVersion: "2.9.6",
    exists: (path) => cached.has(path),
  };
  assert.deepEqual(findRuntime(linux, env), { kind: "denort_bin", path: "/opt/denort" });
  assert.deepEqual(findRuntime(mac, env), {
    kind: "cache",
    path: "/cache/dl/release/v2.9.6/denort-aarch64-apple-darwin.zip",
  });
  const missing = findRuntime(TARGETS[1], env);
  assert.equal(missing.kind, "missing");
  assert.match(
    missing.kind === "missing" ? missing.reason : "",
    /^DENORT_BIN="\/opt\/denort" is for x86_64-unknown-linux-gnu; no cached runtime at \/cache\/dl\/release\/v2\.9\.6\/denort-aarch64-unknown-linux-gnu\.zip$/,
  );
  const gone = findRuntime(linux, { ...env, denortBinExists: false, denoDir: null });
  assert.deepEqual(gone, {
    kind: "missing",
    reason: 'DENORT_BIN="/opt/denort" does not exist; the Deno cache directory is unknown',
  });
  const unset = findRuntime(linux, { ...env, denortBin: undefined });
  assert.match(
    unset.kind === "missing" ? unset.reason : "",
    /^DENORT_BIN is not set; no cached runtime/,
  );
});

Deno.test("compileArgs() builds one deno compile argv per target with every permission baked in", () => {
  assert.deepEqual(TARGETS.map((t) => [t.name, t.triple]), [
    ["linux-x64", "x86_64-unknown-linux-gnu"],
    ["linux-arm64", "aarch64-unknown-linux-gnu"],
    ["macos-x64", "x86_64-apple-darwin"],
    ["macos-arm64", "aarch64-apple-darwin"],
  ]);
  assert.deepEqual(
    compileArgs(TARGETS[2], {
      output: "dist/sandbox-macos-x64",
      entry: "main.ts",
      include: ["a.json"],
    }),
    [
      "compile",
      "--allow-all",
      "--no-prompt",
      "--unstable-net",
      "--quiet",
      "--v8-flags=--max-semi-space-size=2",
      "--target",
      "x86_64-apple-darwin",
      "--include",
      "a.json",
      "--output",
      "dist/sandbox-macos-x64",
      "main.ts",
    ],
  );
  assert.ok(
    !compileArgs(TARGETS[0], { output: "x", entry: "main.ts" }).includes(
      "--unstable-lazy-dynamic-imports",
    ),
    "deno compile would leave the dynamically imported modules out of the binary",
  );
  assert.deepEqual(
    compileArgs(TARGETS[0], { output: "x", entry: "main.ts", v8Flags: [] }).slice(0, 7),
    [
      "compile",
      "--allow-all",
      "--no-prompt",
      "--unstable-net",
      "--quiet",
      "--target",
      "x86_64-unknown-linux-gnu",
    ],
  );
});

Deno.test("V8_FLAGS are the sandbox task's V8 flags in deno.json", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const task: string = config.tasks.sandbox;
  const flags = task.split(/\s+/).filter((word) => word.startsWith("--v8-flags="))
    .flatMap((word) => word.slice("--v8-flags=".length).split(","));
  assert.ok(flags.length > 0, task);
  assert.deepEqual(V8_FLAGS, flags);
});

/** Every non-test TypeScript module the binary is built from. */
async function sourceFiles(): Promise<string[]> {
  const files = [`${ROOT}/main.ts`, `${ROOT}/mod.ts`];
  for (const dir of ["cli", "proxy", "sandbox", "profiles", "execpolicy"]) {
    const walk = async (path: string) => {
      for await (const entry of Deno.readDir(path)) {
        const full = `${path}/${entry.name}`;
        if (entry.isDirectory) await walk(full);
        else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) files.push(full);
      }
    };
    await walk(`${ROOT}/${dir}`).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
  return files;
}

Deno.test("the binary needs no file beside it: only self.ts looks at import.meta, imports are literal", async () => {
  const offenders: string[] = [];
  for (const file of await sourceFiles()) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    const relative = file.slice(ROOT.length + 1);
    if (
      relative !== "self.ts" && /import\.meta\.(url|dirname|filename|resolve)/.test(text)
    ) offenders.push(`${relative}: reads import.meta (a file beside the module?)`);
    // A dynamic import with a computed specifier is not embedded by deno compile.
    for (const match of text.matchAll(/\bimport\(\s*([^)\s])/g)) {
      if (!["'", '"'].includes(match[1])) {
        offenders.push(`${relative}: dynamic import(${match[1]}…)`);
      }
    }
  }
  assert.deepEqual(
    offenders,
    [],
    "add such files to INCLUDE in tools/compile.ts, or make them TS data",
  );
  // The one file read at run time: the shell grammar (execpolicy/bash_parser.ts, via self.ts).
  assert.deepEqual(INCLUDE, [BASH_WASM]);
});

Deno.test("selfInvocation() under deno run restarts main.ts, and the argv really starts the CLI", async () => {
  const self = selfInvocation();
  assert.equal(self.kind, "script");
  assert.deepEqual(self.argv, [
    Deno.execPath(),
    "run",
    "-A",
    "--no-prompt",
    "--quiet",
    `${ROOT}/main.ts`,
  ]);
  assert.deepEqual(self.readPaths, [Deno.execPath(), ROOT]);
  const output = await runCommand([...self.argv, "--version"], { timeoutMs: 30_000 });
  assert.equal(output.stdout, `sandbox ${VERSION}\n`);
});

Deno.test("selfInvocation() as a compiled binary restarts the binary itself, nothing else", () => {
  const self = selfInvocation({ standalone: true, execPath: "/usr/local/bin/sandbox" });
  assert.deepEqual(self, {
    kind: "compiled",
    argv: ["/usr/local/bin/sandbox"],
    readPaths: ["/usr/local/bin/sandbox"],
  });
  const remote = selfInvocation({
    standalone: false,
    mainModule: new URL("https://example.invalid/main.ts"),
  });
  assert.equal(remote.kind, "compiled");
});

Deno.test("deno task compile --if-available skips with the reason and exits 0 when no runtime is at hand", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const { code, stdout, stderr } = await runCommand([
    Deno.execPath(),
    "run",
    "-A",
    `${ROOT}/tools/compile.ts`,
    "--if-available",
    "--target",
    "linux-x64",
    "--out-dir",
    `${dir}/out`,
  ], {
    // An empty Deno cache: no cached runtime, whatever this machine has.
    env: { DENO_DIR: `${dir}/deno_dir` },
    unset: ["DENORT_BIN"],
    timeoutMs: 60_000,
  });
  assert.equal(code, 0, stderr);
  assert.match(
    stdout,
    /^compile: skipped linux-x64: the Deno runtime for x86_64-unknown-linux-gnu \(denort [0-9.]+\) is not at hand: DENORT_BIN is not set; no cached runtime at .*deno_dir\/dl\/release\/v[0-9.]+\/denort-x86_64-unknown-linux-gnu\.zip\./m,
  );
  assert.match(stdout, /^compile: nothing built/m);
  assert.deepEqual([...Deno.readDirSync(`${dir}/out`)], []);
});

Deno.test("deno task compile fails with the reason: bad DENORT_BIN (exit 1), unknown target (exit 2)", async () => {
  const run = (args: string[], env: Record<string, string>) =>
    runCommand([Deno.execPath(), "run", "-A", `${ROOT}/tools/compile.ts`, ...args], {
      env,
      timeoutMs: 60_000,
    });
  const missing = await run(["--target", "linux-x64"], { DENORT_BIN: "/nonexistent/denort" });
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /compile: DENORT_BIN="\/nonexistent\/denort" does not exist: point it at a denort binary or unset it/,
  );
  const unknown = await run(["--target", "windows"], {});
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown target "windows": expected one of "linux-x64"/);
});

// The compiled binary, when one was built here: SANDBOX_BIN, or dist/sandbox-<this target>.
function compiledBinary(): string | null {
  const fromEnv = Deno.env.get("SANDBOX_BIN");
  if (fromEnv) return fromEnv;
  const target = TARGETS.find((t) => t.triple === Deno.build.target);
  if (target === undefined) return null;
  const path = `${ROOT}/dist/sandbox-${target.name}`;
  try {
    return Deno.statSync(path).isFile ? path : null;
  } catch {
    return null;
  }
}

Deno.test({
  name: "the compiled binary starts itself: --version, and run -- true through its own bridge",
  ignore: compiledBinary() === null,
  async fn() {
    const binary = compiledBinary()!;
    const version = await runCommand([binary, "--version"], { timeoutMs: 30_000 });
    assert.equal(version.stdout, `sandbox ${VERSION}\n`);
    const run = await runCommand([binary, "run", "--", "true"], { timeoutMs: 60_000 });
    assert.equal(run.code, 0, run.stderr);
  },
});

/**
 * `deno task compile [--if-available] [--target NAME]… [--out-dir DIR]`:
 * builds the single `sandbox` binary with `deno compile` for linux-x64,
 * linux-arm64, macos-x64 and macos-arm64 into `dist/`.
 *
 * `deno compile` needs the Deno runtime without the tooling (`denort`) for
 * each target. It takes it from `DENORT_BIN` when that is set (deno reads the
 * variable itself, for every target, so this script detects which target the
 * file is for and uses it for that one only), else from its cache
 * (`$DENO_DIR/dl/release/vVERSION/denort-TARGET.zip`), else it downloads it.
 *
 * - `--if-available` (what `.ci/run` uses): builds only the targets whose
 *   runtime is at hand (DENORT_BIN or the cache), never downloads, says why
 *   each other target was skipped, and exits 0.
 * - without it: builds every requested target, letting `deno compile`
 *   download what is missing; any failure exits 1 with the reason.
 *
 * The binary gets the `sandbox` task's V8 flags ({@linkcode V8_FLAGS}, baked
 * in by `deno compile`), not its `--unstable-lazy-dynamic-imports`: that
 * flag only spares `deno run` from reading dynamically imported modules
 * before it starts, which a binary never does (its modules are embedded and
 * loaded when imported), and `deno compile` builds the code-only module
 * graph it embeds with the same setting, so with it the modules this
 * program imports dynamically (the proxy, MITM) would be left out of the
 * binary.
 *
 * Nothing outside the binary is needed at run time: the code reads no file
 * of its own (presets are TS data; `tests/compile_test.ts` checks that only
 * self.ts looks at `import.meta.url`) but the shell grammar's WASM, which
 * {@linkcode INCLUDE} embeds.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { parseArgs } from "node:util";

/** A compile target: our short name and Deno's target triple. */
export interface CompileTarget {
  /** Short name used in the output file name, e.g. `linux-x64`. */
  readonly name: string;
  /** `deno compile --target` value. */
  readonly triple: string;
}

/** The four targets, in build order. */
export const TARGETS: readonly CompileTarget[] = Object.freeze([
  { name: "linux-x64", triple: "x86_64-unknown-linux-gnu" },
  { name: "linux-arm64", triple: "aarch64-unknown-linux-gnu" },
  { name: "macos-x64", triple: "x86_64-apple-darwin" },
  { name: "macos-arm64", triple: "aarch64-apple-darwin" },
]);

/**
 * V8 flags baked into the binary: the same as the `sandbox` task in
 * deno.json (a 2 MiB young generation keeps a proxy with many tunnels
 * small; `tests/compile_test.ts` keeps the two lists equal).
 */
export const V8_FLAGS: readonly string[] = Object.freeze(["--max-semi-space-size=2"]);

/**
 * Files read at run time that `deno compile` must embed (`--include`): only
 * the tree-sitter-bash WASM that execpolicy loads (through `self.ts`) when a
 * script must be split; every module is imported statically.
 */
export const INCLUDE: readonly string[] = Object.freeze([
  "node_modules/tree-sitter-bash/tree-sitter-bash.wasm",
]);

/**
 * Which target a runtime binary is for, from its header: ELF `e_machine`
 * (0x3E x86-64, 0xB7 AArch64) or Mach-O 64 `cputype`; null when unknown.
 */
export function detectBinaryTriple(header: Uint8Array): string | null {
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (
    header.length >= 20 && header[0] === 0x7f && header[1] === 0x45 && header[2] === 0x4c &&
    header[3] === 0x46
  ) {
    const machine = view.getUint16(18, header[5] !== 2); // EI_DATA 1 = little-endian
    if (machine === 0x3e) return "x86_64-unknown-linux-gnu";
    if (machine === 0xb7) return "aarch64-unknown-linux-gnu";
    return null;
  }
  if (header.length >= 8 && view.getUint32(0, true) === 0xfeedfacf) {
    const cpu = view.getUint32(4, true);
    if (cpu === 0x01000007) return "x86_64-apple-darwin";
    if (cpu === 0x0100000c) return "aarch64-apple-darwin";
  }
  return null;
}

/** Where one target's runtime comes from, or why it is not at hand. */
export type RuntimeSource =
  | { readonly kind: "denort_bin"; readonly path: string }
  | { readonly kind: "cache"; readonly path: string }
  | { readonly kind: "missing"; readonly reason: string };

/** What the environment offers, as {@linkcode findRuntime} needs it. */
export interface RuntimeEnvironment {
  /** The value of `DENORT_BIN`, if set. */
  readonly denortBin?: string;
  /** The triple detected from DENORT_BIN's header (null: unknown or unreadable). */
  readonly denortBinTriple?: string | null;
  /** Whether DENORT_BIN names an existing file. */
  readonly denortBinExists?: boolean;
  /** Deno's cache directory (`deno info --json` → denoDir), or null. */
  readonly denoDir: string | null;
  /** The version of the deno that compiles, e.g. `2.9.6`. */
  readonly denoVersion: string;
  /** Whether a path exists (injected for tests). */
  readonly exists: (path: string) => boolean;
}

/** The cached runtime archive of one target, as `deno compile` looks for it. */
export function cachedRuntimePath(denoDir: string, version: string, triple: string): string {
  return `${denoDir}/dl/release/v${version}/denort-${triple}.zip`;
}

/** Finds the runtime for `target`. Pure, given `env`. */
export function findRuntime(target: CompileTarget, env: RuntimeEnvironment): RuntimeSource {
  const reasons: string[] = [];
  if (env.denortBin !== undefined && env.denortBin !== "") {
    if (env.denortBinExists !== true) {
      reasons.push(`DENORT_BIN="${env.denortBin}" does not exist`);
    } else if (env.denortBinTriple === target.triple) {
      return { kind: "denort_bin", path: env.denortBin };
    } else {
      reasons.push(
        `DENORT_BIN="${env.denortBin}" is for ${env.denortBinTriple ?? "an unknown target"}`,
      );
    }
  } else {
    reasons.push("DENORT_BIN is not set");
  }
  if (env.denoDir !== null) {
    const cached = cachedRuntimePath(env.denoDir, env.denoVersion, target.triple);
    if (env.exists(cached)) return { kind: "cache", path: cached };
    reasons.push(`no cached runtime at ${cached}`);
  } else {
    reasons.push("the Deno cache directory is unknown");
  }
  return { kind: "missing", reason: reasons.join("; ") };
}

/** Options for {@linkcode compileArgs}. */
export interface CompileArgsOptions {
  /** The output file. */
  readonly output: string;
  /** The entry module. */
  readonly entry: string;
  /** Files to embed. */
  readonly include?: readonly string[];
  /** V8 flags for the binary (default {@linkcode V8_FLAGS}). */
  readonly v8Flags?: readonly string[];
}

/** The `deno compile` arguments for one target. Pure. */
export function compileArgs(target: CompileTarget, options: CompileArgsOptions): string[] {
  return [
    "compile",
    "--allow-all",
    "--no-prompt",
    // The bridge's DNS stub (transparent capture) listens on UDP.
    "--unstable-net",
    "--quiet",
    ...v8FlagsArg(options.v8Flags ?? V8_FLAGS),
    "--target",
    target.triple,
    ...(options.include ?? []).flatMap((path) => ["--include", path]),
    "--output",
    options.output,
    options.entry,
  ];
}

function v8FlagsArg(flags: readonly string[]): string[] {
  return flags.length === 0 ? [] : [`--v8-flags=${flags.join(",")}`];
}

async function readHeader(path: string): Promise<Uint8Array | null> {
  try {
    using file = await Deno.open(path, { read: true });
    const buffer = new Uint8Array(64);
    const n = await file.read(buffer);
    return n === null ? null : buffer.subarray(0, n);
  } catch {
    return null;
  }
}

async function denoDirOf(deno: string): Promise<string | null> {
  try {
    const output = await new Deno.Command(deno, {
      args: ["info", "--json"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!output.success) return null;
    const info = JSON.parse(new TextDecoder().decode(output.stdout));
    return typeof info.denoDir === "string" ? info.denoDir : null;
  } catch {
    return null;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs the compile task with `args`; returns the exit code. */
export async function compileMain(args: readonly string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        "if-available": { type: "boolean" },
        target: { type: "string", multiple: true },
        "out-dir": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    console.error(`compile: ${errorMessage(error)}`);
    return 2;
  }
  if (values.help) {
    console.log(
      "Usage: deno task compile [--if-available] [--target NAME]... [--out-dir DIR]\n" +
        `Targets: ${TARGETS.map((t) => t.name).join(", ")} (default: all)`,
    );
    return 0;
  }
  const wanted = values.target ?? TARGETS.map((t) => t.name);
  const targets: CompileTarget[] = [];
  for (const name of wanted) {
    const target = TARGETS.find((t) => t.name === name || t.triple === name);
    if (target === undefined) {
      console.error(
        `compile: Unknown target "${name}": expected one of ${
          TARGETS.map((t) => `"${t.name}"`).join(", ")
        }`,
      );
      return 2;
    }
    targets.push(target);
  }
  const ifAvailable = values["if-available"] === true;
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const outDir = values["out-dir"] ?? `${root}/dist`;
  const deno = Deno.execPath();
  const denortBin = Deno.env.get("DENORT_BIN");
  const header = denortBin ? await readHeader(denortBin) : null;
  const env: RuntimeEnvironment = {
    denortBin,
    denortBinExists: denortBin ? exists(denortBin) : false,
    denortBinTriple: header === null ? null : detectBinaryTriple(header),
    denoDir: await denoDirOf(deno),
    denoVersion: Deno.version.deno,
    exists,
  };
  if (denortBin && !env.denortBinExists && !ifAvailable) {
    console.error(
      `compile: DENORT_BIN="${denortBin}" does not exist: point it at a denort binary or unset it`,
    );
    return 1;
  }

  await Deno.mkdir(outDir, { recursive: true });
  let built = 0;
  let failed = 0;
  for (const target of targets) {
    const source = findRuntime(target, env);
    if (source.kind === "missing" && ifAvailable) {
      console.log(
        `compile: skipped ${target.name}: the Deno runtime for ${target.triple} (denort ${env.denoVersion}) is not at hand: ${source.reason}. ` +
          "deno compile would download it, which --if-available never does; set DENORT_BIN or run without --if-available where the network allows",
      );
      continue;
    }
    const output = `${outDir}/sandbox-${target.name}`;
    const childEnv = Deno.env.toObject();
    // deno uses DENORT_BIN for every target: only pass it where it fits.
    if (source.kind !== "denort_bin") delete childEnv.DENORT_BIN;
    const how = source.kind === "missing"
      ? "downloading the runtime if it can"
      : `runtime from ${source.path}`;
    console.log(`compile: building ${target.name} (${target.triple}; ${how}) -> ${output}`);
    const result = await new Deno.Command(deno, {
      args: compileArgs(target, { output, entry: `${root}/main.ts`, include: INCLUDE }),
      cwd: root,
      env: childEnv,
      clearEnv: true,
      stdin: "null",
      stdout: "inherit",
      stderr: "piped",
    }).output();
    if (!result.success) {
      failed++;
      const detail = new TextDecoder().decode(result.stderr).trim().split("\n").slice(-3).join(" ");
      console.error(
        `compile: ${target.name} failed: deno compile exited ${result.code}: ${detail}`,
      );
      continue;
    }
    built++;
    const size = Deno.statSync(output).size;
    console.log(`compile: built ${output} (${(size / 1024 / 1024).toFixed(1)} MiB)`);
  }
  if (failed > 0) return 1;
  if (built === 0) console.log("compile: nothing built (no Deno runtime at hand for any target)");
  return 0;
}

if (import.meta.main) {
  Deno.exit(await compileMain(Deno.args));
}

/**
 * Runs a shell script in the sandbox with transparent capture, in-process
 * through `runSandboxed()` with a counting resolver, either as the test's
 * own user (root) or as `nobody`: then this file is started as a script
 * under `setpriv` (see {@linkcode runCaptureScript}), does the same run in
 * its own process and prints what happened as JSON, so the resolver calls
 * are counted where the proxy really runs.
 *
 * @module
 */
import type { DecisionEvent } from "../proxy/decision_log.ts";
import type { Resolver } from "../policy/types.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { runSandboxed } from "../run/run.ts";
import type { Nobody } from "./nobody_helpers.ts";
import { parseLines } from "./run_helpers.ts";

/** What {@linkcode runCaptureScript} asks for. */
export interface CaptureRun {
  /** `--allow` patterns. */
  readonly allow: readonly string[];
  /** Names the resolver knows (name → address); any other name is an error, and counted too. */
  readonly table: Readonly<Record<string, string>>;
  /** sh script run in a fresh temp dir (the cwd and HOME); its stdout and stderr are kept. */
  readonly script: string;
  /** Files written into that dir first. */
  readonly files?: Readonly<Record<string, string>>;
  /** A config file's TOML text (`--config`), e.g. an execpolicy table. */
  readonly config?: string;
  /** Added to the launcher's environment (e.g. its own `HTTPS_PROXY`, the upstream proxy). */
  readonly env?: Readonly<Record<string, string>>;
}

/** What a {@linkcode CaptureRun} did. */
export interface CaptureOutcome {
  readonly exitCode: number;
  readonly decisions: DecisionEvent[];
  /** The script's `key=value` stdout lines. */
  readonly out: Map<string, string>;
  /** The script's stderr. */
  readonly err: string;
  /** Every name the proxy's resolver was asked for, in order. */
  readonly calls: string[];
}

/** Runs `request` as root in this process, or as nobody in a child when `nobody` is given. */
export async function runCaptureScript(
  request: CaptureRun,
  nobody: Nobody | null = null,
): Promise<CaptureOutcome> {
  if (nobody === null) return await runHere(request);
  const [program, ...args] = nobody.script(decodeURIComponent(new URL(import.meta.url).pathname));
  const child = new Deno.Command(program, {
    args,
    cwd: nobody.dir,
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin", ...nobody.denoEnv },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(request)));
  await writer.close();
  const output = await child.output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  if (!output.success) {
    throw new Error(`The nobody run failed (${output.code}): ${stderr}${stdout}`);
  }
  const parsed = JSON.parse(stdout) as Omit<CaptureOutcome, "out"> & { out: [string, string][] };
  return { ...parsed, out: new Map(parsed.out) };
}

/** A resolver that answers from `table` and records every name it is asked for. */
export function countingResolver(
  table: Readonly<Record<string, string>>,
): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const resolver = (host: string) => {
    calls.push(host);
    const address = table[host];
    return address === undefined
      ? Promise.reject(new Error(`no such test name "${host}"`))
      : Promise.resolve([address]);
  };
  return Object.assign(resolver, { calls });
}

async function runHere(request: CaptureRun): Promise<CaptureOutcome> {
  const resolver = countingResolver(request.table);
  const dir = await Deno.makeTempDir({ prefix: "sandbox_capture_" });
  try {
    for (const [name, text] of Object.entries(request.files ?? {})) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    const env = {
      ...Deno.env.toObject(),
      HOME: dir,
      XDG_CONFIG_HOME: `${dir}/.config`,
      ...request.env,
    };
    const flags = request.config === undefined
      ? { allow: [...request.allow] }
      : { allow: [...request.allow], config: [`${dir}/config.toml`] };
    if (request.config !== undefined) await Deno.writeTextFile(flags.config![0], request.config);
    const config = await loadEffectiveConfig(flags, { cwd: dir, env });
    const result = await runSandboxed(
      config,
      ["sh", "-c", `exec >out.txt 2>err.txt\n${request.script}`],
      { resolver, cwd: dir, env, stderr: () => {} },
    );
    return {
      exitCode: result.exitCode,
      decisions: result.decisions,
      out: parseLines(await Deno.readTextFile(`${dir}/out.txt`)),
      err: await Deno.readTextFile(`${dir}/err.txt`),
      calls: resolver.calls,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  // The nobody side: the request on stdin, the outcome as JSON on stdout.
  const request = JSON.parse(await new Response(Deno.stdin.readable).text()) as CaptureRun;
  const outcome = await runHere(request);
  console.log(JSON.stringify({ ...outcome, out: [...outcome.out] }));
}

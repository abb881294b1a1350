/**
 * The npm registry for the tests that run real npm: read at run time from
 * `npm config get registry` (never written into the repository), or null
 * when npm, bwrap or the registry is not reachable here.
 *
 * @module
 */
import { hasProgram } from "./run_helpers.ts";

/** The registry URL npm uses here, or null (with the reason on stderr) when tests must skip. */
export async function npmRegistry(testName: string): Promise<URL | null> {
  if (!hasProgram("/usr/bin/bwrap")) {
    console.error(`${testName}: skipped: bwrap is not installed`);
    return null;
  }
  try {
    const out = await new Deno.Command("npm", {
      args: ["config", "get", "registry"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const url = new URL(new TextDecoder().decode(out.stdout).trim());
    const ping = await fetch(new URL("-/ping", url), { signal: AbortSignal.timeout(5_000) });
    await ping.body?.cancel();
    if (ping.ok) return url;
  } catch {
    // Said below.
  }
  console.error(`${testName}: skipped: npm or the npm registry is not reachable here`);
  return null;
}

/** Copies a directory tree (for testdata projects). */
export async function copyTree(from: string, to: string): Promise<void> {
  const out = await new Deno.Command("/bin/cp", { args: ["-r", from, to] }).output();
  if (!out.success) throw new Error(`cp -r ${from} ${to} failed`);
}

/**
 * What the bench scripts share: the median they report, and the argv that
 * starts this checkout's `main.ts` (or another's, for an A/B) the way
 * `deno task sandbox` does, its V8 and unstable flags included.
 *
 * @module
 */
import { sandboxTaskFlags } from "../tools/task_flags.ts";

/** This checkout's `main.ts`. */
export const MAIN = decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);

/**
 * The median of `xs` (the mean of the two middle values for an even count).
 *
 * @example
 * ```ts
 * median([3, 1, 2]); // 2
 * ```
 */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * argv that starts `sandbox` from `main` (default {@linkcode MAIN}) under
 * `deno` (default this Deno) with the `sandbox` task's flags.
 *
 * @example
 * ```ts
 * const argv = [...await sandboxArgv(), "run", "--", "true"];
 * ```
 */
export async function sandboxArgv(
  options: { readonly main?: string; readonly deno?: string } = {},
): Promise<string[]> {
  return [
    options.deno ?? Deno.execPath(),
    "run",
    "-A",
    "--no-prompt",
    "--quiet",
    ...await sandboxTaskFlags(),
    options.main ?? MAIN,
  ];
}

/** A `sandbox proxy` started by {@linkcode startSandboxProxy}. */
export interface ProxyProcess {
  readonly pid: number;
  /** Its HTTP port. */
  readonly http: number;
  /** Stops it (SIGTERM) and waits for it. */
  close(): Promise<void>;
}

/**
 * Starts `argv` (a `sandbox proxy …` command line) and resolves once it has
 * printed its ready line (JSON with the listen addresses); its further output
 * is drained.
 */
export async function startSandboxProxy(argv: readonly string[]): Promise<ProxyProcess> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const decoder = new TextDecoder();
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("sandbox proxy exited before its ready line");
    text += decoder.decode(value, { stream: true });
  }
  reader.releaseLock();
  const drain = child.stdout.pipeTo(new WritableStream()).catch(() => {});
  const ready = JSON.parse(text.split("\n")[0]);
  return {
    pid: child.pid,
    http: Number(String(ready.http).split(":").pop()),
    async close() {
      child.kill("SIGTERM");
      await child.status;
      await drain;
    },
  };
}

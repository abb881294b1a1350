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

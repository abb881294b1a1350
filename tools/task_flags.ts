/**
 * The `deno run` flags of the `sandbox` task in deno.json (e.g. its
 * `--v8-flags=…`), so that the benches start `main.ts` the way
 * `deno task sandbox` does and measure what users run.
 *
 * @module
 */

/**
 * Returns the flags between `deno run` and `main.ts` in the `sandbox` task,
 * without `-A` (the benches pass their own permissions).
 *
 * @example
 * ```ts
 * const argv = [Deno.execPath(), "run", "-A", ...await sandboxTaskFlags(), "main.ts", "--version"];
 * ```
 */
export async function sandboxTaskFlags(): Promise<string[]> {
  const path = new URL("../deno.json", import.meta.url);
  const config = JSON.parse(await Deno.readTextFile(path));
  const task: unknown = config?.tasks?.sandbox;
  if (typeof task !== "string") return [];
  // Leading VAR=value assignments (the working-directory hand-over) are not flags.
  const words = task.trim().split(/\s+/).filter((word, i, all) =>
    !(/^[A-Z_]+=/.test(word) && all.slice(0, i).every((w) => /^[A-Z_]+=/.test(w)))
  );
  const main = words.indexOf("main.ts");
  if (words[0] !== "deno" || words[1] !== "run" || main === -1) return [];
  return words.slice(2, main).filter((word) => word !== "-A");
}

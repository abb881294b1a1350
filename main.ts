/**
 * The binary's entry point: `sandbox COMMAND …`. The only place that exits
 * the process.
 *
 * @module
 */
import { taskWorkingDirectory } from "./self.ts";

if (import.meta.main) {
  // `deno task sandbox …` runs in the directory of deno.json; the task hands
  // over the directory the user typed it in, so the command runs there and
  // never in the launcher's own checkout.
  const cwd = taskWorkingDirectory();
  if (cwd !== null) {
    try {
      Deno.chdir(cwd);
    } catch (error) {
      console.error(
        `sandbox: Cannot enter "${cwd}", the directory deno task was run from: ${
          error instanceof Error ? error.message : String(error)
        }`,
      );
      Deno.exit(2);
    }
  }
  // The bridge starts once per `sandbox run` and every run waits for it: load
  // only its own small module graph, not the whole CLI.
  // The same holds for the execpolicy shim, which starts on every call of a shimmed program.
  const { main } = Deno.args[0] === "__bridge"
    ? await import("./cli/bridge_main.ts")
    : Deno.args[0] === "__shim"
    ? await import("./cli/shim.ts")
    : await import("./cli/main.ts");
  Deno.exit(await main(Deno.args));
}

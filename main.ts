/**
 * The binary's entry point: `sandbox COMMAND …`. The only place that exits
 * the process.
 *
 * @module
 */
if (import.meta.main) {
  // The bridge starts once per `sandbox run` and every run waits for it: load
  // only its own small module graph, not the whole CLI.
  const { main } = Deno.args[0] === "__bridge"
    ? await import("./cli/bridge_main.ts")
    : await import("./cli/main.ts");
  Deno.exit(await main(Deno.args));
}

/**
 * The binary's entry point: `sandbox COMMAND …`. The only place that exits
 * the process.
 *
 * @module
 */
if (import.meta.main) {
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

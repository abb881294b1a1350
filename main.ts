/**
 * The binary's entry point: `sandbox COMMAND …`. The only place that exits
 * the process.
 *
 * @module
 */
import { main } from "./cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

/**
 * The lean entry `main.ts` uses for `sandbox __bridge`: the same error
 * reporting as the dispatcher, without loading the other commands.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { bridgeCommand } from "./bridge.ts";

/**
 * Runs `sandbox __bridge …` (`args` includes `__bridge`) and returns the exit code.
 *
 * @example
 * ```ts
 * const code = await main(["__bridge", "--target", "/tmp/x/proxy.sock", "--listen", "127.0.0.1:3128"]);
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  try {
    return await bridgeCommand(args.slice(1));
  } catch (error) {
    const message = errorMessage(error);
    await Deno.stderr.write(new TextEncoder().encode(`sandbox: ${message}\n`));
    return error instanceof Error && error.name === "UsageError" ? 2 : 1;
  }
}

/**
 * `sandbox learn`: not built yet.
 *
 * @module
 */
import { SandboxError } from "./errors.ts";

/** Help text for `sandbox help learn`. */
export const LEARN_HELP = `Usage: sandbox learn [OPTIONS]`;

/** Runs `sandbox learn`; returns the exit code. */
export function learnCommand(_args: string[]): Promise<number> {
  return Promise.reject(new SandboxError("io", 'The command "learn" is not built yet'));
}

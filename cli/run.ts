/**
 * `sandbox run`: not built yet.
 *
 * @module
 */
import { SandboxError } from "./errors.ts";

/** Help text for `sandbox help run`. */
export const RUN_HELP = `Usage: sandbox run [OPTIONS]`;

/** Runs `sandbox run`; returns the exit code. */
export function runCommand(_args: string[]): Promise<number> {
  return Promise.reject(new SandboxError("io", 'The command "run" is not built yet'));
}

/**
 * `sandbox init`: not built yet.
 *
 * @module
 */
import { SandboxError } from "./errors.ts";

/** Help text for `sandbox help init`. */
export const INIT_HELP = `Usage: sandbox init [OPTIONS]`;

/** Runs `sandbox init`; returns the exit code. */
export function initCommand(_args: string[]): Promise<number> {
  return Promise.reject(new SandboxError("io", 'The command "init" is not built yet'));
}

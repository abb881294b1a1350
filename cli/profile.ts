/**
 * `sandbox profile show|validate`: not built yet.
 *
 * @module
 */
import { SandboxError } from "./errors.ts";

/** Help text for `sandbox help profile`. */
export const PROFILE_HELP = `Usage: sandbox profile show [OPTIONS]
       sandbox profile validate FILE...`;

/** Help texts of the subcommands, by name. */
export const PROFILE_SUBCOMMAND_HELP: Readonly<Record<string, string>> = {};

/** Runs `sandbox profile`; returns the exit code. */
export function profileCommand(_args: string[]): Promise<number> {
  return Promise.reject(new SandboxError("io", 'The command "profile" is not built yet'));
}

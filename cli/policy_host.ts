/**
 * `sandbox policy host`: not built yet.
 *
 * @module
 */
import { SandboxError } from "./errors.ts";

/** Help text for `sandbox help policy host`. */
export const POLICY_HOST_HELP = `Usage: sandbox policy host [OPTIONS]`;

/** Runs `sandbox policy host`; returns the exit code. */
export function policyHostCommand(_args: string[]): Promise<number> {
  return Promise.reject(new SandboxError("io", 'The command "policy host" is not built yet'));
}

/**
 * `sandbox policy check`: not built yet.
 *
 * @module
 */
import { SandboxError } from "./errors.ts";

/** Help text for `sandbox help policy check`. */
export const POLICY_CHECK_HELP = `Usage: sandbox policy check [OPTIONS]`;

/** Runs `sandbox policy check`; returns the exit code. */
export function policyCheckCommand(_args: string[]): Promise<number> {
  return Promise.reject(new SandboxError("io", 'The command "policy check" is not built yet'));
}

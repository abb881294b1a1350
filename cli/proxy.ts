/**
 * `sandbox proxy`: not built yet.
 *
 * @module
 */
import { SandboxError } from "./errors.ts";

/** Help text for `sandbox help proxy`. */
export const PROXY_HELP = `Usage: sandbox proxy [OPTIONS]`;

/** Runs `sandbox proxy`; returns the exit code. */
export function proxyCommand(_args: string[]): Promise<number> {
  return Promise.reject(new SandboxError("io", 'The command "proxy" is not built yet'));
}

/**
 * `sandbox policy host|check`: how the network policy decides a host, and how
 * execpolicy decides a command, without connecting or running anything.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { POLICY_CHECK_HELP, policyCheckCommand } from "./policy_check.ts";
import { POLICY_HOST_HELP, policyHostCommand } from "./policy_host.ts";

/** Help text for `sandbox help policy`. */
export const POLICY_HELP = `Usage: sandbox policy host [OPTIONS] HOST[:PORT]
       sandbox policy check [OPTIONS] -- CMD [ARGS...]

Subcommands:
  host    How the network policy decides HOST, without connecting
  check   How execpolicy decides CMD, without running it

Run "sandbox help policy host" or "sandbox help policy check" for their options.`;

/** Help texts of the subcommands, by name. */
export const POLICY_SUBCOMMAND_HELP: Readonly<Record<string, string>> = {
  host: POLICY_HOST_HELP,
  check: POLICY_CHECK_HELP,
};

/** Runs `sandbox policy`; returns the exit code. */
export function policyCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "host":
      return policyHostCommand(rest);
    case "check":
      return policyCheckCommand(rest);
    case undefined:
      throw new UsageError('Missing subcommand for "sandbox policy": expected "host" or "check"', {
        command: "policy",
      });
    default:
      throw new UsageError(
        `Unknown subcommand "policy ${sub}": expected "host" or "check"`,
        { command: "policy" },
      );
  }
}

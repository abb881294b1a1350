/**
 * The sandbox's loopback is its own. Inside `sandbox run`, `localhost`,
 * `127.0.0.0/8` and `::1` are the sandbox's network namespace (servers the
 * command starts itself); the host's loopback is reached only under one
 * documented alias, {@linkcode HOST_LOOPBACK_ALIAS}, and only through a rule
 * that allows that alias (the proxy connects to the host's `127.0.0.1:PORT`).
 * A request through the proxy for a loopback literal or name is refused even
 * when a rule allows it, so that allowing `127.0.0.1` never reaches the
 * host's services by accident.
 *
 * @module
 */
import { classifyAddress, parseIpLiteral } from "./address.ts";

/** The name under which a sandboxed command reaches the host's loopback (with a rule allowing it). */
export const HOST_LOOPBACK_ALIAS = "host.sandbox.internal";

/** The host address the alias stands for. */
export const HOST_LOOPBACK_ADDRESS = "127.0.0.1";

const LOOPBACK_LABELS: ReadonlySet<string> = new Set([
  "loopback",
  "this network",
  "unspecified",
]);

/**
 * Why `host` (normalized, no port) is the host's loopback when asked of the
 * proxy: `localhost`, a `*.localhost` name, a loopback or unspecified
 * address (`0.0.0.0` reaches loopback on Linux), also inside an IPv6 address
 * that embeds one; null for anything else.
 *
 * @example
 * ```ts
 * hostLoopbackReason("127.0.0.1"); // "127.0.0.1 is in 127.0.0.0/8 (loopback)"
 * hostLoopbackReason("example.com"); // null
 * ```
 */
export function hostLoopbackReason(host: string): string | null {
  if (host === "localhost" || host.endsWith(".localhost")) return `"${host}" is a loopback name`;
  const ip = parseIpLiteral(host);
  if (ip === null) return null;
  const cls = classifyAddress(ip);
  if (cls.public || !LOOPBACK_LABELS.has(cls.range.label)) return null;
  return `${ip.canonical} is in ${cls.range.cidr} (${cls.range.label})`;
}

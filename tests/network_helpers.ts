/**
 * A network configuration for policy tests: every setting at the value a
 * config file without a `[network]` table gives, and whatever the test
 * overrides (usually `domains`).
 *
 * @module
 */
import type { DomainRule, NetworkConfig } from "../policy/types.ts";

/**
 * The network configuration with `overrides` on top of the defaults (no rules).
 *
 * @example
 * ```ts
 * const network = networkConfig({ domains: domainRules("allow", ["example.com"]) });
 * ```
 */
export function networkConfig(overrides: Partial<NetworkConfig> = {}): NetworkConfig {
  return {
    enabled: true,
    mode: "full",
    allowLocalBinding: false,
    mitm: false,
    mitmCa: null,
    dangerouslyAllowAllUnixSockets: false,
    dangerouslyAllowNonLoopbackProxy: false,
    proxyUrl: null,
    socksUrl: null,
    enableSocks5: true,
    domains: [],
    unixSockets: [],
    managedAllowedDomainsOnly: false,
    ask: false,
    ...overrides,
  };
}

/** Domain rules with one action and source. */
export function domainRules(
  action: "allow" | "deny",
  patterns: readonly string[],
  source = "test",
): DomainRule[] {
  return patterns.map((pattern) => ({ pattern, action, source }));
}

/**
 * Command -> destinations: a run decided by rules with `hosts = [...]` gets
 * a network config whose allow rules are the intersection of those hosts
 * with the profile's allow rules. Every deny rule of the profile stays, so
 * deny still wins.
 *
 * The intersection of two patterns is the narrower one when one covers the
 * other (checked on sample hosts of the narrower: its apex, one and two
 * labels below, `*` inside a label read as a letter); patterns that only
 * overlap give nothing, which is the strict side. Ports meet as well: a
 * rule with a port keeps it (`tls://` with it), two different ports give
 * nothing.
 *
 * @module
 */
import type { DomainRule, NetworkConfig } from "../policy/types.ts";
import {
  compileDomainPattern,
  type DomainPattern,
  matchesDomainPattern,
} from "../policy/pattern.ts";

function samples(pattern: DomainPattern): string[] | null {
  switch (pattern.kind) {
    case "any":
      return null;
    case "address":
      return [pattern.address.canonical];
    case "name": {
      const base = pattern.labels.map((l) => l.replaceAll("*", "x")).join(".");
      if (pattern.scope === "exact") return [base];
      const below = [`x.${base}`, `x.y.${base}`];
      return pattern.scope === "subdomains" ? below : [base, ...below];
    }
  }
}

/** Whether every host of `inner` is a host of `outer` (on sample hosts). */
function covers(outer: DomainPattern, inner: DomainPattern): boolean {
  if (outer.kind === "any") return true;
  const list = samples(inner);
  return list !== null && list.every((host) => matchesDomainPattern(outer, host));
}

/**
 * The network config for a run whose execpolicy verdict binds its network
 * to `hosts`: the profile's deny rules, and as allow rules each bound host
 * the profile allows (or the profile's narrower rule inside it).
 *
 * @example
 * ```ts
 * bindNetwork(config.network, ["registry.npmjs.org"]).domains; // deny rules + allow registry.npmjs.org
 * ```
 */
export function bindNetwork(network: NetworkConfig, hosts: readonly string[]): NetworkConfig {
  const denies = network.domains.filter((r) => r.action === "deny");
  const allows = network.domains.filter((r) => r.action === "allow");
  const bound: DomainRule[] = [];
  const add = (rule: DomainRule) => {
    if (!bound.some((r) => r.pattern === rule.pattern)) bound.push(rule);
  };
  for (const host of hosts) {
    const wanted = compileDomainPattern(host, "allow");
    for (const rule of allows) {
      const have = compileDomainPattern(rule.pattern, "allow");
      // Ports meet too: `registry.example:8443` bound to `registry.example` stays on 8443.
      const port = meetPorts(have.port ?? null, wanted.port ?? null);
      if (port === undefined) continue;
      const tls = port !== null && (have.tls === true || wanted.tls === true);
      const narrower = covers(have, wanted) ? wanted : covers(wanted, have) ? have : null;
      if (narrower === null) continue;
      const pattern = withPort(narrower, port, tls);
      if (pattern === rule.pattern) add(rule);
      else if (narrower === have) add({ pattern, action: "allow", source: rule.source });
      else add({ pattern, action: "allow", source: `execpolicy-hosts (within ${rule.source})` });
    }
  }
  return { ...network, domains: [...denies, ...bound] };
}

/** The ports two rules both admit: null is every port; undefined: none. */
function meetPorts(a: number | null, b: number | null): number | null | undefined {
  if (a === null) return b;
  if (b === null) return a;
  return a === b ? a : undefined;
}

/** `pattern`'s host part written with `port` (and the `tls://` marker), as rule text. */
function withPort(pattern: DomainPattern, port: number | null, tls: boolean): string {
  const host = pattern.kind === "any"
    ? "*"
    : pattern.kind === "address"
    ? (pattern.address.family === 6 ? `[${pattern.address.canonical}]` : pattern.address.canonical)
    : (pattern.scope === "exact" ? "" : pattern.scope === "subdomains" ? "*." : "**.") +
      pattern.labels.join(".");
  if (port === null) return pattern.port == null && pattern.tls !== true ? pattern.text : host;
  return `${tls ? "tls://" : ""}${host}:${port}`;
}

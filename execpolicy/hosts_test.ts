import assert from "node:assert/strict";
import { bindNetwork } from "./hosts.ts";
import type { DomainRule, NetworkConfig } from "../policy/types.ts";
import { networkConfig } from "../tests/network_helpers.ts";

function network(domains: [string, "allow" | "deny"][]): NetworkConfig {
  return networkConfig({
    enableSocks5: false,
    domains: domains.map(([pattern, action]): DomainRule => ({
      pattern,
      action,
      source: "user:x",
    })),
  });
}

function rules(config: NetworkConfig): string[] {
  return config.domains.map((r) => `${r.action} ${r.pattern}`);
}

Deno.test("bindNetwork() intersects bound hosts with the profile's allow rules and keeps every deny", () => {
  const profile = network([
    ["*.registry.example", "allow"],
    ["code.example", "allow"],
    ["bad.registry.example", "deny"],
  ]);
  assert.deepEqual(rules(bindNetwork(profile, ["npm.registry.example"])), [
    "deny bad.registry.example",
    "allow npm.registry.example",
  ]);
  // A bound host the profile does not allow is not allowed.
  assert.deepEqual(rules(bindNetwork(profile, ["other.example"])), ["deny bad.registry.example"]);
  // A wider binding keeps the profile's narrower rule.
  assert.deepEqual(rules(bindNetwork(profile, ["**.example"])), [
    "deny bad.registry.example",
    "allow *.registry.example",
    "allow code.example",
  ]);
  // "*" in the profile allows any bound host.
  assert.deepEqual(rules(bindNetwork(network([["*", "allow"]]), ["a.example", "b.example"])), [
    "allow a.example",
    "allow b.example",
  ]);
});

Deno.test("bindNetwork() keeps a rule's port and tls:// marking: binding never widens a port", () => {
  const profile = network([
    ["registry.example:8443", "allow"],
    ["tls://mail.example:993", "allow"],
    ["*.cdn.example", "allow"],
  ]);
  assert.deepEqual(rules(bindNetwork(profile, ["registry.example"])), [
    "allow registry.example:8443",
  ]);
  assert.deepEqual(rules(bindNetwork(profile, ["mail.example"])), [
    "allow tls://mail.example:993",
  ]);
  assert.deepEqual(rules(bindNetwork(profile, ["a.cdn.example:443"])), [
    "allow a.cdn.example:443",
  ]);
  // Other ports meet nothing; the port-less wildcard rule narrows to the bound port.
  assert.deepEqual(rules(bindNetwork(profile, ["**.example:22"])), ["allow *.cdn.example:22"]);
  assert.deepEqual(rules(bindNetwork(profile, ["registry.example:8443"])), [
    "allow registry.example:8443",
  ]);
  assert.deepEqual(rules(bindNetwork(profile, ["registry.example:22"])), []);
  assert.deepEqual(
    rules(bindNetwork(network([["registry.example", "allow"]]), ["**.example:22"])),
    [
      "allow registry.example:22",
    ],
  );
});

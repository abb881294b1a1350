/**
 * Every vector of `testdata/conformance/*.json`, run through the library and
 * through `sandbox policy host --json` as a real subprocess. The tests
 * iterate the JSON; expectations are never copied by hand.
 *
 * No test here sends a DNS query: names are answered by `--resolve` (or an
 * injected resolver), and the only name left to the system resolver is
 * `localhost`, which `/etc/hosts` answers.
 */
import assert from "node:assert/strict";
import { isNonPublicAddress, parseIpLiteral } from "../policy/address.ts";
import { normalizeHost } from "../policy/host.ts";
import {
  compileDomainPattern,
  matchesDomainPattern,
  validateDomainPattern,
} from "../policy/pattern.ts";
import { compileNetworkPolicy, decideHost, type HostDecision } from "../policy/policy.ts";
import { DENY_REASON_NAMES, DENY_REASONS } from "../policy/reasons.ts";
import { createResolver, type Resolver } from "../proxy/resolver.ts";
import type { NetworkConfig } from "../profiles/types.ts";
import { sandboxCli, tempDir } from "./cli_helpers.ts";
import { domainRules, networkConfig as defaultNetwork } from "./network_helpers.ts";

const ROOT = new URL("../", import.meta.url);

function vectors<T>(name: string): T {
  return JSON.parse(Deno.readTextFileSync(new URL(`testdata/conformance/${name}`, ROOT)));
}

interface NormalizationVectors {
  cases: { input: string; output: string }[];
}
interface NonPublicVectors {
  ipv4_ranges: string[];
  ipv6_ranges: string[];
  extra_ipv6_ranges_to_block: string[];
  non_public: string[];
  public: string[];
  ipv4_literal_spellings_that_mean_127_0_0_1: string[];
}
interface PatternVectors {
  cases: { pattern: string; matches: string[]; does_not_match: string[]; allow_only?: boolean }[];
  rejected_in_deny_rules: string[];
  rejected_everywhere: string[];
}
interface DecisionVectors {
  cases: {
    allow: string[];
    deny: string[];
    host: string;
    resolves_to?: string[];
    result: "allowed" | "denied" | "not_allowed" | "not_allowed_local";
    dns_lookups?: number;
  }[];
}
interface BlockedVectors {
  reasons: { reason: string; x_proxy_error: string; message: string }[];
}

const NORMALIZATION = vectors<NormalizationVectors>("host_normalization.json");
const NON_PUBLIC = vectors<NonPublicVectors>("non_public_ips.json");
const PATTERNS = vectors<PatternVectors>("domain_patterns.json");
const DECISIONS = vectors<DecisionVectors>("host_decisions.json");
const BLOCKED = vectors<BlockedVectors>("blocked_responses.json");

function networkConfig(
  allow: readonly string[],
  deny: readonly string[],
  allowLocalBinding = false,
): NetworkConfig {
  return defaultNetwork({
    allowLocalBinding,
    domains: [
      ...domainRules("allow", allow, "conformance"),
      ...domainRules("deny", deny, "conformance"),
    ],
  });
}

/**
 * Answers from `table`, `localhost` from the system (/etc/hosts), and
 * refuses every other name so no test can leak a DNS query. Counts calls.
 */
function testResolver(table: Record<string, readonly string[]>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const system = createResolver();
  const resolve = (host: string): Promise<string[]> => {
    calls.push(host);
    const answer = table[host];
    if (answer !== undefined) return Promise.resolve([...answer]);
    if (host === "localhost") return system(host);
    return Promise.reject(new Error(`The test refuses to look up "${host}"`));
  };
  return Object.assign(resolve, { calls });
}

/** Every address in a CIDR's first and last position. */
function rangeEnds(cidr: string): [string, string] {
  const [base, prefixText] = cidr.split("/");
  const ip = parseIpLiteral(base);
  assert.ok(ip !== null, `vector range "${cidr}" has a bad base`);
  const prefix = Number(prefixText);
  const last = ip.bytes.slice();
  for (let bit = prefix; bit < last.length * 8; bit++) last[bit >> 3] |= 0x80 >> (bit & 7);
  const text = ip.family === 4
    ? Array.from(last).join(".")
    : Array.from({ length: 8 }, (_, i) => ((last[2 * i] << 8) | last[2 * i + 1]).toString(16))
      .join(":");
  return [ip.canonical, text];
}

/** An address of `cidr` (an embedding prefix) that carries `ipv4` right after the prefix. */
function embed(cidr: string, ipv4: string): string {
  const [base, prefixText] = cidr.split("/");
  const ip = parseIpLiteral(base)!;
  const bytes = ip.bytes.slice();
  bytes.set(parseIpLiteral(ipv4)!.bytes, Number(prefixText) / 8);
  return Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] << 8) | bytes[2 * i + 1]).toString(16))
    .join(":");
}

/** `"64:ff9b::/96 (judge the embedded IPv4)"` -> `{ cidr, embeds: true }`. */
function extraRange(text: string): { cidr: string; embeds: boolean } {
  const cidr = text.split(" ")[0];
  return { cidr, embeds: /embedded IPv4/.test(text) };
}

/** Every host string any vector mentions. */
function allVectorHosts(): string[] {
  return [
    ...NORMALIZATION.cases.flatMap((c) => [c.input, c.output]),
    ...NON_PUBLIC.non_public,
    ...NON_PUBLIC.public,
    ...NON_PUBLIC.ipv4_literal_spellings_that_mean_127_0_0_1,
    ...PATTERNS.cases.flatMap((c) => [...c.matches, ...c.does_not_match]),
    ...DECISIONS.cases.map((c) => c.host),
  ];
}

function expectedReason(
  result: DecisionVectors["cases"][number]["result"],
): HostDecision["reason"] {
  return result === "allowed" ? "allowed" : result;
}

// ---------------------------------------------------------------------------
// Library

Deno.test("conformance: host_normalization vectors through normalizeHost()", () => {
  for (const { input, output } of NORMALIZATION.cases) {
    assert.equal(normalizeHost(input), output, JSON.stringify(input));
  }
});

Deno.test("conformance: normalizeHost() is idempotent on every vector host", () => {
  const hosts = allVectorHosts();
  assert.ok(hosts.length > 40);
  for (const host of hosts) {
    const once = normalizeHost(host);
    assert.equal(normalizeHost(once), once, JSON.stringify(host));
    // Decorating a normalized host must not change what it normalizes to.
    if (once !== "" && !once.includes(":")) {
      assert.equal(normalizeHost(` ${once.toUpperCase()}.:8443 `), once, JSON.stringify(host));
    }
  }
});

Deno.test("conformance: non_public_ips vectors through isNonPublicAddress()", () => {
  for (const host of NON_PUBLIC.non_public) assert.equal(isNonPublicAddress(host), true, host);
  for (const host of NON_PUBLIC.public) assert.equal(isNonPublicAddress(host), false, host);
  for (const spelling of NON_PUBLIC.ipv4_literal_spellings_that_mean_127_0_0_1) {
    assert.equal(parseIpLiteral(spelling)?.canonical, "127.0.0.1", spelling);
    assert.equal(isNonPublicAddress(spelling), true, spelling);
  }
});

Deno.test("conformance: both ends of every non-public range are non-public", () => {
  for (const cidr of [...NON_PUBLIC.ipv4_ranges, ...NON_PUBLIC.ipv6_ranges]) {
    for (const address of rangeEnds(cidr)) {
      assert.equal(isNonPublicAddress(address), true, `${address} in ${cidr}`);
    }
  }
});

Deno.test("conformance: extra IPv6 ranges are blocked, embedding ranges by their IPv4", () => {
  for (const text of NON_PUBLIC.extra_ipv6_ranges_to_block) {
    const { cidr, embeds } = extraRange(text);
    if (!embeds) {
      for (const address of rangeEnds(cidr)) {
        assert.equal(isNonPublicAddress(address), true, `${address} in ${cidr}`);
      }
      continue;
    }
    for (const inner of [...NON_PUBLIC.non_public, ...NON_PUBLIC.public]) {
      const v4 = parseIpLiteral(inner);
      if (v4?.family !== 4) continue;
      const address = embed(cidr, v4.canonical);
      assert.equal(isNonPublicAddress(address), isNonPublicAddress(v4), `${address} (${inner})`);
    }
  }
});

Deno.test("conformance: domain_patterns vectors through compileDomainPattern()", () => {
  for (const c of PATTERNS.cases) {
    const actions: ("allow" | "deny")[] = c.allow_only ? ["allow"] : ["allow", "deny"];
    if (c.allow_only) assert.notEqual(validateDomainPattern(c.pattern, "deny"), null, c.pattern);
    for (const action of actions) {
      const pattern = compileDomainPattern(c.pattern, action);
      for (const host of c.matches) {
        assert.equal(
          matchesDomainPattern(pattern, normalizeHost(host)),
          true,
          `${c.pattern} ~ ${host}`,
        );
      }
      for (const host of c.does_not_match) {
        assert.equal(
          matchesDomainPattern(pattern, normalizeHost(host)),
          false,
          `${c.pattern} !~ ${host}`,
        );
      }
    }
  }
  for (const pattern of PATTERNS.rejected_in_deny_rules) {
    assert.notEqual(validateDomainPattern(pattern, "deny"), null, pattern);
  }
  for (const pattern of PATTERNS.rejected_everywhere) {
    assert.notEqual(validateDomainPattern(pattern, "allow"), null, pattern);
    assert.notEqual(validateDomainPattern(pattern, "deny"), null, pattern);
  }
});

Deno.test("conformance: domain_patterns vectors as whole decisions through decideHost()", async () => {
  for (const c of PATTERNS.cases) {
    const names = [...c.matches, ...c.does_not_match].map(normalizeHost)
      .filter((host) => parseIpLiteral(host) === null);
    const table = Object.fromEntries(names.map((host) => [host, ["8.8.8.8"]]));
    const allow = compileNetworkPolicy(networkConfig([c.pattern], [], true));
    const deny = c.allow_only
      ? null
      : compileNetworkPolicy(networkConfig(["*"], [c.pattern], true));
    for (
      const [host, matches] of [
        ...c.matches.map((h) => [h, true] as const),
        ...c.does_not_match.map((h) => [h, false] as const),
      ]
    ) {
      const viaAllow = await decideHost(allow, host, { resolver: testResolver(table) });
      assert.equal(
        viaAllow.reason,
        matches ? "allowed" : "not_allowed",
        `allow ${c.pattern}: ${host}`,
      );
      if (matches) assert.equal(viaAllow.rule, c.pattern);
      if (deny === null) continue;
      const viaDeny = await decideHost(deny, host, { resolver: testResolver(table) });
      assert.equal(viaDeny.reason, matches ? "denied" : "allowed", `deny ${c.pattern}: ${host}`);
    }
  }
});

Deno.test("conformance: host_decisions vectors through decideHost(), counting lookups", async () => {
  for (const c of DECISIONS.cases) {
    const name = normalizeHost(c.host);
    const resolver = testResolver(c.resolves_to === undefined ? {} : { [name]: c.resolves_to });
    const policy = compileNetworkPolicy(networkConfig(c.allow, c.deny));
    const decision = await decideHost(policy, c.host, { resolver });
    const label = JSON.stringify(c);
    assert.equal(decision.reason, expectedReason(c.result), label);
    assert.equal(decision.decision, c.result === "allowed" ? "allow" : "deny", label);
    if (c.dns_lookups !== undefined) assert.equal(resolver.calls.length, c.dns_lookups, label);
    // Refusals before the allow match, and every IP literal, need no lookup at all.
    if (c.result === "denied" || c.result === "not_allowed" || parseIpLiteral(name) !== null) {
      assert.deepEqual(resolver.calls, [], label);
    }
    assert.ok(resolver.calls.length <= 1, label);
    if (decision.decision === "allow" && c.resolves_to !== undefined) {
      assert.deepEqual(decision.addresses, c.resolves_to.map((a) => parseIpLiteral(a)!.canonical));
    }
    if (c.result === "denied") assert.ok(c.deny.includes(decision.rule ?? ""), label);
  }
});

Deno.test("conformance: blocked_responses reasons open the deny-reason table with the reference values", () => {
  // The reference's reasons come first and keep its values; the names after them split its
  // catch-all and keep its catch-all header.
  const reference = BLOCKED.reasons.map((r) => r.reason);
  assert.deepEqual(DENY_REASON_NAMES.slice(0, reference.length), reference);
  const catchAll = BLOCKED.reasons.find((r) => r.reason === "other")!.x_proxy_error;
  // Request rules and secrets are refusals of their own kind: a client (and `block_watch`) can
  // tell them apart by header. Every other later reason keeps the catch-all header.
  const ownHeader: Record<string, string> = {
    mitm_hook_denied: "blocked-by-mitm-hook",
    secret_wrong_host: "blocked-by-secret-policy",
  };
  for (const reason of DENY_REASON_NAMES.slice(reference.length)) {
    assert.equal(DENY_REASONS[reason].xProxyError, ownHeader[reason] ?? catchAll, reason);
  }
  for (const { reason, x_proxy_error, message } of BLOCKED.reasons) {
    assert.deepEqual(DENY_REASONS[reason as keyof typeof DENY_REASONS], {
      xProxyError: x_proxy_error,
      message,
    });
  }
});

// ---------------------------------------------------------------------------
// CLI: `sandbox policy host --json` as a subprocess

interface CliResult {
  readonly code: number;
  readonly json: Record<string, unknown> | null;
  readonly stderr: string;
}

interface CliCase {
  readonly label: string;
  readonly args: string[];
  readonly check: (result: CliResult) => void;
}

const CLI_TIMEOUT_MS = 30_000;
const CLI_CONCURRENCY = 4;

async function runCli(
  args: readonly string[],
  env: Record<string, string>,
  cwd: string,
): Promise<CliResult> {
  const output = await sandboxCli(["policy", "host", ...args], {
    env,
    clearEnv: true,
    cwd,
    timeoutMs: CLI_TIMEOUT_MS,
  });
  const stdout = output.stdout.trim();
  let json: Record<string, unknown> | null = null;
  if (stdout !== "") json = JSON.parse(stdout);
  return { code: output.code, json, stderr: output.stderr };
}

/** Runs every case with an isolated, empty config home; a few at a time. */
async function runCliCases(cases: readonly CliCase[]): Promise<void> {
  await using tmp = await tempDir("sandbox_conformance_");
  const home = tmp.path;
  await Deno.mkdir(`${home}/xdg`);
  await Deno.writeTextFile(`${home}/managed.toml`, "");
  const env: Record<string, string> = {};
  for (
    const key of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "NPM_CONFIG_CACHE", "TMPDIR"]
  ) {
    const value = Deno.env.get(key);
    if (value !== undefined) env[key] = value;
  }
  env.XDG_CONFIG_HOME = `${home}/xdg`;
  env.SANDBOX_MANAGED_CONFIG = `${home}/managed.toml`;
  env.NO_COLOR = "1";
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++];
      const result = await runCli(c.args, env, home);
      try {
        c.check(result);
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        failures.push(
          `${c.label}\n  args: ${JSON.stringify(c.args)}\n  exit ${result.code}, ` +
            `stdout ${JSON.stringify(result.json)}, stderr ${
              JSON.stringify(result.stderr)
            }\n  ${why}`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: CLI_CONCURRENCY }, worker));
  assert.deepEqual(failures, [], failures.join("\n\n"));
}

/** `--resolve NAME=8.8.8.8` for every name among `hosts`, so nothing reaches DNS. */
function resolveNames(hosts: readonly string[], address = "8.8.8.8"): string[] {
  return hosts.map(normalizeHost).filter((host) => host !== "" && parseIpLiteral(host) === null)
    .flatMap((host) => ["--resolve", `${host}=${address}`]);
}

/** The JSON printed must carry CLI.md's four fields first, and a reason from the table. */
function checkShape(result: CliResult, exit: number, reason: string, host?: string): void {
  assert.equal(result.code, exit, "exit code");
  assert.ok(result.json !== null, "no JSON on stdout");
  assert.deepEqual(Object.keys(result.json).slice(0, 4), ["host", "decision", "reason", "rule"]);
  assert.equal(result.json.decision, exit === 0 ? "allow" : "deny");
  assert.equal(result.json.reason, reason);
  assert.ok(
    result.json.reason === "allowed" || DENY_REASON_NAMES.includes(result.json.reason as never),
  );
  if (host !== undefined) assert.equal(result.json.host, host);
}

function exitFor(reason: string): number {
  return reason === "allowed" ? 0 : 1;
}

Deno.test("conformance CLI: host_decisions vectors through `sandbox policy host --json`", async () => {
  const cases: CliCase[] = DECISIONS.cases.map((c) => {
    const name = normalizeHost(c.host);
    const args = [
      "--json",
      ...c.allow.flatMap((p) => ["--allow", p]),
      ...c.deny.flatMap((p) => ["--deny", p]),
      ...(c.resolves_to === undefined ? [] : ["--resolve", `${name}=${c.resolves_to.join(",")}`]),
      c.host,
    ];
    const reason = expectedReason(c.result);
    return {
      label: `host_decisions ${JSON.stringify(c)}`,
      args,
      check: (r) => {
        checkShape(r, exitFor(reason), reason, name);
        if (c.result === "denied") assert.ok(c.deny.includes(String(r.json!.rule)));
      },
    };
  });
  await runCliCases(cases);
});

Deno.test("conformance CLI: host_normalization vectors show up as the JSON host", async () => {
  const cases: CliCase[] = NORMALIZATION.cases.map(({ input, output }) => ({
    label: `host_normalization ${JSON.stringify(input)}`,
    args: ["--json", "--allow", "*", ...resolveNames([input]), input],
    check: (r) => {
      assert.equal(r.json?.host, output);
      assert.ok(r.code === 0 || r.code === 1);
    },
  }));
  await runCliCases(cases);
});

Deno.test("conformance CLI: non_public_ips vectors through `sandbox policy host --json`", async () => {
  const cases: CliCase[] = [
    ...NON_PUBLIC.non_public.map((host): CliCase => ({
      label: `non_public ${host}`,
      args: ["--json", "--allow", "*", host],
      check: (r) => checkShape(r, 1, "not_allowed_local"),
    })),
    ...NON_PUBLIC.public.map((host): CliCase => ({
      label: `public ${host}`,
      args: ["--json", "--allow", "*", host],
      check: (r) => checkShape(r, 0, "allowed"),
    })),
    ...NON_PUBLIC.ipv4_literal_spellings_that_mean_127_0_0_1.flatMap((host): CliCase[] => [
      {
        label: `127.0.0.1 spelled ${host}, wildcard allow`,
        args: ["--json", "--allow", "*", host],
        check: (r) => checkShape(r, 1, "not_allowed_local"),
      },
      {
        label: `127.0.0.1 spelled ${host}, exact allow of 127.0.0.1`,
        args: ["--json", "--allow", "127.0.0.1", host],
        check: (r) => {
          checkShape(r, 0, "allowed");
          assert.deepEqual(r.json!.addresses, ["127.0.0.1"]);
        },
      },
    ]),
  ];
  await runCliCases(cases);
});

Deno.test("conformance CLI: domain_patterns vectors through `sandbox policy host --json`", async () => {
  const cases: CliCase[] = [];
  for (const c of PATTERNS.cases) {
    const hosts = [
      ...c.matches.map((h) => [h, true] as const),
      ...c.does_not_match.map((h) => [h, false] as const),
    ];
    for (const [host, matches] of hosts) {
      const resolve = resolveNames([host]);
      cases.push({
        label: `allow ${c.pattern} ${matches ? "matches" : "does not match"} ${host}`,
        args: ["--json", "--allow-local-binding", "--allow", c.pattern, ...resolve, host],
        check: (r) => {
          checkShape(r, matches ? 0 : 1, matches ? "allowed" : "not_allowed");
          if (matches) assert.equal(r.json!.rule, c.pattern);
        },
      });
      if (c.allow_only) continue;
      cases.push({
        label: `deny ${c.pattern} ${matches ? "matches" : "does not match"} ${host}`,
        args: [
          "--json",
          "--allow-local-binding",
          "--allow",
          "*",
          "--deny",
          c.pattern,
          ...resolve,
          host,
        ],
        check: (r) => {
          checkShape(r, matches ? 1 : 0, matches ? "denied" : "allowed");
          if (matches) assert.equal(r.json!.rule, c.pattern);
        },
      });
    }
    if (c.allow_only) {
      cases.push({
        label: `allow-only pattern ${c.pattern} in a deny rule`,
        args: ["--json", "--deny", c.pattern, "x.test"],
        check: (r) => {
          assert.equal(r.code, 2);
          assert.ok(r.stderr.includes(JSON.stringify(c.pattern)), "stderr names the pattern");
        },
      });
    }
  }
  const rejected: [string, string][] = [
    ...PATTERNS.rejected_in_deny_rules.map((p): [string, string] => ["--deny", p]),
    ...PATTERNS.rejected_everywhere.flatMap((
      p,
    ): [string, string][] => [["--deny", p], ["--allow", p]]),
  ];
  for (const [flag, pattern] of rejected) {
    cases.push({
      label: `${flag} ${pattern} is rejected`,
      args: ["--json", flag, pattern, "x.test"],
      check: (r) => {
        assert.equal(r.code, 2);
        assert.equal(r.json, null);
        assert.ok(r.stderr.includes(JSON.stringify(pattern)), "stderr names the pattern");
      },
    });
  }
  await runCliCases(cases);
});

/**
 * The egress receipt (`sandbox run --receipt FILE`): one JSON document,
 * written at exit, that says which hosts, ports and addresses a run used,
 * under which policy (the effective configuration's SHA-256) and where its
 * decision log ended (the last line's hash, which `sandbox log verify
 * --last-hash` checks). A build attaches it next to its provenance.
 *
 * @module
 */
import type { EffectiveConfig } from "../profiles/types.ts";
import type { DecisionEvent } from "../proxy/decision_log.ts";
import { writeTextNoFollow } from "../safe_file.ts";

/** The `schema` of every receipt this version writes. */
export const RECEIPT_SCHEMA = "sandbox.receipt/v1";

/** One host the run asked for. */
export interface ReceiptHost {
  readonly host: string;
  readonly ports: readonly number[];
  readonly protocols: readonly string[];
  /** Addresses the proxy connected to (allowed connections only), sorted. */
  readonly addresses: readonly string[];
  readonly allowed: number;
  readonly denied: number;
  readonly would_block: number;
}

/** The receipt. */
export interface EgressReceipt {
  readonly schema: typeof RECEIPT_SCHEMA;
  readonly command: readonly string[];
  readonly finished: string;
  readonly exit_code: number;
  readonly policy: {
    readonly profile: string | null;
    readonly files: readonly string[];
    /** SHA-256 of the effective policy (network, filesystem, env, execpolicy), canonical JSON. */
    readonly sha256: string;
  };
  readonly hosts: readonly ReceiptHost[];
  /** The decision log, or null without --log. */
  readonly log:
    | { readonly path: string; readonly lines: number; readonly last_hash: string }
    | null;
}

/** Options for {@linkcode buildReceipt}. */
export interface BuildReceiptOptions {
  readonly command: readonly string[];
  readonly exitCode: number;
  readonly decisions: readonly DecisionEvent[];
  /** SHA-256 (hex) of the effective policy, from {@linkcode policyHash}. */
  readonly policySha256: string;
  readonly log: EgressReceipt["log"];
  /** Defaults to now. */
  readonly finished?: string;
}

/** Builds the receipt. Pure. */
export function buildReceipt(config: EffectiveConfig, options: BuildReceiptOptions): EgressReceipt {
  const hosts = new Map<
    string,
    { ports: Set<number>; protocols: Set<string>; addresses: Set<string>; counts: number[] }
  >();
  for (const event of options.decisions) {
    let entry = hosts.get(event.host);
    if (entry === undefined) {
      entry = { ports: new Set(), protocols: new Set(), addresses: new Set(), counts: [0, 0, 0] };
      hosts.set(event.host, entry);
    }
    entry.ports.add(event.port);
    entry.protocols.add(event.protocol);
    for (const address of event.addresses ?? []) entry.addresses.add(address);
    entry.counts[event.decision === "allow" ? 0 : event.decision === "deny" ? 1 : 2]++;
  }
  return {
    schema: RECEIPT_SCHEMA,
    command: [...options.command],
    finished: options.finished ?? new Date().toISOString(),
    exit_code: options.exitCode,
    policy: { profile: config.profileName, files: [...config.files], sha256: options.policySha256 },
    hosts: [...hosts.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([host, e]) => ({
        host,
        ports: [...e.ports].sort((a, b) => a - b),
        protocols: [...e.protocols].sort(),
        addresses: [...e.addresses].sort(),
        allowed: e.counts[0],
        denied: e.counts[1],
        would_block: e.counts[2],
      })),
    log: options.log,
  };
}

/** SHA-256 (hex) of the parts of the effective configuration that decide what a run may do. */
export async function policyHash(config: EffectiveConfig): Promise<string> {
  const { createHash } = await import("node:crypto");
  const text = JSON.stringify({
    network: config.network,
    filesystem: config.filesystem,
    env: config.env,
    execpolicy: config.execpolicy,
  });
  return createHash("sha256").update(text).digest("hex");
}

/** Writes the receipt to `path`, replacing it, never through a symlink. */
export function writeReceipt(path: string, receipt: EgressReceipt): void {
  writeTextNoFollow(path, JSON.stringify(receipt, null, 2) + "\n", {
    truncate: true,
    what: "egress receipt",
  });
}

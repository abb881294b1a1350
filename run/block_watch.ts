/**
 * Blocks said while they happen, so that a command retrying a blocked host
 * is never a silent spin: one line on stderr per host and reason the first
 * time the proxy refuses it, a second line when the same host keeps being
 * refused and nothing else gets through, and `--fail-fast`, which ends the
 * run at the first block.
 *
 * The line is machine-readable and stable (scripts and CI annotations parse it):
 *
 * ```
 * sandbox: blocked CONNECT other.example:443 not_allowed (add --allow other.example)
 * ```
 *
 * Fields: the method (`CONNECT` for tunnels, `SOCKS5`, or the HTTP method),
 * `HOST:PORT` (an IPv6 host in brackets), the deny reason of
 * policy/reasons.ts, and a hint in parentheses.
 *
 * @module
 */
import type { DenyReason } from "../policy/reasons.ts";

/** The fields of a proxy decision the watcher reads. */
export interface WatchedDecision {
  /** The host asked for. */
  readonly host: string;
  /** The port asked for. */
  readonly port: number;
  /** `http`, `https-connect`, `socks5`, or a captured kind. */
  readonly protocol: string;
  /** The HTTP method, or null for tunnels. */
  readonly method: string | null;
  /** What the proxy decided. */
  readonly decision: string;
  /** `allowed` or a deny reason. */
  readonly reason: string;
  /** The rule that decided, or null. */
  readonly rule?: string | null;
}

/**
 * How many refusals of one host, with nothing allowed since its first, make
 * the watcher say the command seems to be retrying it.
 */
export const SPIN_REFUSALS = 10;

/** Options for {@linkcode createBlockWatch}. */
export interface BlockWatchOptions {
  /** Receives the lines (each ends in a newline). */
  readonly stderr: (text: string) => void;
  /** `--fail-fast`: called once, at the first block, after its line was written. */
  readonly onFirstBlock?: () => void;
  /** Prefix of the lines; `sandbox` unless set. */
  readonly prefix?: string;
  /** Called once, when the first host is found spinning (after its line was written). */
  readonly onSpin?: (host: SpinningHost) => void;
}

/** A host the command kept retrying while nothing else got through. */
export interface SpinningHost {
  /** The host. */
  readonly host: string;
  /** The port of its first refusal. */
  readonly port: number;
  /** The deny reason. */
  readonly reason: string;
  /** Refusals counted. */
  readonly refusals: number;
}

/** What {@linkcode createBlockWatch} returns. */
export interface BlockWatch {
  /** Feed it every decision, in order. */
  readonly onDecision: (event: WatchedDecision) => void;
  /** Whether a block happened (and, with `onFirstBlock`, ended the run). */
  readonly blocked: () => boolean;
  /** Hosts refused at least {@linkcode SPIN_REFUSALS} times with nothing allowed since their first refusal. */
  readonly spinning: () => readonly SpinningHost[];
}

/**
 * Watches a run's decisions and writes the live lines.
 *
 * @example
 * ```ts
 * const watch = createBlockWatch({ stderr: (t) => console.error(t.trimEnd()) });
 * await runSandboxed(config, argv, { onDecision: watch.onDecision });
 * ```
 */
export function createBlockWatch(options: BlockWatchOptions): BlockWatch {
  const prefix = options.prefix ?? "sandbox";
  const said = new Set<string>();
  let allowed = 0;
  let firstBlock = true;
  const hosts = new Map<
    string,
    { host: string; port: number; reason: string; refusals: number; allowedAtFirst: number }
  >();
  const spinSaid = new Set<string>();
  const isSpinning = (entry: { refusals: number; allowedAtFirst: number }) =>
    entry.refusals >= SPIN_REFUSALS && allowed === entry.allowedAtFirst;
  return {
    onDecision(event) {
      if (event.decision !== "deny") {
        allowed++;
        return;
      }
      const key = `${event.host}\u0000${event.reason}`;
      if (!said.has(key)) {
        said.add(key);
        options.stderr(`${prefix}: ${formatBlockedLine(event)}\n`);
      }
      const entry = hosts.get(key) ??
        {
          host: event.host,
          port: event.port,
          reason: event.reason,
          refusals: 0,
          allowedAtFirst: allowed,
        };
      entry.refusals++;
      hosts.set(key, entry);
      if (isSpinning(entry) && !spinSaid.has(key)) {
        spinSaid.add(key);
        options.stderr(`${prefix}: ${formatSpinLine(entry)}\n`);
        if (spinSaid.size === 1) {
          options.onSpin?.({
            host: entry.host,
            port: entry.port,
            reason: entry.reason,
            refusals: entry.refusals,
          });
        }
      }
      if (firstBlock) {
        firstBlock = false;
        options.onFirstBlock?.();
      }
    },
    blocked: () => !firstBlock,
    spinning: () =>
      [...hosts.values()].filter(isSpinning).map(({ host, port, reason, refusals }) => ({
        host,
        port,
        reason,
        refusals,
      })),
  };
}

/**
 * The live line of one block, without the `sandbox: ` prefix.
 *
 * @example
 * ```ts
 * formatBlockedLine({ host: "other.example", port: 443, protocol: "https-connect", method: null,
 *   decision: "deny", reason: "not_allowed" });
 * // "blocked CONNECT other.example:443 not_allowed (add --allow other.example)"
 * ```
 */
export function formatBlockedLine(event: WatchedDecision): string {
  const method = event.method ??
    (event.protocol === "socks5" ? "SOCKS5" : event.protocol === "http" ? "GET" : "CONNECT");
  return `blocked ${method} ${hostPort(event.host, event.port)} ${event.reason} (${
    blockHint(event)
  })`;
}

/** The sentence said when a host keeps being refused and nothing else gets through. */
export function formatSpinLine(host: SpinningHost): string {
  return `${hostPort(host.host, host.port)} was refused ${host.refusals} times (${host.reason}) ` +
    "and nothing else got through: the command seems to be retrying a blocked host; allow it, " +
    "or end such runs at the first block with --fail-fast";
}

function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

const HINTS: Readonly<Record<DenyReason, (event: WatchedDecision) => string>> = {
  not_allowed: (e) => `add --allow ${e.host}`,
  not_allowed_local: (e) => `a local or private address: add --allow ${e.host} to allow this name`,
  denied: (e) => `a deny rule matches${e.rule ? `: ${e.rule}` : ""}`,
  method_not_allowed: () => "limited mode lets GET, HEAD and OPTIONS through",
  mitm_required: () => "add --mitm to check methods inside HTTPS",
  other: () => "see --log for details",
  proxy_disabled: () => "the profile turns the network off",
  socks_disabled: () => "SOCKS5 is off in this configuration: use the HTTP proxy",
  unix_socket_unsupported: () => "x-unix-socket works on plain HTTP requests, not CONNECT",
  unix_socket_not_allowed: () => "add --allow-unix-socket PATH",
  invalid_port: () => "the port is out of range",
  host_mismatch: () => "the request named another host than its tunnel",
  bad_request: () => "the request was malformed",
  resolve_failed: (e) => `${e.host} did not resolve`,
  own_listener: () => "that is the proxy itself",
  policy_error: () => "see --log for details",
  mitm_hook_denied: (e) =>
    `${e.host} has request rules and none matches${
      e.method ? ` ${e.method}` : ""
    }: see sandbox policy host ${e.host} --method M --path P`,
  secret_wrong_host: (e) =>
    `a secret's placeholder was sent to ${e.host}, which the secret is not bound to (possible exfiltration)`,
};

function blockHint(event: WatchedDecision): string {
  const hint = (HINTS as Record<string, ((e: WatchedDecision) => string) | undefined>)[
    event.reason
  ];
  return hint === undefined ? "see --log for details" : hint(event);
}

/**
 * The decision log: every allow or deny the proxy makes, one JSON object per
 * line (`--log FILE`, fields in CLI.md), and a reader so the launcher can read
 * the blocked ones back for its end-of-run summary.
 *
 * @example
 * ```ts
 * using log = openDecisionLog("/tmp/decisions.jsonl");
 * log.write(event);
 * const blocked = await readDecisionLog("/tmp/decisions.jsonl", { blockedOnly: true });
 * ```
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import type { DenyReason } from "../policy/reasons.ts";
import { DENY_REASON_NAMES } from "../policy/reasons.ts";

/** Which door a connection came through. */
export type ProxyProtocol = "http" | "https-connect" | "socks5";

/** One decision of the proxy, as logged and as passed to `onDecision`. */
export interface DecisionEvent {
  /** When it was decided: RFC 3339, UTC, milliseconds. */
  readonly time: string;
  /** The normalized host asked for. */
  readonly host: string;
  /** The port asked for. */
  readonly port: number;
  /** How the client asked. */
  readonly protocol: ProxyProtocol;
  /** The HTTP method, or null for tunnels and SOCKS5. */
  readonly method: string | null;
  /** The outcome. */
  readonly decision: "allow" | "deny";
  /** `allowed`, or the deny reason from policy/reasons.ts. */
  readonly reason: "allowed" | DenyReason;
  /** The rule that decided, as written, or null. */
  readonly rule: string | null;
  /** Where that rule came from, or null. */
  readonly source: string | null;
  /** The command of the run (argv joined for display), or null. */
  readonly command: string | null;
}

/** Options for {@linkcode openDecisionLog}. */
export interface DecisionLogOptions {
  /** Create the file with these permission bits (default 0o600: hosts a command used can be private). */
  mode?: number;
}

/** An open decision log; close it (or `using` it) when done. */
export interface DecisionLog extends Disposable {
  /** The file being appended to. */
  readonly path: string;
  /** Appends one event as one line. Never throws: a failing log must not break the proxy. */
  write(event: DecisionEvent): void;
  /** Closes the file. */
  close(): void;
}

const encoder = new TextEncoder();

/** Renders an event as its log line (JSON, fields in a fixed order, trailing newline). */
export function formatDecisionLine(event: DecisionEvent): string {
  return JSON.stringify({
    time: event.time,
    host: event.host,
    port: event.port,
    protocol: event.protocol,
    method: event.method,
    decision: event.decision,
    reason: event.reason,
    rule: event.rule,
    source: event.source,
    command: event.command,
  }) + "\n";
}

/**
 * Opens `path` for appending decisions (creating it). Each line goes out in
 * one write call, so concurrent writers never interleave inside a line.
 */
export function openDecisionLog(path: string, options: DecisionLogOptions = {}): DecisionLog {
  const file = Deno.openSync(path, { append: true, create: true, mode: options.mode ?? 0o600 });
  let closed = false;
  let failures = 0;
  const close = () => {
    if (closed) return;
    closed = true;
    file.close();
  };
  return {
    path,
    write(event) {
      if (closed) return;
      try {
        const bytes = encoder.encode(formatDecisionLine(event));
        let offset = 0;
        while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
      } catch (error) {
        // Report the first failures only; the proxy keeps deciding either way.
        if (failures++ < 3) {
          const why = errorMessage(error);
          console.error(`sandbox: Cannot write the decision log "${path}": ${why}`);
        }
      }
    },
    close,
    [Symbol.dispose]: close,
  };
}

/** Options for {@linkcode readDecisionLog}. */
export interface ReadDecisionLogOptions {
  /** Only return denied decisions. */
  blockedOnly?: boolean;
}

const PROTOCOLS = new Set(["http", "https-connect", "socks5"]);
const REASONS = new Set<string>(["allowed", ...DENY_REASON_NAMES]);

/**
 * Reads a decision log back. Lines that are not decision events (a torn last
 * line, someone else's text) are skipped rather than trusted.
 */
export async function readDecisionLog(
  path: string,
  options: ReadDecisionLogOptions = {},
): Promise<DecisionEvent[]> {
  const text = await Deno.readTextFile(path);
  const events: DecisionEvent[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    const event = asDecisionEvent(value);
    if (event === null) continue;
    if (options.blockedOnly && event.decision !== "deny") continue;
    events.push(event);
  }
  return events;
}

function asDecisionEvent(value: unknown): DecisionEvent | null {
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  const nullableString = (x: unknown) => x === null || typeof x === "string";
  if (
    typeof v.time !== "string" || typeof v.host !== "string" || typeof v.port !== "number" ||
    typeof v.protocol !== "string" || !PROTOCOLS.has(v.protocol) || !nullableString(v.method) ||
    (v.decision !== "allow" && v.decision !== "deny") || typeof v.reason !== "string" ||
    !REASONS.has(v.reason) || !nullableString(v.rule) || !nullableString(v.source ?? null) ||
    !nullableString(v.command ?? null)
  ) {
    return null;
  }
  return {
    time: v.time,
    host: v.host,
    port: v.port,
    protocol: v.protocol as ProxyProtocol,
    method: v.method as string | null,
    decision: v.decision,
    reason: v.reason as "allowed" | DenyReason,
    rule: v.rule as string | null,
    source: (v.source ?? null) as string | null,
    command: (v.command ?? null) as string | null,
  };
}

/** Joins a command's argv for display in the log, quoting arguments that need it. */
export function formatCommand(argv: readonly string[] | undefined): string | null {
  if (argv === undefined || argv.length === 0) return null;
  return argv.map((arg) =>
    /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`
  )
    .join(" ");
}

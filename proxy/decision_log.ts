/**
 * The decision log: every allow or deny the proxy makes, one JSON object per
 * line (`--log FILE`, fields in CLI.md and `docs/decision-log.schema.json`),
 * a reader so the launcher can read the blocked ones back for its end-of-run
 * summary, and a verifier of its hash chain.
 *
 * Each line carries `schema` (the version of its shape) and `prev`: the
 * SHA-256 of the previous line's bytes, newline included ({@linkcode CHAIN_START}
 * for the first line of a file). A removed, inserted, reordered or edited line
 * breaks the chain at the next line; a cut-off end is caught by comparing the
 * last line's hash with the one the run reported (the receipt). The chain
 * holds against accidents and careless edits, not against someone who
 * rewrites every later line too: it is not signed.
 *
 * @example
 * ```ts
 * using log = await openDecisionLog("/tmp/decisions.jsonl");
 * log.write(event);
 * const blocked = await readDecisionLog("/tmp/decisions.jsonl", { blockedOnly: true });
 * ```
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { openNoFollow } from "../safe_file.ts";
import type { DenyReason } from "../policy/reasons.ts";
import { DENY_REASON_NAMES } from "../policy/reasons.ts";

/**
 * Which door a connection came through. The `captured-*` kinds are
 * connections a program made directly (not through the proxy variables),
 * captured inside the sandbox: `captured-tls` is decided like a CONNECT,
 * `captured-http` like an absolute-form request, `captured-tcp` is a plain
 * tunnel to a `host:port` rule.
 */
export type ProxyProtocol =
  | "http"
  | "https-connect"
  | "socks5"
  | "captured-http"
  | "captured-tls"
  | "captured-tcp";

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
  /** The outcome; `would_block` in report mode: let through, but the rules would refuse it. */
  readonly decision: "allow" | "deny" | "would_block";
  /** `allowed`, or the deny reason from policy/reasons.ts (for `would_block`, the reason it would have). */
  readonly reason: "allowed" | DenyReason;
  /** The rule that decided, as written, or null. */
  readonly rule: string | null;
  /** Where that rule came from, or null (logged as `rule_source`). */
  readonly source: string | null;
  /**
   * Which guard decided (`baseline_policy`, `mode_guard`, `proxy_state`, `decider`,
   * `request_check`), logged as `source`; null when not known.
   */
  readonly guard?: string | null;
  /** The checked addresses an allowed connection went to (not logged: for the receipt). */
  readonly addresses?: readonly string[];
  /** The command of the run (argv joined for display), or null. */
  readonly command: string | null;
  /** Captured connections: the program that connected (`/proc/PID/exe`), or null when unknown. */
  readonly program?: string | null;
}

/** The `schema` value of every line this version writes. */
export const DECISION_LOG_SCHEMA = "sandbox.decision/v1";

/** The `prev` of a file's first line. */
export const CHAIN_START = "0".repeat(64);

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
  /** SHA-256 (hex) of the last line written, or of the file's last line when nothing was written yet. */
  readonly lastHash: string;
  /** Closes the file. */
  close(): void;
}

const encoder = new TextEncoder();

/**
 * Renders an event as its log line (JSON, fields in a fixed order, trailing
 * newline), chained to the line before it by `prev`.
 */
export function formatDecisionLine(event: DecisionEvent, prev: string = CHAIN_START): string {
  return JSON.stringify({
    schema: DECISION_LOG_SCHEMA,
    time: event.time,
    host: event.host,
    port: event.port,
    protocol: event.protocol,
    method: event.method,
    decision: event.decision,
    reason: event.reason,
    source: event.guard ?? null,
    rule: event.rule,
    rule_source: event.source,
    command: event.command,
    ...(event.program === undefined ? {} : { program: event.program }),
    prev,
  }) + "\n";
}

type Sha256 = (bytes: Uint8Array) => string;

async function sha256Function(): Promise<Sha256> {
  // node:crypto hashes synchronously, so a decision is logged in the same
  // turn it is made; loaded only when a log is kept (start-up stays lean).
  const { createHash } = await import("node:crypto");
  return (bytes) => createHash("sha256").update(bytes).digest("hex");
}

/** Reads the last line of an open file (its final newline included), or null when it is empty. */
function lastLine(file: Deno.FsFile): Uint8Array | null {
  const size = file.statSync().size;
  if (size === 0) return null;
  let chunk = 4096;
  for (;;) {
    const start = Math.max(0, size - chunk);
    const buf = new Uint8Array(size - start);
    file.seekSync(start, Deno.SeekMode.Start);
    let read = 0;
    while (read < buf.length) {
      const n = file.readSync(buf.subarray(read));
      if (n === null) break;
      read += n;
    }
    const body = buf.subarray(0, read);
    const end = body.at(-1) === 0x0a ? body.length - 1 : body.length;
    const newline = body.lastIndexOf(0x0a, end - 1);
    if (newline !== -1 || start === 0) return body.slice(newline + 1);
    chunk *= 4;
  }
}

/**
 * Opens `path` for appending decisions (creating it), continuing the hash
 * chain of the lines already there. Each line goes out in one write call, so
 * concurrent writers never interleave inside a line. A file whose last line
 * was cut off gets a newline first: the torn line stays visible to
 * `sandbox log verify` instead of being glued to the next one.
 */
export async function openDecisionLog(
  path: string,
  options: DecisionLogOptions = {},
): Promise<DecisionLog> {
  const sha256 = await sha256Function();
  // Never through a symlink or into another file's hard link: the log often lies where a
  // sandboxed command can write (see safe_file.ts).
  const file = openNoFollow(path, {
    read: true,
    append: true,
    mode: options.mode ?? 0o600,
    what: "decision log",
  });
  let prev = CHAIN_START;
  try {
    const last = lastLine(file);
    if (last !== null) {
      if (last.at(-1) !== 0x0a) file.writeSync(encoder.encode("\n"));
      prev = sha256(last.at(-1) === 0x0a ? last : concat(last, encoder.encode("\n")));
    }
  } catch (error) {
    file.close();
    throw error;
  }
  let closed = false;
  let failures = 0;
  const close = () => {
    if (closed) return;
    closed = true;
    file.close();
  };
  return {
    path,
    get lastHash() {
      return prev;
    },
    write(event) {
      if (closed) return;
      try {
        const bytes = encoder.encode(formatDecisionLine(event, prev));
        let offset = 0;
        while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
        prev = sha256(bytes);
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

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** One break in a decision log's chain or shape. */
export interface LogProblem {
  /** 1-based line number. */
  readonly line: number;
  /** What is wrong there, as a sentence. */
  readonly message: string;
}

/** What {@linkcode verifyDecisionLog} found. */
export interface LogVerification {
  /** Lines read. */
  readonly lines: number;
  /** Every problem, in line order (empty when the chain holds). */
  readonly problems: readonly LogProblem[];
  /** SHA-256 (hex) of the last line: compare it with the run's receipt to catch a cut-off end. */
  readonly lastHash: string;
}

/**
 * Checks a decision log's hash chain and the shape of every line. A removed
 * or edited line shows as a `prev` mismatch on the line after it.
 *
 * @example
 * ```ts
 * const result = await verifyDecisionLog(await Deno.readFile("decisions.jsonl"));
 * if (result.problems.length > 0) console.error(result.problems[0].message);
 * ```
 */
export async function verifyDecisionLog(bytes: Uint8Array): Promise<LogVerification> {
  const sha256 = await sha256Function();
  const problems: LogProblem[] = [];
  let prev = CHAIN_START;
  let line = 0;
  let start = 0;
  const decoder = new TextDecoder("utf-8", { fatal: true });
  while (start < bytes.length) {
    line++;
    const newline = bytes.indexOf(0x0a, start);
    const end = newline === -1 ? bytes.length : newline + 1;
    const raw = bytes.subarray(start, end);
    start = end;
    if (newline === -1) {
      problems.push({ line, message: `line ${line} is cut off: it has no final newline` });
    }
    let value: Record<string, unknown> | null = null;
    try {
      const parsed: unknown = JSON.parse(decoder.decode(raw));
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
        value = parsed as Record<string, unknown>;
      }
    } catch {
      // reported below
    }
    if (value === null) {
      problems.push({ line, message: `line ${line} is not a JSON object` });
    } else if (value.schema !== DECISION_LOG_SCHEMA) {
      problems.push({
        line,
        message: `line ${line} has schema ${
          JSON.stringify(value.schema ?? null)
        }: expected "${DECISION_LOG_SCHEMA}"`,
      });
    } else if (value.prev !== prev) {
      problems.push({
        line,
        message: line === 1
          ? `line ${line} does not start the chain: a line before it was removed (prev ${
            String(value.prev).slice(0, 12)
          }…)`
          : `line ${line} does not follow line ${
            line - 1
          }: a line between them was removed or line ${line - 1} was changed`,
      });
    } else if (asDecisionEvent(value) === null) {
      problems.push({
        line,
        message: `line ${line} is not a decision event (a field is missing or of the wrong type)`,
      });
    }
    prev = sha256(raw);
  }
  return { lines: line, problems, lastHash: prev };
}

/** Options for {@linkcode readDecisionLog}. */
export interface ReadDecisionLogOptions {
  /** Only return denied decisions. */
  blockedOnly?: boolean;
}

/** Every `protocol` a line may carry. */
export const PROXY_PROTOCOLS: readonly ProxyProtocol[] = Object.freeze([
  "http",
  "https-connect",
  "socks5",
  "captured-http",
  "captured-tls",
  "captured-tcp",
]);
const PROTOCOLS = new Set<string>(PROXY_PROTOCOLS);
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
  // From the versioned schema on, `source` is the guard and `rule_source` the rule's origin;
  // before it, `source` was the rule's origin.
  const versioned = typeof v.schema === "string";
  const ruleSource = versioned ? v.rule_source ?? null : v.source ?? null;
  const guard = versioned ? v.source ?? null : null;
  if (
    typeof v.time !== "string" || typeof v.host !== "string" || typeof v.port !== "number" ||
    typeof v.protocol !== "string" || !PROTOCOLS.has(v.protocol) || !nullableString(v.method) ||
    (v.decision !== "allow" && v.decision !== "deny" && v.decision !== "would_block") ||
    typeof v.reason !== "string" || !REASONS.has(v.reason) || !nullableString(v.rule) ||
    !nullableString(ruleSource) || !nullableString(guard) || !nullableString(v.command ?? null)
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
    source: ruleSource as string | null,
    guard: guard as string | null,
    command: (v.command ?? null) as string | null,
    ...(typeof v.program === "string" || v.program === null ? { program: v.program } : {}),
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

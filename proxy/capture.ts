/**
 * Captured connections, the proxy's side: a program inside the sandbox
 * connected directly (not through the proxy variables) to a synthetic
 * address, and the bridge hands the connection over on the proxy's capture
 * socket with one header line naming the host, port, kind and program.
 *
 * - `tls` (443, and a port a `tls://host:PORT` rule marks for that host —
 *   the proxy looks the marking up, the bridge does not know it): decided like a CONNECT to host:port;
 *   the ClientHello's server name must be that host (a program cannot ask for
 *   one name and present another); limited mode and MITM apply as for CONNECT.
 * - `http` (80): each request is decided like an absolute-form request to the
 *   host; its `Host` header must name that host.
 * - `tcp` (any other port named in a `host:port` rule): a plain tunnel.
 *
 * Each is decided by `decideRequest()` with a `captured-*` door (the name
 * the program presented goes in as `serverName`) and logged with the program.
 * The header is trusted only on the capture socket, which lives in the
 * launcher's private run directory and only the bridge connects to; the
 * command's own proxy traffic arrives on the other socket.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { sameHost } from "../policy/decide_request.ts";
import type { ConnectionSlot } from "./connection_slot.ts";
import { type BufferedReader, headerValues, type RequestHead } from "./http_parser.ts";
import {
  forward,
  readClientHead,
  sendBlocked,
  sendText,
  tunnelAllowed,
  type UpstreamLink,
} from "./http_proxy.ts";
import type { ProxyRuntime } from "./runtime.ts";

/** What the bridge says about a captured connection (its first line on the capture socket). */
export interface CapturedTarget {
  /** The name the program looked up, or the literal address it dialled (IPv6 without brackets). */
  readonly host: string;
  /** The port it connected to. */
  readonly port: number;
  /** How the connection is decided. */
  readonly kind: "tls" | "http" | "tcp";
  /** The connecting program, when the bridge could read it. */
  readonly program: string | null;
}

const MAX_HEADER = 4096;
const MAX_CLIENT_HELLO = 16 * 1024 + 5;

/**
 * Reads the bridge's header line. Null when it is missing or malformed (the
 * connection is then closed without a decision: only the bridge writes it).
 */
export async function readCaptureHeader(reader: BufferedReader): Promise<CapturedTarget | null> {
  let text = "";
  for (;;) {
    const buffered = reader.peek();
    const newline = buffered.indexOf(0x0a);
    if (newline !== -1) {
      text = new TextDecoder().decode(buffered.subarray(0, newline));
      reader.consume(newline + 1);
      break;
    }
    if (buffered.length > MAX_HEADER || !(await reader.fill())) return null;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  if (
    typeof v.host !== "string" || typeof v.port !== "number" || !Number.isInteger(v.port) ||
    v.port < 1 || v.port > 65535 || (v.kind !== "tls" && v.kind !== "http" && v.kind !== "tcp") ||
    (v.program !== null && typeof v.program !== "string")
  ) {
    return null;
  }
  return { host: v.host, port: v.port, kind: v.kind, program: v.program as string | null };
}

/** Serves one captured connection until it ends (internal: called by the server). */
export async function handleCapturedClient(
  conn: Deno.Conn,
  reader: BufferedReader,
  target: CapturedTarget,
  runtime: ProxyRuntime,
  slot: ConnectionSlot,
): Promise<void> {
  // The bridge knows 443 and 80; a `tls://host:PORT` rule marks more, per host (the proxy
  // holds the policy, and a reload changes it).
  const kind = target.kind !== "tls" && runtime.marksTls(target.host, target.port)
    ? "tls"
    : target.kind;
  if (kind === "http") {
    await serveCapturedHttp(conn, reader, target, runtime, slot);
    return;
  }
  const door = kind === "tls" ? "captured-tls" : "captured-tcp";
  let serverName: string | null = null;
  if (kind === "tls") {
    slot.expectWithin(runtime.limits.headerTimeoutMs);
    serverName = await readServerName(reader);
    slot.unwatch();
  }
  const verdict = await runtime.decide({
    door,
    host: target.host,
    port: target.port,
    method: null,
    serverName,
    program: target.program,
  });
  if (verdict.decision === "deny") return;
  await tunnelAllowed(conn, reader, verdict, runtime, slot, { established: null, protocol: door });
}

async function serveCapturedHttp(
  conn: Deno.Conn,
  reader: BufferedReader,
  target: CapturedTarget,
  runtime: ProxyRuntime,
  slot: ConnectionSlot,
): Promise<void> {
  const link: { current: UpstreamLink | null } = { current: null };
  // A captured IPv6 literal comes without brackets; the URL needs them.
  const name = target.host.includes(":") ? `[${target.host}]` : target.host;
  const authority = target.port === 80 ? name : `${name}:${target.port}`;
  for (;;) {
    const head = await readClientHead(conn, reader, runtime, slot);
    if (head === null) return;
    if (!head.target.startsWith("/")) {
      // A program talking to port 80 sends origin-form; anything else (a proxy request,
      // CONNECT, "*") would name a second target.
      await sendText(conn, 400, "Bad Request", "Send the request in origin form (/path)");
      return;
    }
    const hosts = headerValues(head.headers, "host");
    const serverName = hosts.length === 1 ? stripPort(hosts[0]) : null;
    const captured = { program: target.program, serverName };
    if (serverName === null || !sameHost(serverName, target.host)) {
      // decideRequest() refuses it (host_mismatch) and logs why.
      const verdict = await runtime.decide({
        door: "captured-http",
        host: target.host,
        port: target.port,
        method: head.method,
        ...captured,
      });
      if (verdict.decision === "deny") await sendBlocked(conn, verdict, "captured-http");
      return;
    }
    const absolute: RequestHead = { ...head, target: `http://${authority}${head.target}` };
    try {
      if (!(await forward(conn, reader, absolute, runtime, slot, link, captured))) return;
    } catch (error) {
      await sendText(conn, 400, "Bad Request", errorMessage(error));
      return;
    }
  }
}

function stripPort(value: string): string {
  const text = value.trim();
  if (text.startsWith("[")) return text.slice(0, text.indexOf("]") + 1);
  const colon = text.lastIndexOf(":");
  return colon === -1 || text.indexOf(":") !== colon ? text : text.slice(0, colon);
}

/**
 * Buffers the first TLS record (a ClientHello) without consuming it and
 * returns its server name (lower case), or null when there is none or it is
 * not a ClientHello.
 */
async function readServerName(reader: BufferedReader): Promise<string | null> {
  while (reader.peek().length < 5) {
    if (!(await reader.fill())) return null;
  }
  const head = reader.peek();
  if (head[0] !== 0x16) return null; // not a handshake record
  const length = (head[3] << 8) | head[4];
  if (length + 5 > MAX_CLIENT_HELLO) return null;
  while (reader.peek().length < length + 5) {
    if (!(await reader.fill())) return null;
  }
  return parseServerName(reader.peek().subarray(5, 5 + length));
}

/** The server_name of a ClientHello handshake message, or null. Exported for tests. */
export function parseServerName(hello: Uint8Array): string | null {
  let p = 0;
  const need = (n: number) => {
    if (p + n > hello.length) throw new RangeError("short");
  };
  try {
    need(4);
    if (hello[0] !== 0x01) return null; // ClientHello
    p = 4 + 2 + 32; // type+length, version, random
    need(1);
    p += 1 + hello[p]; // session id
    need(2);
    p += 2 + ((hello[p] << 8) | hello[p + 1]); // cipher suites
    need(1);
    p += 1 + hello[p]; // compression methods
    need(2);
    const end = p + 2 + ((hello[p] << 8) | hello[p + 1]);
    p += 2;
    while (p + 4 <= end) {
      const type = (hello[p] << 8) | hello[p + 1];
      const size = (hello[p + 2] << 8) | hello[p + 3];
      p += 4;
      need(size);
      if (type === 0) {
        // server_name: list length, then (type 0 = host_name, length, name).
        let q = p + 2;
        while (q + 3 <= p + size) {
          const nameType = hello[q];
          const nameLength = (hello[q + 1] << 8) | hello[q + 2];
          q += 3;
          if (q + nameLength > p + size) return null;
          if (nameType === 0) {
            return new TextDecoder().decode(hello.subarray(q, q + nameLength)).toLowerCase()
              .replace(/\.$/, "");
          }
          q += nameLength;
        }
        return null;
      }
      p += size;
    }
  } catch {
    return null;
  }
  return null;
}

/**
 * SOCKS5 (RFC 1928) for the proxy: no-auth only, CONNECT with IPv4, domain
 * and IPv6 addresses (a "domain" that is an IP literal in any spelling is
 * judged as that IP), BIND and UDP ASSOCIATE refused with 0x07, policy blocks
 * answered 0x02. A malformed greeting or request closes the connection.
 *
 * @module
 */
import { type BufferedReader, writeAll } from "./http_parser.ts";
import { relay } from "./relay.ts";
import type { ConnectionSlot } from "./connection_slot.ts";
import type { ProxyRuntime } from "./runtime.ts";
import { UpstreamError } from "./upstream.ts";

/** SOCKS5 reply codes (RFC 1928 section 6). */
export const SOCKS5_REPLY = Object.freeze({
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
});

/** A parsed SOCKS5 request. */
export interface Socks5Request {
  /** 1 CONNECT, 2 BIND, 3 UDP ASSOCIATE. */
  readonly command: number;
  /** The destination host: dotted IPv4, IPv6 text, or the domain as sent. */
  readonly host: string;
  /** The destination port. */
  readonly port: number;
}

/** The handshake did not follow RFC 1928: close without a reply. */
class SocksProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SocksProtocolError";
  }
}

async function need(reader: BufferedReader, n: number): Promise<Uint8Array> {
  while (reader.buffered < n) {
    if (!(await reader.fill(1024))) {
      throw new SocksProtocolError("Connection closed during the handshake");
    }
  }
  const bytes = reader.peek().slice(0, n);
  reader.consume(n);
  return bytes;
}

/** Reads the greeting; resolves true when no-auth (0x00) was offered. Throws on a bad version. */
async function readGreeting(reader: BufferedReader): Promise<boolean> {
  const [version, count] = await need(reader, 2);
  if (version !== 0x05) throw new SocksProtocolError("Not SOCKS version 5");
  if (count === 0) throw new SocksProtocolError("No authentication methods offered");
  const methods = await need(reader, count);
  return methods.includes(0x00);
}

type RequestResult = Socks5Request | { readonly badAddressType: true };

async function readRequest(reader: BufferedReader): Promise<RequestResult> {
  const [version, command, reserved, addressType] = await need(reader, 4);
  if (version !== 0x05 || reserved !== 0x00) {
    throw new SocksProtocolError("Malformed SOCKS5 request");
  }
  let host: string;
  if (addressType === 0x01) {
    host = [...await need(reader, 4)].join(".");
  } else if (addressType === 0x04) {
    const b = await need(reader, 16);
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
    host = groups.join(":");
  } else if (addressType === 0x03) {
    const [length] = await need(reader, 1);
    if (length === 0) throw new SocksProtocolError("Empty domain name");
    const bytes = await need(reader, length);
    // Visible ASCII only; a NUL or control byte is never a host name.
    if (!bytes.every((b) => b > 0x20 && b < 0x7f)) {
      await need(reader, 2);
      return { command, host: "", port: 0 };
    }
    host = String.fromCharCode(...bytes);
  } else {
    return { badAddressType: true };
  }
  const [hi, lo] = await need(reader, 2);
  return { command, host, port: (hi << 8) | lo };
}

/** Encodes a reply with the bound address (IPv4 or IPv6; 0.0.0.0:0 when unknown). */
export function encodeSocks5Reply(code: number, bound: Deno.NetAddr | null = null): Uint8Array {
  const hostname = bound?.hostname ?? "0.0.0.0";
  const port = bound?.port ?? 0;
  if (hostname.includes(":")) {
    const out = new Uint8Array(4 + 16 + 2);
    out.set([0x05, code, 0x00, 0x04]);
    const groups = expandIpv6(hostname);
    groups.forEach((g, i) => {
      out[4 + i * 2] = g >> 8;
      out[5 + i * 2] = g & 0xff;
    });
    out[20] = port >> 8;
    out[21] = port & 0xff;
    return out;
  }
  const parts = hostname.split(".").map(Number);
  const valid = parts.length === 4 && parts.every((p) => Number.isInteger(p) && p >= 0 && p <= 255);
  return new Uint8Array([
    0x05,
    code,
    0x00,
    0x01,
    ...(valid ? parts : [0, 0, 0, 0]),
    port >> 8,
    port & 0xff,
  ]);
}

function expandIpv6(text: string): number[] {
  const bare = text.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const [head, tail] = bare.includes("::") ? bare.split("::") : [bare, null];
  const parse = (s: string) =>
    (s === "" ? [] : s.split(":")).flatMap((g) => {
      if (g.includes(".")) {
        const [a, b, c, d] = g.split(".").map(Number);
        return [(a << 8) | b, (c << 8) | d];
      }
      return [parseInt(g, 16) || 0];
    });
  const left = parse(head);
  if (tail === null) return left.slice(0, 8);
  const right = parse(tail);
  return [...left, ...new Array(Math.max(0, 8 - left.length - right.length)).fill(0), ...right];
}

function replyForUpstreamError(error: unknown): number {
  if (!(error instanceof UpstreamError)) return SOCKS5_REPLY.generalFailure;
  switch (error.code) {
    case "refused":
      return SOCKS5_REPLY.connectionRefused;
    case "timeout":
    case "unreachable":
      return SOCKS5_REPLY.hostUnreachable;
    case "self":
      return SOCKS5_REPLY.notAllowed;
    default:
      return SOCKS5_REPLY.generalFailure;
  }
}

/**
 * Serves one SOCKS5 client connection (internal: called by the server with
 * the connection's buffered reader).
 */
export async function handleSocks5Client(
  conn: Deno.Conn,
  reader: BufferedReader,
  runtime: ProxyRuntime,
  slot: ConnectionSlot,
): Promise<void> {
  slot.expectWithin(runtime.limits.socksHandshakeTimeoutMs);
  let request: RequestResult;
  try {
    if (!(await readGreeting(reader))) {
      await writeAll(conn, new Uint8Array([0x05, 0xff]));
      return;
    }
    await writeAll(conn, new Uint8Array([0x05, 0x00]));
    request = await readRequest(reader);
  } catch {
    return; // Malformed or closed: close without a reply.
  }
  if ("badAddressType" in request) {
    await writeAll(conn, encodeSocks5Reply(SOCKS5_REPLY.addressTypeNotSupported));
    return;
  }
  if (request.command !== 0x01) {
    // BIND and UDP ASSOCIATE would open doors the policy cannot see.
    await writeAll(conn, encodeSocks5Reply(SOCKS5_REPLY.commandNotSupported));
    return;
  }
  slot.unwatch();
  const verdict = await runtime.decide({
    host: request.host,
    port: request.port,
    door: "socks5",
    method: null,
  });
  if (verdict.decision === "deny") {
    await writeAll(conn, encodeSocks5Reply(SOCKS5_REPLY.notAllowed));
    return;
  }
  slot.expectWithin(runtime.limits.connectTimeoutMs * Math.max(1, verdict.addresses.length) + 1000);
  let upstream: Deno.TcpConn;
  try {
    upstream = await runtime.connect(
      { host: verdict.host, port: verdict.port, addresses: verdict.addresses },
      "socks5",
    );
  } catch (error) {
    await writeAll(conn, encodeSocks5Reply(replyForUpstreamError(error))).catch(() => {});
    return;
  }
  slot.add(upstream);
  if (slot.closed) return;
  await writeAll(conn, encodeSocks5Reply(SOCKS5_REPLY.succeeded, upstream.localAddr));
  slot.watchIdle();
  await relay(conn, upstream, {
    buffers: runtime.buffers,
    onActivity: slot.touch,
    initialAtoB: reader.take(),
  });
}

/** Past the connection bound: finish the handshake, then answer 0x01 (general failure). */
export async function refuseSocksOverload(
  conn: Deno.Conn,
  reader: BufferedReader,
  runtime: ProxyRuntime,
  slot: ConnectionSlot,
): Promise<void> {
  slot.expectWithin(Math.min(runtime.limits.socksHandshakeTimeoutMs, 5000));
  try {
    if (!(await readGreeting(reader))) {
      await writeAll(conn, new Uint8Array([0x05, 0xff]));
      return;
    }
    await writeAll(conn, new Uint8Array([0x05, 0x00]));
    await readRequest(reader);
    await writeAll(conn, encodeSocks5Reply(SOCKS5_REPLY.generalFailure));
  } catch {
    // Closed or malformed: nothing to answer.
  }
}

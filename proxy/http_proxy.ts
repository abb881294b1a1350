/**
 * The HTTP side of the proxy: absolute-form requests forwarded with
 * keep-alive on both sides (origin-form upstream, hop-by-hop fields and
 * proxy credentials stripped, nothing added that identifies the client),
 * responses relayed with correct framing, `CONNECT host:port` tunnels, and
 * the refusals: 400 for anything malformed or ambiguous, 403 with
 * `x-proxy-error` and a JSON body for policy blocks, 502 when the upstream
 * fails and 504 when it does not connect or answer in time (also with
 * `x-proxy-error` and a JSON body), 503 past the connection bound.
 *
 * `x-unix-socket: /abs/path` on an absolute-form request sends it to that
 * unix socket instead of the target host, when the path is allowlisted
 * (rules in proxy/unix_forward.ts); the header is removed before
 * forwarding, the URL's host is not judged (it only fills `Host`), the
 * method rules of `limited` mode still apply, and the decision is logged
 * with host `unix:/abs/path` and port 0. Otherwise: 403, reason
 * `unix_socket_not_allowed`, never connected. CONNECT with the header is
 * refused (`unix_socket_unsupported`): a tunnel to a socket would bypass the
 * per-request method check, and no common client asks for it.
 *
 * Every request is decided by `decideRequest()` (policy/decide_request.ts)
 * through `ProxyRuntime.decide`; this file only describes the request and
 * acts on the verdict.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import type { ProxyProtocol } from "./decision_log.ts";
import {
  BufferedReader,
  copyBody,
  headerTokens,
  headerValues,
  type HttpHeader,
  HttpParseError,
  latin1Encode,
  readRequestHead,
  readResponseHead,
  requestBodyFraming,
  type RequestHead,
  responseBodyFraming,
  type ResponseHead,
  serializeRequestHead,
  serializeResponseHead,
  stripHopByHop,
  writeAll,
} from "./http_parser.ts";
import { DENY_REASONS } from "../policy/reasons.ts";
import { prependBytes, relay } from "./relay.ts";
import { BadRequest, parseAbsoluteTarget, parseAuthority, sameHost } from "./request_parts.ts";
import type { ConnectionSlot } from "./connection_slot.ts";
import type { MitmContext, ProxyRuntime, Verdict } from "./runtime.ts";
import { UpstreamError } from "./upstream.ts";
import {
  connectAllowedUnixSocket,
  UnixForwardError,
  X_UNIX_SOCKET_HEADER,
} from "./unix_forward.ts";

/** An `x-unix-socket` target that changed between the decision and the connect (403). */
class UnixRefused extends Error {
  readonly verdict: Extract<Verdict, { decision: "deny" }>;
  constructor(verdict: Extract<Verdict, { decision: "deny" }>) {
    super(verdict.detail);
    this.name = "UnixRefused";
    this.verdict = verdict;
  }
}

/** Checks the Host header against the target: exactly one (required in HTTP/1.1), same host and port. */
function checkHostHeader(
  head: RequestHead,
  host: string,
  port: number,
  defaultPort: number | null,
): void {
  const values = headerValues(head.headers, "host");
  if (values.length > 1) throw new BadRequest("More than one Host header");
  if (values.length === 0) {
    if (head.version === "HTTP/1.1" && head.method !== "CONNECT") {
      throw new BadRequest("Missing Host header");
    }
    return;
  }
  const given = parseAuthority(values[0]);
  if (!sameHost(given.host, host)) {
    throw new BadRequest(`Host header "${values[0]}" does not match the request target`);
  }
  const givenPort = given.port ?? defaultPort;
  if (givenPort !== null && givenPort !== port) {
    throw new BadRequest(`Host header "${values[0]}" does not match the request target's port`);
  }
}

function simpleResponse(
  status: number,
  reason: string,
  headers: [string, string][],
  body: string,
): Uint8Array {
  const bodyBytes = new TextEncoder().encode(body);
  let text = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (const [name, value] of headers) text += `${name}: ${value}\r\n`;
  text += `Content-Length: ${bodyBytes.length}\r\nConnection: close\r\n\r\n`;
  const head = latin1Encode(text);
  const out = new Uint8Array(head.length + bodyBytes.length);
  out.set(head);
  out.set(bodyBytes, head.length);
  return out;
}

/** Answers a plain-text response and closes (internal). */
export async function sendText(
  conn: Deno.Conn,
  status: number,
  reason: string,
  message: string,
): Promise<void> {
  try {
    await writeAll(
      conn,
      simpleResponse(
        status,
        reason,
        [["Content-Type", "text/plain; charset=utf-8"]],
        message + "\n",
      ),
    );
  } catch {
    // The client is gone.
  }
}

/** The JSON body of a 403 (fields per testdata/conformance/blocked_responses.json). */
export function blockedBody(
  verdict: Extract<Verdict, { decision: "deny" }>,
  protocol: ProxyProtocol,
): string {
  const info = DENY_REASONS[verdict.reason];
  return JSON.stringify({
    status: 403,
    decision: "deny",
    reason: verdict.reason,
    host: verdict.host,
    port: verdict.port,
    protocol,
    method: verdict.event.method,
    rule: verdict.event.rule,
    source: verdict.event.source,
    message: info.message,
    detail: verdict.detail,
  });
}

/** Answers 403 with `x-proxy-error` and the JSON body (internal). */
export async function sendBlocked(
  conn: Deno.Conn,
  verdict: Extract<Verdict, { decision: "deny" }>,
  protocol: ProxyProtocol,
): Promise<void> {
  const info = DENY_REASONS[verdict.reason];
  try {
    await writeAll(
      conn,
      simpleResponse(403, "Forbidden", [
        ["Content-Type", "application/json"],
        ["x-proxy-error", info.xProxyError],
      ], blockedBody(verdict, protocol) + "\n"),
    );
  } catch {
    // The client is gone.
  }
}

/**
 * Why an allowed request or tunnel could not be delivered. These are not
 * policy decisions, so they stay out of the deny-reason table
 * (policy/reasons.ts); their `x-proxy-error` values sit beside the MITM
 * handler's `upstream-error` and `upstream-tls-error`.
 */
type GatewayFailure = "upstream_error" | "upstream_timeout";

const GATEWAY_FAILURES: Readonly<
  Record<
    GatewayFailure,
    { status: number; statusText: string; xProxyError: string; message: string }
  >
> = Object.freeze({
  upstream_error: {
    status: 502,
    statusText: "Bad Gateway",
    xProxyError: "upstream-error",
    message: "The upstream server could not be reached or sent an invalid response",
  },
  upstream_timeout: {
    status: 504,
    statusText: "Gateway Timeout",
    xProxyError: "upstream-timeout",
    message: "The upstream server did not connect or answer in time",
  },
});

/** Where an allowed request was going, for the body of a 502 / 504. */
interface GatewayTarget {
  readonly host: string;
  readonly port: number;
  readonly protocol: ProxyProtocol;
  readonly method: string | null;
}

/** Answers 502 (504 for a timeout) with `x-proxy-error` and a JSON body shaped like a 403's. */
async function sendBadGateway(
  conn: Deno.Conn,
  error: unknown,
  target: GatewayTarget,
): Promise<void> {
  const failure: GatewayFailure = error instanceof UpstreamError && error.code === "timeout"
    ? "upstream_timeout"
    : "upstream_error";
  const info = GATEWAY_FAILURES[failure];
  const body = JSON.stringify({
    status: info.status,
    reason: failure,
    host: target.host,
    port: target.port,
    protocol: target.protocol,
    method: target.method,
    message: info.message,
    detail: errorMessage(error),
  });
  try {
    await writeAll(
      conn,
      simpleResponse(info.status, info.statusText, [
        ["Content-Type", "application/json"],
        ["x-proxy-error", info.xProxyError],
      ], body + "\n"),
    );
  } catch {
    // The client is gone.
  }
}

/** An upstream connection kept for the next request (internal). */
export interface UpstreamLink {
  readonly key: string;
  readonly conn: Deno.Conn;
  readonly reader: BufferedReader;
}

/** The `x-unix-socket` value, or null; more than one is ambiguous (400). */
function unixSocketHeader(head: RequestHead): string | null {
  const values = headerValues(head.headers, X_UNIX_SOCKET_HEADER);
  if (values.length > 1) throw new BadRequest(`More than one ${X_UNIX_SOCKET_HEADER} header`);
  return values.length === 0 ? null : values[0];
}

/**
 * Serves one HTTP proxy client connection until it closes (internal: called
 * by the server with the connection's buffered reader).
 */
/**
 * Reads a client's next request head within the header timeout. Null when
 * the client is done or sent something unparsable (answered with a 400,
 * except a connection that just ended); the slot is idle-watched again once
 * a head is in.
 */
export async function readClientHead(
  conn: Deno.Conn,
  reader: BufferedReader,
  runtime: ProxyRuntime,
  slot: ConnectionSlot,
): Promise<RequestHead | null> {
  slot.expectWithin(runtime.limits.headerTimeoutMs);
  let head: RequestHead | null;
  try {
    head = await readRequestHead(reader, runtime.httpLimits);
  } catch (error) {
    if (error instanceof HttpParseError && error.code !== "unexpected_eof") {
      await sendText(conn, 400, "Bad Request", error.message);
    }
    return null;
  }
  if (head !== null) slot.unwatch();
  return head;
}

export async function handleHttpClient(
  conn: Deno.Conn,
  reader: BufferedReader,
  runtime: ProxyRuntime,
  slot: ConnectionSlot,
): Promise<void> {
  const link: { current: UpstreamLink | null } = { current: null };
  for (;;) {
    const head = await readClientHead(conn, reader, runtime, slot);
    if (head === null) return;
    try {
      if (head.method === "CONNECT") {
        await handleConnect(conn, reader, head, runtime, slot);
        return;
      }
      if (!(await forward(conn, reader, head, runtime, slot, link))) return;
    } catch (error) {
      if (error instanceof BadRequest || error instanceof HttpParseError) {
        await sendText(conn, 400, "Bad Request", error.message);
      }
      return;
    }
  }
}

async function handleConnect(
  conn: Deno.Conn,
  reader: BufferedReader,
  head: RequestHead,
  runtime: ProxyRuntime,
  slot: ConnectionSlot,
): Promise<void> {
  const target = parseAuthority(head.target);
  if (target.port === null) throw new BadRequest("CONNECT needs host:port");
  checkHostHeader(head, target.host, target.port, null);
  if (requestBodyFraming(head).kind !== "none") {
    throw new BadRequest("CONNECT must not have a body");
  }
  const verdict = await runtime.decide({
    door: "https-connect",
    host: target.host,
    port: target.port,
    method: null,
    unixSocket: unixSocketHeader(head),
  });
  if (verdict.decision === "deny") {
    await sendBlocked(conn, verdict, "https-connect");
    return;
  }
  const established = latin1Encode("HTTP/1.1 200 Connection Established\r\n\r\n");
  await tunnelAllowed(conn, reader, verdict, runtime, slot, {
    established,
    protocol: "https-connect",
  });
}

/**
 * Serves an allowed tunnel (internal): in limited mode with MITM the
 * handler terminates TLS; otherwise connects to the checked addresses and
 * relays. `established` is written to the client first (a CONNECT's 200);
 * null for a captured connection, which has nothing to answer: there, a
 * failed connect just closes it.
 */
export async function tunnelAllowed(
  conn: Deno.Conn,
  reader: BufferedReader,
  verdict: Extract<Verdict, { decision: "allow" }>,
  runtime: ProxyRuntime,
  slot: ConnectionSlot,
  options: { established: Uint8Array | null; protocol: ProxyProtocol },
): Promise<void> {
  const { established, protocol } = options;
  const mitm = runtime.mitm;
  if (mitm !== null && runtime.terminates(verdict.host)) {
    if (established !== null) await writeAll(conn, established);
    slot.watchIdle();
    await mitm.handleTunnel(
      prependBytes(conn, reader.take()),
      { host: verdict.host, port: verdict.port, addresses: [...verdict.addresses] },
      mitmContext(verdict, runtime, slot),
    ).catch(() => {});
    return;
  }
  let upstream: Deno.TcpConn;
  try {
    upstream = await runtime.connect(
      { host: verdict.host, port: verdict.port, addresses: verdict.addresses },
      protocol,
    );
  } catch (error) {
    if (established === null) return;
    await sendBadGateway(conn, error, {
      host: verdict.host,
      port: verdict.port,
      protocol,
      method: null,
    });
    return;
  }
  slot.add(upstream);
  if (slot.closed) return;
  if (established !== null) await writeAll(conn, established);
  slot.watchIdle();
  await relay(conn, upstream, {
    buffers: runtime.buffers,
    onActivity: slot.touch,
    initialAtoB: reader.take(),
  });
}

function mitmContext(
  verdict: Extract<Verdict, { decision: "allow" }>,
  runtime: ProxyRuntime,
  slot: ConnectionSlot,
): MitmContext {
  const target = { host: verdict.host, port: verdict.port, addresses: verdict.addresses };
  const tunnel = { ...target, rule: verdict.rule, ruleSource: verdict.ruleSource };
  return {
    mode: runtime.mode(),
    target,
    httpLimits: runtime.httpLimits,
    signal: runtime.signal,
    decide: (request) =>
      runtime.decide({
        door: "mitm",
        host: request.host,
        port: request.port,
        method: request.method,
        upgrade: request.upgrade ? "upgrade" : null,
        body: request.body,
        malformed: request.malformed,
        tunnel,
        target: request.target ?? null,
        headers: request.headers ?? null,
      }),
    rewrite: (headers, verdict) =>
      verdict.decision === "allow" ? runtime.rewrite(headers, verdict) : [...headers],
    log: runtime.record,
    slot,
    async connect() {
      const upstream = await runtime.connect(target, "https-connect");
      slot.add(upstream);
      return upstream;
    },
  };
}

function isUpgradeRequest(head: RequestHead): string | null {
  const upgrade = headerValues(head.headers, "upgrade");
  if (upgrade.length === 0) return null;
  if (!headerTokens(head.headers, "connection").includes("upgrade")) return null;
  return upgrade.join(", ");
}

/** A response body at most this long, already read with its head, is sent in the head's write. */
const SAME_WRITE_BODY_BYTES = 64 * 1024;

/**
 * Forwards one absolute-form request; resolves true when the client
 * connection can carry another. `captured`: a request a program sent
 * directly to a captured port 80 (door `captured-http`, with the Host it
 * sent and the connecting program).
 */
export async function forward(
  conn: Deno.Conn,
  reader: BufferedReader,
  head: RequestHead,
  runtime: ProxyRuntime,
  slot: ConnectionSlot,
  link: { current: UpstreamLink | null },
  captured: { program: string | null; serverName: string | null } | null = null,
): Promise<boolean> {
  const protocol: ProxyProtocol = captured === null ? "http" : "captured-http";
  const target = parseAbsoluteTarget(head.target, "http");
  checkHostHeader(head, target.host, target.port, 80);
  const framing = requestBodyFraming(head);
  const upgrade = isUpgradeRequest(head);
  const socketPath = unixSocketHeader(head);
  // Where the request goes: a checked TCP target, or an allowlisted unix socket.
  let key: string;
  let connectUpstream: () => Promise<Deno.Conn>;
  let where: GatewayTarget;
  const verdict = await runtime.decide({
    door: protocol,
    host: target.host,
    port: target.port,
    method: head.method,
    upgrade,
    body: framing.kind !== "none",
    unixSocket: socketPath,
    ...(captured === null ? {} : captured),
    target: target.path,
    headers: head.headers,
  });
  if (verdict.decision === "deny") {
    await sendBlocked(conn, verdict, protocol);
    return false;
  }
  const canonicalSocket = verdict.unixSocket;
  if (socketPath === null || canonicalSocket === null) {
    key = `${verdict.host}|${verdict.port}|${verdict.addresses.join(",")}`;
    where = { host: verdict.host, port: verdict.port, protocol, method: head.method };
    connectUpstream = () =>
      runtime.connect(
        { host: verdict.host, port: verdict.port, addresses: verdict.addresses },
        protocol,
      );
  } else {
    key = `unix|${canonicalSocket}`;
    where = { host: verdict.host, port: 0, protocol: "http", method: head.method };
    connectUpstream = async () => {
      try {
        return (await connectAllowedUnixSocket(socketPath, runtime.unixSockets())).conn;
      } catch (error) {
        if (!(error instanceof UnixForwardError)) throw error;
        // The connect re-checks the same guard (the path changed since the decision): the
        // refusal is logged too, under the reason the decision would give now.
        const event = runtime.event({
          host: verdict.host,
          port: 0,
          protocol: "http",
          method: head.method,
          decision: "deny",
          reason: "unix_socket_not_allowed",
          rule: verdict.rule,
          source: verdict.ruleSource,
          guard: "baseline_policy",
        });
        runtime.record(event);
        throw new UnixRefused({
          decision: "deny",
          reason: "unix_socket_not_allowed",
          source: "baseline_policy",
          rule: verdict.rule,
          ruleSource: verdict.ruleSource,
          host: verdict.host,
          port: 0,
          detail: error.message,
          event,
        });
      }
    };
  }

  const headers: HttpHeader[] = runtime.rewrite(stripHopByHop(head.headers), verdict).filter(
    (header) => header.name.toLowerCase() !== X_UNIX_SOCKET_HEADER,
  );
  if (headerValues(headers, "host").length === 0) {
    headers.unshift({ name: "Host", value: target.authority });
  }
  if (upgrade !== null) {
    headers.push({ name: "Connection", value: "upgrade" }, { name: "Upgrade", value: upgrade });
  }
  const outHead = serializeRequestHead({
    method: head.method,
    target: target.path,
    version: head.version,
    headers,
  });

  slot.watchIdle();
  let up: UpstreamLink;
  let reused = false;
  const open = async (): Promise<UpstreamLink | null> => {
    if (link.current !== null) {
      slot.drop(link.current.conn);
      link.current = null;
    }
    try {
      const upstream = await connectUpstream();
      slot.add(upstream);
      link.current = { key, conn: upstream, reader: new BufferedReader(upstream, 4096) };
      return link.current;
    } catch (error) {
      if (error instanceof UnixRefused) await sendBlocked(conn, error.verdict, "http");
      else await sendBadGateway(conn, error, where);
      return null;
    }
  };
  if (link.current !== null && link.current.key === key) {
    up = link.current;
    reused = true;
  } else {
    const opened = await open();
    if (opened === null) return false;
    up = opened;
  }
  if (slot.closed) return false;

  // Send the head; a reused connection the server closed meanwhile gets one fresh retry.
  let response: ResponseHead | null = null;
  let bodyDone: Promise<void> = Promise.resolve();
  let bodyFinished = framing.kind === "none";
  let bodyError: unknown = null;
  const startBody = (target: UpstreamLink) => {
    if (framing.kind === "none") return;
    bodyDone = copyBody(reader, target.conn, framing, {
      buffers: runtime.buffers,
      onActivity: slot.touch,
      limits: runtime.httpLimits,
    }).then(
      () => {
        bodyFinished = true;
      },
      (error) => {
        bodyError = error;
        slot.drop(target.conn);
      },
    );
  };
  // Waiting for the response head, the idle timeout drops the upstream and
  // answers 504 instead of closing the client connection without a word.
  let timedOut = false;
  slot.watchIdle(() => {
    timedOut = true;
    slot.drop(up.conn);
  });
  for (let attempt = 0;; attempt++) {
    try {
      if (timedOut) throw new Error("Timed out while reconnecting"); // During the retry's connect.
      await writeAll(up.conn, outHead);
      startBody(up);
      response = await readInformational(up, conn, head);
      slot.watchIdle();
      break;
    } catch (error) {
      if (timedOut) {
        // The client connection closes too: its request body may still be on its way.
        if (link.current !== null) slot.drop(link.current.conn);
        link.current = null;
        await sendBadGateway(
          conn,
          new UpstreamError(
            "timeout",
            `No response from the upstream within ${runtime.limits.idleTimeoutMs} ms`,
            { cause: error },
          ),
          where,
        );
        return false;
      }
      if (bodyError !== null) {
        await bodyDone;
        await sendText(conn, 400, "Bad Request", errorMessage(bodyError));
        return false;
      }
      const retry = reused && attempt === 0 && framing.kind === "none" &&
        !(error instanceof HttpParseError && error.code !== "unexpected_eof");
      if (!retry) {
        await sendBadGateway(
          conn,
          error instanceof HttpParseError ? new Error(`Invalid response: ${error.message}`) : error,
          where,
        );
        return false;
      }
      const opened = await open();
      if (opened === null) return false;
      up = opened;
      reused = false;
    }
  }

  if (response.status === 101) {
    if (upgrade === null) {
      await sendBadGateway(
        conn,
        new Error("Upstream switched protocols without an upgrade request"),
        where,
      );
      return false;
    }
    await writeAll(conn, serializeResponseHead({ ...response, version: "HTTP/1.1" }));
    link.current = null;
    await relay(prependBytes(conn, reader.take()), prependBytes(up.conn, up.reader.take()), {
      buffers: runtime.buffers,
      onActivity: slot.touch,
    });
    return false;
  }

  let responseFraming;
  try {
    responseFraming = responseBodyFraming(response, head.method);
  } catch (error) {
    await sendBadGateway(conn, new Error(`Invalid response: ${errorMessage(error)}`), where);
    return false;
  }
  const clientClose = head.version === "HTTP/1.0" ||
    headerTokens(head.headers, "connection").includes("close");
  const keepClient = !clientClose && responseFraming.kind !== "until_close";
  const outHeaders = stripHopByHop(response.headers);
  if (!keepClient) outHeaders.push({ name: "Connection", value: "close" });
  const responseHead = serializeResponseHead({
    version: "HTTP/1.1",
    status: response.status,
    reason: response.reason,
    headers: outHeaders,
  });
  const small = responseFraming.kind === "length" &&
      responseFraming.length <= SAME_WRITE_BODY_BYTES &&
      up.reader.buffered >= responseFraming.length
    ? responseFraming.length
    : -1;
  if (small >= 0) {
    // The whole (small) body came with the head: send both in one write, one
    // segment and one wake-up of the client per response instead of two.
    const out = new Uint8Array(responseHead.length + small);
    out.set(responseHead);
    out.set(up.reader.peek().subarray(0, small), responseHead.length);
    up.reader.consume(small);
    slot.touch();
    await writeAll(conn, out);
  } else {
    await writeAll(conn, responseHead);
    try {
      await copyBody(up.reader, conn, responseFraming, {
        buffers: runtime.buffers,
        onActivity: slot.touch,
        limits: runtime.httpLimits,
      });
    } catch {
      return false; // Upstream broke mid-body: the client sees the connection close.
    }
  }
  const keepUpstream = responseFraming.kind !== "until_close" && response.version === "HTTP/1.1" &&
    head.version === "HTTP/1.1" && !headerTokens(response.headers, "connection").includes("close");
  if (!bodyFinished) {
    // The upstream answered before reading the whole request body; the
    // rest of that body would be misread as the next request, so stop here.
    return false;
  }
  await bodyDone;
  if (bodyError !== null) return false;
  if (!keepUpstream && link.current !== null) {
    slot.drop(link.current.conn);
    link.current = null;
  }
  return keepClient;
}

/** Reads the response head, forwarding 1xx interim responses (except 101) to HTTP/1.1 clients. */
async function readInformational(
  up: UpstreamLink,
  client: Deno.Conn,
  request: RequestHead,
): Promise<ResponseHead> {
  for (;;) {
    const response = await readResponseHead(up.reader);
    if (response.status >= 200 || response.status === 101) return response;
    if (request.version === "HTTP/1.1") {
      await writeAll(
        client,
        serializeResponseHead({
          ...response,
          version: "HTTP/1.1",
          headers: stripHopByHop(response.headers),
        }),
      );
    }
  }
}

/** Past the connection bound: read the head (briefly), answer 503 and close. */
export async function refuseHttpOverload(
  conn: Deno.Conn,
  reader: BufferedReader,
  runtime: ProxyRuntime,
  slot: ConnectionSlot,
): Promise<void> {
  slot.expectWithin(Math.min(runtime.limits.headerTimeoutMs, 5000));
  try {
    await readRequestHead(reader, runtime.httpLimits);
  } catch {
    // Answer anyway.
  }
  await sendText(
    conn,
    503,
    "Service Unavailable",
    "The proxy has too many connections: try again later",
  );
}

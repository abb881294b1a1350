/**
 * What the proxy's protocol handlers (proxy/http_proxy.ts, proxy/socks5.ts)
 * share with the server that runs them (proxy/server.ts): the limits, the
 * runtime they are handed, the verdict shape and the MITM contract. The
 * handlers import this file, never the server, so the server is the only
 * file that imports them.
 *
 * @module
 */
import type { NetworkMode } from "../profiles/types.ts";
import type { RequestDoor, RequestFacts, RequestVerdict } from "../policy/decide_request.ts";
import type { ConnectionSlot } from "./connection_slot.ts";
import type { DecisionEvent, ProxyProtocol } from "./decision_log.ts";
import type { HttpHeader, HttpLimits } from "./http_parser.ts";
import type { BufferPool } from "./relay.ts";
import type { ConnectTarget } from "./upstream.ts";
import type { UnixSocketEntry } from "./unix_forward.ts";

/** Timeouts and bounds of the proxy. Every field can be overridden in `ProxyOptions.limits`. */
export interface ProxyLimits {
  /** Time a client has to send a complete request head (also the keep-alive idle time). */
  readonly headerTimeoutMs: number;
  /** Time a SOCKS5 client has to finish greeting and request. */
  readonly socksHandshakeTimeoutMs: number;
  /** Time to establish one outgoing connection (per address tried). */
  readonly connectTimeoutMs: number;
  /**
   * A tunnel or a request in flight with no bytes either way for this long is
   * closed; a request still waiting for its response head is answered 504 first.
   */
  readonly idleTimeoutMs: number;
  /** Most client connections at once; more are refused (HTTP 503, SOCKS5 0x01). */
  readonly maxConnections: number;
  /** Largest request head in bytes. */
  readonly maxHeadBytes: number;
  /** Most header fields in a request head. */
  readonly maxHeaders: number;
}

/** Default timeouts and bounds. */
export const PROXY_LIMITS: ProxyLimits = Object.freeze({
  headerTimeoutMs: 30_000,
  socksHandshakeTimeoutMs: 15_000,
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  maxConnections: 2048,
  maxHeadBytes: 64 * 1024,
  maxHeaders: 100,
});

/** What a MITM handler knows of one request inside the tunnel (see `RequestFacts`). */
export interface MitmRequest {
  /** The method. */
  readonly method: string;
  /** The host the request names (absolute-form target or its single Host), "" when none. */
  readonly host: string;
  /** The port it names (443 when none is written), 0 when no host. */
  readonly port: number;
  /** It asks for a protocol upgrade (WebSocket). */
  readonly upgrade: boolean;
  /** It carries a body. */
  readonly body: boolean;
  /** Why its body framing is malformed, or null. */
  readonly malformed: string | null;
  /** The origin-form target (path and query). */
  readonly target?: string;
  /** The request's headers. */
  readonly headers?: readonly HttpHeader[];
}

/** What the proxy lets a MITM handler do inside a TLS tunnel it terminated. */
export interface MitmContext {
  /** The network mode the tunnel was opened under. */
  readonly mode: NetworkMode;
  /** The tunnel target (as decided for the CONNECT). */
  readonly target: {
    readonly host: string;
    readonly port: number;
    readonly addresses: readonly string[];
  };
  /** Head limits to pass to the HTTP parser inside the tunnel. */
  readonly httpLimits: HttpLimits;
  /** Aborted when the proxy closes. */
  readonly signal: AbortSignal;
  /**
   * Decides one request seen inside the tunnel with `decideRequest()` (door
   * `mitm`: the request must name the tunnel's host and port, the mode guard
   * applies) and logs it. Never throws.
   */
  decide(request: MitmRequest): Promise<Verdict>;
  /** Logs an event the handler built itself (rarely needed; see `decide`). */
  log(event: DecisionEvent): void;
  /** The headers to forward for an allowed request (request rule actions, secrets). */
  rewrite?(headers: readonly HttpHeader[], verdict: Verdict): HttpHeader[];
  /** Connects to the checked target addresses (never resolving again; through the upstream proxy if any). */
  connect(): Promise<Deno.TcpConn>;
  /** The connection's slot: the tunnel's deadlines, idle watch and activity go there. */
  readonly slot: ConnectionSlot;
}

/**
 * Terminates TLS for limited-mode CONNECT tunnels so the method can be
 * checked. Called after the proxy answered `200` to the CONNECT; from then on
 * the handler owns `client` (the proxy still closes it when shutting down).
 */
export interface MitmHandler {
  /** Serves the tunnel until it ends; should not reject (errors are logged and the client closed). */
  handleTunnel(
    client: Deno.Conn,
    target: { host: string; port: number; addresses: string[] },
    context: MitmContext,
  ): Promise<void>;
}

/** The verdict of `decideRequest()` for one connection or request, with its logged event. */
export type Verdict = RequestVerdict & { readonly event: DecisionEvent };

/** What the handlers describe for one request: `decideRequest()`'s facts. */
export type DecisionRequest = RequestFacts;

/** What the protocol handlers need from the proxy (internal to proxy/). */
export interface ProxyRuntime {
  /** Effective limits. */
  readonly limits: ProxyLimits;
  /** Head limits derived from them. */
  readonly httpLimits: HttpLimits;
  /** Large relay buffers. */
  readonly buffers: BufferPool;
  /** The MITM handler, if any. */
  readonly mitm: MitmHandler | null;
  /** Aborted when the proxy closes. */
  readonly signal: AbortSignal;
  /** The current network mode. */
  mode(): NetworkMode;
  /** Whether a captured connection to `host:port` speaks TLS by a `tls://host:PORT` rule. */
  marksTls(host: string, port: number): boolean;
  /** Whether CONNECT to `host` is terminated (limited mode, request rules, a bound secret). */
  terminates(host: string): boolean;
  /** The headers to forward for an allowed request (rule actions, secrets). */
  rewrite(
    headers: readonly HttpHeader[],
    verdict: Extract<RequestVerdict, { decision: "allow" }>,
  ): HttpHeader[];
  /** Decides, logs and reports one request. Never throws. */
  decide(request: DecisionRequest): Promise<Verdict>;
  /** Logs and reports an event. */
  record(event: DecisionEvent): void;
  /** Builds an event (time now, command of the run). */
  event(fields: Omit<DecisionEvent, "time" | "command">): DecisionEvent;
  /** Connects out to checked addresses. Throws UpstreamError. */
  connect(target: ConnectTarget, protocol: ProxyProtocol): Promise<Deno.TcpConn>;
  /**
   * What `x-unix-socket` may name under the current config: the allowlist
   * (or `"all"`), and the proxy's own unix socket, which is never a target.
   */
  unixSockets(): {
    readonly allowed: readonly UnixSocketEntry[] | "all";
    readonly exclude: readonly string[];
  };
}

/** The protocol a door is logged as: a request inside a MITM tunnel is still `https-connect`. */
export function protocolOf(door: RequestDoor): ProxyProtocol {
  return door === "mitm" ? "https-connect" : door;
}

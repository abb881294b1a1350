/**
 * The egress proxy: HTTP (absolute-form and CONNECT) and SOCKS5 listeners on
 * loopback TCP and on one unix socket (first byte 0x05 => SOCKS5, else
 * HTTP), every connection decided by the network policy, decisions logged.
 *
 * Per connection the flow is: parse strictly -> decide (policy, method
 * policy, optional ask) -> log -> connect to exactly the checked addresses
 * (never to the proxy itself, through the upstream proxy when configured) ->
 * relay. Timeouts (head read, SOCKS handshake, connect, idle tunnel) and a
 * bound on concurrent connections keep a hostile client from holding
 * resources; their defaults are {@linkcode PROXY_LIMITS}.
 *
 * @example
 * ```ts
 * await using proxy = await startProxy({ config, resolver: createResolver() });
 * console.log(proxy.http, proxy.socks);
 * ```
 *
 * @module
 */
import { ConfigError, errorMessage, SandboxError } from "../errors.ts";
import type { EffectiveConfig, NetworkMode } from "../profiles/types.ts";
import { parseIpLiteral } from "../policy/address.ts";
import { HOST_LOOPBACK_ADDRESS, HOST_LOOPBACK_ALIAS } from "../policy/loopback.ts";
import type { DecisionEvent, DecisionLog, ProxyProtocol } from "./decision_log.ts";
import { formatCommand, openDecisionLog } from "./decision_log.ts";
import { BufferedReader, type HttpLimits } from "./http_parser.ts";
import { handleHttpClient, refuseHttpOverload } from "./http_proxy.ts";
import {
  type AskQuestion,
  decideRequest,
  isOwnListener,
  type RequestDoor,
  type RequestFacts,
  type RequestVerdict,
  type UnixSocketCheck,
} from "../policy/decide_request.ts";
import { compileNetworkPolicy, type NetworkPolicy } from "../policy/policy.ts";
import { BufferPool } from "./relay.ts";
import type { Resolver } from "./resolver.ts";
import { handleSocks5Client, refuseSocksOverload } from "./socks5.ts";
import { type ConnectTarget, connectTarget, type UpstreamProxyConfig } from "./upstream.ts";
import {
  checkAllowedUnixSocket,
  UnixForwardError,
  unixSocketAllowlist,
  type UnixSocketEntry,
} from "./unix_forward.ts";

export type { DecisionEvent, ProxyProtocol } from "./decision_log.ts";

/** Timeouts and bounds of the proxy. Every field can be overridden in {@linkcode ProxyOptions.limits}. */
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
  /** Connects to the checked target addresses (never resolving again; through the upstream proxy if any). */
  connect(): Promise<Deno.TcpConn>;
  /** Notes that bytes moved in the tunnel, so the proxy's idle timeout does not close an active one. */
  touch?(): void;
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

/** A listen address. */
export interface ListenAddress {
  /** Loopback IP (or, with `dangerously_allow_non_loopback_proxy`, any). */
  hostname: string;
  /** 0 = any free port. */
  port: number;
}

/** Options for {@linkcode startProxy}. */
export interface ProxyOptions {
  /** The effective configuration; its network policy decides every connection. */
  config: EffectiveConfig;
  /** How allowed names are resolved (with `--resolve` overrides). */
  resolver: Resolver;
  /** HTTP listener; undefined = `network.proxy_url` or 127.0.0.1:0; null = none. */
  http?: ListenAddress | null;
  /** SOCKS5 listener; undefined = `network.socks_url` or 127.0.0.1:0 when SOCKS5 is enabled; null = none. */
  socks?: ListenAddress | null;
  /** One unix socket serving both protocols (first byte 0x05 => SOCKS5, else HTTP). */
  unixPath?: string | null;
  /** Append every decision as a JSON line to this file. */
  logFile?: string | null;
  /** The command of the run, recorded in each decision. */
  command?: readonly string[];
  /** Called for every decision (e.g. for the launcher's end-of-run summary). Must not throw. */
  onDecision?: (event: DecisionEvent) => void;
  /**
   * Consulted only when a host is `not_allowed`; the request waits for the answer. An
   * "allow" admits this one request only: the proxy remembers nothing, so the asker decides
   * what to remember (allow for the run, always, deny for the run).
   */
  askOnMiss?: (
    miss: { host: string; port: number; protocol: ProxyProtocol },
  ) => Promise<"allow" | "deny">;
  /** Limited-mode TLS termination; without it limited-mode CONNECT is refused with `mitm_required`. */
  mitm?: MitmHandler | null;
  /**
   * The proxy serves a sandbox whose loopback is its own (`sandbox run`): loopback literals and
   * names are refused whatever the rules say, and `host.sandbox.internal` stands for the host's
   * 127.0.0.1 (reached only when a rule allows that name; see policy/loopback.ts).
   */
  sandboxLoopback?: boolean;
  /** The launcher's own upstream proxy (from its environment, read once); null = connect directly. */
  upstreamProxy?: UpstreamProxyConfig | null;
  /** Overrides of {@linkcode PROXY_LIMITS} (tests use short timeouts). */
  limits?: Partial<ProxyLimits>;
}

/** A running proxy. Close it (or `await using` it) to stop listening and end every connection. */
export interface RunningProxy extends AsyncDisposable {
  /** The HTTP listener's address, or null. */
  readonly http: Deno.NetAddr | null;
  /** The SOCKS5 listener's address, or null. */
  readonly socks: Deno.NetAddr | null;
  /** The unix socket path, or null. */
  readonly unixPath: string | null;
  /** Swaps in a new configuration for new connections. Throws {@linkcode ConfigError} and keeps the old one when it does not compile. */
  updateConfig(config: EffectiveConfig): void;
  /** Stops listening, closes every connection, waits for handlers to finish. */
  close(): Promise<void>;
}

/** The verdict of `decideRequest()` for one connection or request, with its logged event. */
export type Verdict = RequestVerdict & { readonly event: DecisionEvent };

/** What the handlers describe for one request: `decideRequest()`'s facts. */
export type DecisionRequest = RequestFacts;

/**
 * Per-connection bookkeeping: the sockets to close, a deadline (head read,
 * handshake) and an idle watch (tunnels, requests in flight). One sweeper
 * timer per proxy checks them all, so the hot path sets no timers.
 */
export class ConnectionSlot {
  #conns = new Set<{ close(): void }>();
  #closed = false;
  /** Epoch ms after which the connection is closed, or Infinity. */
  deadline = Infinity;
  /** When idle-watched: the last time bytes moved. */
  lastActivity = 0;
  /** Whether the idle timeout applies now. */
  idleWatch = false;
  /** Runs instead of closing when the idle timeout fires (set by {@linkcode watchIdle}). */
  #onIdle: (() => void) | null = null;

  constructor(conn: { close(): void }) {
    this.#conns.add(conn);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Adds a socket to close with this connection (e.g. the upstream side). */
  add(conn: { close(): void }): void {
    if (this.#closed) {
      safeClose(conn);
      return;
    }
    this.#conns.add(conn);
  }

  /** Forgets (and closes) one socket, e.g. an upstream connection that is being replaced. */
  drop(conn: { close(): void }): void {
    this.#conns.delete(conn);
    safeClose(conn);
  }

  /** Arms the deadline `ms` from now and stops idle watching. */
  expectWithin(ms: number): void {
    this.deadline = Date.now() + ms;
    this.idleWatch = false;
    this.#onIdle = null;
  }

  /**
   * Clears the deadline and starts idle watching. With `onIdle`, the idle
   * timeout calls it (once, then stops watching) instead of closing the
   * connection, so the handler can still answer the client (e.g. a 504).
   */
  watchIdle(onIdle?: () => void): void {
    this.deadline = Infinity;
    this.idleWatch = true;
    this.lastActivity = Date.now();
    this.#onIdle = onIdle ?? null;
  }

  /** Neither deadline nor idle watch (e.g. while the user is being asked). */
  unwatch(): void {
    this.deadline = Infinity;
    this.idleWatch = false;
    this.#onIdle = null;
  }

  /** Called by the sweeper when the deadline or the idle timeout passed. */
  expire(): void {
    const onIdle = this.idleWatch ? this.#onIdle : null;
    if (onIdle === null) {
      this.close();
      return;
    }
    this.idleWatch = false;
    this.#onIdle = null;
    try {
      onIdle();
    } catch {
      this.close();
    }
  }

  /** Notes that bytes moved (bound, so it can be passed as a callback). */
  readonly touch = (): void => {
    this.lastActivity = Date.now();
  };

  /** Closes every socket of this connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const conn of this.#conns) safeClose(conn);
    this.#conns.clear();
  }
}

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

interface PolicyState {
  readonly config: EffectiveConfig;
  readonly policy: NetworkPolicy;
}

/** The protocol a door is logged as: a request inside a MITM tunnel is still `https-connect`. */
export function protocolOf(door: RequestDoor): ProxyProtocol {
  return door === "mitm" ? "https-connect" : door;
}

function isLoopbackHost(hostname: string): boolean {
  if (hostname === "localhost") return true;
  const ip = parseIpLiteral(hostname);
  if (ip === null) return false;
  return (ip.family === 4 && ip.bytes[0] === 127) || ip.canonical === "::1";
}

function parseListenUrl(url: string, key: string): ListenAddress {
  let parsed: URL;
  try {
    parsed = new URL(url.includes("://") ? url : `http://${url}`);
  } catch (error) {
    throw new ConfigError([{
      file: "config",
      keyPath: key,
      message: `Invalid listen address "${url}": expected e.g. "http://127.0.0.1:3128"`,
    }], { cause: error });
  }
  const hostname = parsed.hostname.replace(/^\[|\]$/g, "");
  return { hostname, port: parsed.port === "" ? 0 : Number(parsed.port) };
}

function checkListenHost(address: ListenAddress, config: EffectiveConfig, key: string): void {
  if (isLoopbackHost(address.hostname)) return;
  const network = config.network;
  const unixAllowed = network.dangerouslyAllowAllUnixSockets ||
    network.unixSockets.some((rule) => rule.action === "allow");
  if (!network.dangerouslyAllowNonLoopbackProxy || unixAllowed) {
    const why = !network.dangerouslyAllowNonLoopbackProxy
      ? "set network.dangerously_allow_non_loopback_proxy = true to listen elsewhere"
      : "it must stay on loopback while any unix socket is allowed";
    throw new ConfigError([{
      file: "config",
      keyPath: key,
      message: `The proxy listen address "${address.hostname}" is not loopback: ${why}`,
    }]);
  }
}

function localInterfaceAddresses(): Set<string> {
  const out = new Set<string>();
  try {
    for (const iface of Deno.networkInterfaces()) {
      const ip = parseIpLiteral(iface.address);
      if (ip !== null) out.add(ip.canonical.replace(/%.*$/, ""));
    }
  } catch {
    // Without the list, loopback and wildcard addresses are still recognised.
  }
  return out;
}

/**
 * Starts the proxy's listeners and returns once they are listening.
 * Throws {@linkcode ConfigError} for a forbidden listen address or a policy
 * that does not compile, {@linkcode SandboxError} when a listener cannot start.
 *
 * @example
 * ```ts
 * await using proxy = await startProxy({
 *   config,
 *   resolver: createResolver({ overrides: new Map([["allowed.test", ["127.0.0.2"]]]) }),
 *   http: { hostname: "127.0.0.1", port: 0 },
 *   socks: null,
 * });
 * ```
 */
export async function startProxy(options: ProxyOptions): Promise<RunningProxy> {
  const limits: ProxyLimits = Object.freeze({ ...PROXY_LIMITS, ...options.limits });
  const network = options.config.network;
  let state: PolicyState = { config: options.config, policy: compileNetworkPolicy(network) };

  const httpAddress = options.http === null
    ? null
    : options.http ?? (network.proxyUrl !== null
      ? parseListenUrl(network.proxyUrl, "network.proxy_url")
      : { hostname: "127.0.0.1", port: 0 });
  const socksAddress =
    options.socks === null || (options.socks === undefined && !network.enableSocks5)
      ? null
      : options.socks ?? (network.socksUrl !== null
        ? parseListenUrl(network.socksUrl, "network.socks_url")
        : { hostname: "127.0.0.1", port: 0 });
  if (httpAddress !== null) checkListenHost(httpAddress, options.config, "network.proxy_url");
  if (socksAddress !== null) checkListenHost(socksAddress, options.config, "network.socks_url");

  const abort = new AbortController();
  const slots = new Set<ConnectionSlot>();
  const tasks = new Set<Promise<void>>();
  const listeners: Deno.Listener[] = [];
  const ownPorts = new Set<number>();
  const command = formatCommand(options.command);
  const buffers = new BufferPool();
  const httpLimits: HttpLimits = {
    maxHeadBytes: limits.maxHeadBytes,
    maxHeaders: limits.maxHeaders,
  };
  let log: DecisionLog | null = null;
  let closing: Promise<void> | null = null;
  const interfaceAddresses = localInterfaceAddresses();
  // The proxy's own unix socket (as given and canonical, filled in once listening).
  const ownUnixPaths: string[] = [];

  const ownListeners = { ports: ownPorts, addresses: interfaceAddresses };
  const isSelf = (address: string, port: number): boolean =>
    isOwnListener(address, port, ownListeners);

  const record = (event: DecisionEvent): void => {
    log?.write(event);
    try {
      options.onDecision?.(event);
    } catch (error) {
      console.error(
        `sandbox: onDecision failed: ${error instanceof Error ? error.message : error}`,
      );
    }
  };
  const makeEvent = (fields: Omit<DecisionEvent, "time" | "command">): DecisionEvent => ({
    time: new Date().toISOString(),
    ...fields,
    command,
  });

  // The ask hook sees the door as the protocol the log uses.
  const ask = options.askOnMiss === undefined
    ? undefined
    : (question: AskQuestion): Promise<"allow" | "deny"> =>
      abort.signal.aborted ? Promise.resolve("deny") : options.askOnMiss!({
        host: question.host,
        port: question.port,
        protocol: protocolOf(question.door),
      });

  const resolver: Resolver = options.sandboxLoopback === true
    ? (name) =>
      name === HOST_LOOPBACK_ALIAS
        ? Promise.resolve([HOST_LOOPBACK_ADDRESS])
        : options.resolver(name)
    : options.resolver;

  const checkUnixSocket = async (path: string): Promise<UnixSocketCheck> => {
    try {
      const socket = await checkAllowedUnixSocket(path, runtime.unixSockets());
      return {
        allowed: true,
        canonical: socket.canonical,
        rule: socket.rule,
        ruleSource: socket.source,
      };
    } catch (error) {
      const detail = error instanceof UnixForwardError
        ? error.message
        : `unix socket "${path}" refused: check failed: ${errorMessage(error)}`;
      return { allowed: false, detail };
    }
  };

  /** The one decision per request: every handler comes here. */
  const decide = async (request: RequestFacts): Promise<Verdict> => {
    const current = state;
    const verdict = await decideRequest(request, {
      policy: current.policy,
      resolver,
      sandboxLoopback: options.sandboxLoopback === true,
      socksEnabled: current.config.network.enableSocks5,
      mitm: options.mitm != null,
      ownListeners,
      checkUnixSocket,
      ask,
    });
    const event = makeEvent({
      host: verdict.host,
      port: verdict.port,
      protocol: protocolOf(request.door),
      method: request.method,
      decision: verdict.decision,
      reason: verdict.reason,
      rule: verdict.rule,
      source: verdict.ruleSource,
    });
    record(event);
    return { ...verdict, event };
  };

  const runtime: ProxyRuntime = {
    limits,
    httpLimits,
    buffers,
    mitm: options.mitm ?? null,
    signal: abort.signal,
    mode: () => state.config.network.mode,
    decide,
    record,
    event: makeEvent,
    connect: (target, protocol) =>
      connectTarget(target, {
        timeoutMs: limits.connectTimeoutMs,
        signal: abort.signal,
        upstream: options.upstreamProxy ?? null,
        protocol,
        isSelf,
      }),
    unixSockets: () => ({
      allowed: unixSocketAllowlist(state.config.network),
      exclude: ownUnixPaths,
    }),
  };

  const serve = (conn: Deno.Conn, kind: "http" | "socks" | "unix"): void => {
    const slot = new ConnectionSlot(conn);
    if ("setNoDelay" in conn) {
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch {
        // Not fatal.
      }
    }
    if (slots.size >= limits.maxConnections * 2) {
      // Far past the bound: do not even answer.
      slot.close();
      return;
    }
    slots.add(slot);
    const overloaded = slots.size > limits.maxConnections;
    const task = (async () => {
      try {
        const reader = new BufferedReader(conn, 2048);
        let protocol: "http" | "socks" = kind === "socks" ? "socks" : "http";
        if (kind === "unix") {
          slot.expectWithin(limits.headerTimeoutMs);
          if (!(await reader.fill())) return;
          protocol = reader.peek()[0] === 0x05 ? "socks" : "http";
        }
        if (overloaded) {
          await (protocol === "socks"
            ? refuseSocksOverload(conn, reader, runtime, slot)
            : refuseHttpOverload(conn, reader, runtime, slot));
        } else if (protocol === "socks") {
          await handleSocks5Client(conn, reader, runtime, slot);
        } else {
          await handleHttpClient(conn, reader, runtime, slot);
        }
      } catch {
        // Handlers answer what they can; anything left is a dead connection.
      } finally {
        slot.close();
        slots.delete(slot);
      }
    })();
    tasks.add(task);
    task.finally(() => tasks.delete(task));
  };

  const loops: Promise<void>[] = [];
  const acceptLoop = async (listener: Deno.Listener, kind: "http" | "socks" | "unix") => {
    while (!abort.signal.aborted) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (abort.signal.aborted || error instanceof Deno.errors.BadResource) return;
        // EMFILE and friends: back off briefly instead of spinning.
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      serve(conn, kind);
    }
  };

  const listen = (address: ListenAddress, what: string): Deno.TcpListener => {
    try {
      return Deno.listen({ hostname: address.hostname, port: address.port, transport: "tcp" });
    } catch (error) {
      const why = errorMessage(error);
      throw new SandboxError(
        "proxy_failed",
        `Cannot start the ${what} listener on "${address.hostname}:${address.port}": ${why}`,
        { cause: error },
      );
    }
  };

  const closeAll = async (): Promise<void> => {
    abort.abort();
    clearInterval(sweeper);
    for (const listener of listeners) safeClose(listener);
    for (const slot of slots) slot.close();
    await Promise.allSettled(loops);
    for (const slot of slots) slot.close();
    while (tasks.size > 0) await Promise.allSettled([...tasks]);
    log?.close();
    if (options.unixPath) {
      try {
        Deno.removeSync(options.unixPath);
      } catch {
        // Already gone.
      }
    }
  };

  const tick = Math.max(
    5,
    Math.min(
      1000,
      Math.min(limits.headerTimeoutMs, limits.socksHandshakeTimeoutMs, limits.idleTimeoutMs) / 4,
    ),
  );
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const slot of slots) {
      if (
        now > slot.deadline || (slot.idleWatch && now - slot.lastActivity > limits.idleTimeoutMs)
      ) {
        slot.expire();
      }
    }
  }, tick);

  let httpListener: Deno.TcpListener | null = null;
  let socksListener: Deno.TcpListener | null = null;
  let unixListener: Deno.UnixListener | null = null;
  try {
    if (options.logFile) log = await openDecisionLog(options.logFile);
    if (httpAddress !== null) {
      httpListener = listen(httpAddress, "HTTP proxy");
      listeners.push(httpListener);
      ownPorts.add(httpListener.addr.port);
    }
    if (socksAddress !== null) {
      socksListener = listen(socksAddress, "SOCKS5 proxy");
      listeners.push(socksListener);
      ownPorts.add(socksListener.addr.port);
    }
    if (options.unixPath) {
      try {
        unixListener = Deno.listen({ path: options.unixPath, transport: "unix" });
        Deno.chmodSync(options.unixPath, 0o600);
        ownUnixPaths.push(options.unixPath, Deno.realPathSync(options.unixPath));
      } catch (error) {
        const why = errorMessage(error);
        throw new SandboxError(
          "proxy_failed",
          `Cannot listen on the unix socket "${options.unixPath}": ${why}`,
          {
            cause: error,
          },
        );
      }
      listeners.push(unixListener);
    }
  } catch (error) {
    await closeAll();
    throw error;
  }

  if (httpListener !== null) loops.push(acceptLoop(httpListener, "http"));
  if (socksListener !== null) loops.push(acceptLoop(socksListener, "socks"));
  if (unixListener !== null) loops.push(acceptLoop(unixListener, "unix"));

  const close = (): Promise<void> => closing ??= closeAll();
  return {
    http: httpListener?.addr ?? null,
    socks: socksListener?.addr ?? null,
    unixPath: options.unixPath ?? null,
    updateConfig(config: EffectiveConfig): void {
      const policy = compileNetworkPolicy(config.network);
      state = { config, policy };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

function safeClose(thing: { close(): void }): void {
  try {
    thing.close();
  } catch {
    // Already closed.
  }
}

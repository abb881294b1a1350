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
import type { InjectedHeader } from "../policy/types.ts";
import { type ProxySecrets, resolveInjections, rewriteRequestHeaders } from "./request_actions.ts";
import { ConfigError, errorMessage, SandboxError } from "../errors.ts";
import type { EffectiveConfig } from "../profiles/types.ts";
import { parseIpLiteral } from "../policy/address.ts";
import { HOST_LOOPBACK_ADDRESS, HOST_LOOPBACK_ALIAS } from "../policy/loopback.ts";
import { logSafeHost } from "../policy/host.ts";
import type { DecisionEvent, DecisionLog, ProxyProtocol } from "./decision_log.ts";
import { formatCommand, openDecisionLog } from "./decision_log.ts";
import type { OtlpExporter } from "./otlp.ts";
import { BufferedReader, type HttpLimits } from "./http_parser.ts";
import { handleHttpClient, refuseHttpOverload } from "./http_proxy.ts";
import {
  type AskQuestion,
  decideRequest,
  isOwnListener,
  type RequestFacts,
  type UnixSocketCheck,
} from "../policy/decide_request.ts";
import {
  compileNetworkPolicy,
  type NetworkPolicy,
  tlsMarkingRule,
  warmNetworkPolicy,
} from "../policy/policy.ts";
import { BufferPool } from "./relay.ts";
import { type CapturedTarget, handleCapturedClient, readCaptureHeader } from "./capture.ts";
import type { Resolver } from "./resolver.ts";
import { handleSocks5Client, refuseSocksOverload } from "./socks5.ts";
import { SlotSweeper } from "./connection_slot.ts";
import {
  type MitmHandler,
  protocolOf,
  PROXY_LIMITS,
  type ProxyLimits,
  type ProxyRuntime,
  type Verdict,
} from "./runtime.ts";
import { connectTarget, type UpstreamProxyConfig } from "./upstream.ts";
import { checkAllowedUnixSocket, UnixForwardError, unixSocketAllowlist } from "./unix_forward.ts";

export type { DecisionEvent, ProxyProtocol } from "./decision_log.ts";

export type { MitmContext, MitmHandler, MitmRequest, ProxyLimits } from "./runtime.ts";
export { PROXY_LIMITS } from "./runtime.ts";

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
  /**
   * The capture socket: connections a program inside made directly, handed
   * over by the bridge with a header line (proxy/capture.ts). Only the bridge
   * may reach it: the header is trusted.
   */
  captureUnixPath?: string | null;
  /** Append every decision as a JSON line to this file. */
  logFile?: string | null;
  /** Also send every decision as an OTLP log record (proxy/otlp.ts); null = no export. */
  otlp?: { endpoint: string; headers?: Record<string, string> } | null;
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
  /** The run's secrets: placeholders are refused off their hosts and replaced on them. */
  secrets?: ProxySecrets | null;
  /** Where request rules' `secret_env_var` values are read (default: the launcher's environment). */
  env?: (name: string) => string | undefined;
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
  /**
   * Serves a client accepted elsewhere (the launcher's listeners inside the
   * sandbox): HTTP or SOCKS5, told apart by its first byte, as on the unix socket.
   */
  serveClient(conn: Deno.Conn): void;
  /**
   * Serves a connection the capture accepted inside the sandbox, with what it
   * learnt about it (trusted: it comes from the launcher's own code, not a socket).
   */
  serveCaptured(conn: Deno.Conn, target: CapturedTarget): void;
  /** Stops listening, closes every connection, waits for handlers to finish. */
  close(): Promise<void>;
}

interface PolicyState {
  readonly config: EffectiveConfig;
  readonly policy: NetworkPolicy;
  /** The request rules' injected header values, resolved once. */
  readonly injections: ReadonlyMap<InjectedHeader, string>;
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
  const readEnv = options.env ?? ((name: string) => Deno.env.get(name));
  const compileState = (config: EffectiveConfig): PolicyState => {
    const policy = compileNetworkPolicy(config.network);
    const injections = resolveInjections(config.network.requestRules ?? [], readEnv);
    return { config, policy, injections };
  };
  let state: PolicyState = compileState(options.config);
  const secrets = options.secrets ?? null;

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
  // One timer checks every connection's deadline and idleness (proxy/connection_slot.ts).
  const slots = new SlotSweeper({
    idleTimeoutMs: limits.idleTimeoutMs,
    tickMs: Math.max(
      5,
      Math.min(
        1000,
        Math.min(limits.headerTimeoutMs, limits.socksHandshakeTimeoutMs, limits.idleTimeoutMs) / 4,
      ),
    ),
  });
  const tasks = new Set<Promise<void>>();
  const listeners: Deno.Listener[] = [];
  const ownPorts = new Set<number>();
  const command = formatCommand(options.command);
  const buffers = new BufferPool();
  const httpLimits: HttpLimits = {
    maxHeadBytes: limits.maxHeadBytes,
    maxHeaders: limits.maxHeaders,
  };
  let otlp: OtlpExporter | null = null;
  let log: DecisionLog | null = null;
  let closing: Promise<void> | null = null;
  // Only TCP listeners can be connected to by address; a proxy on unix sockets alone (`sandbox
  // run`) never asks, so the host's interfaces are not listed for it.
  const interfaceAddresses = httpAddress === null && socksAddress === null
    ? new Set<string>()
    : localInterfaceAddresses();
  // The proxy's own unix socket (as given and canonical, filled in once listening).
  const ownUnixPaths: string[] = [];

  // Each listener's own address: another loopback address with the same port is not the proxy.
  const ownBound = new Map<number, string>();
  const ownListeners = { ports: ownPorts, addresses: interfaceAddresses, bound: ownBound };
  const isSelf = (address: string, port: number): boolean =>
    isOwnListener(address, port, ownListeners);

  const record = (event: DecisionEvent): void => {
    log?.write(event);
    otlp?.record(event);
    try {
      options.onDecision?.(event);
    } catch (error) {
      console.error(
        `sandbox: onDecision failed: ${error instanceof Error ? error.message : error}`,
      );
    }
  };
  // Requests within one millisecond share its time string (one Date and ISO formatting each).
  let eventMs = NaN;
  let eventTime = "";
  const eventTimeNow = (): string => {
    const now = Date.now();
    if (now !== eventMs) {
      eventMs = now;
      eventTime = new Date(now).toISOString();
    }
    return eventTime;
  };
  const makeEvent = (fields: Omit<DecisionEvent, "time" | "command">): DecisionEvent => ({
    time: eventTimeNow(),
    ...fields,
    // Every sink (the log, stderr, CI annotations) gets the host from here: a name that is not
    // a valid host name is never written raw.
    host: logSafeHost(fields.host),
    command,
  });

  // The ask hook sees the door as the protocol the log uses. A name that is not a valid host
  // name is never put on the terminal: the answer is no.
  const ask = options.askOnMiss === undefined
    ? undefined
    : (question: AskQuestion): Promise<"allow" | "deny"> =>
      abort.signal.aborted || logSafeHost(question.host) !== question.host
        ? Promise.resolve("deny")
        : options.askOnMiss!({
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
      secrets: secrets?.bindings,
    });
    const wouldBlock = verdict.decision === "allow" ? verdict.wouldBlock : undefined;
    const event = makeEvent({
      host: verdict.host,
      port: verdict.port,
      protocol: protocolOf(request.door),
      method: request.method,
      decision: wouldBlock !== undefined ? "would_block" : verdict.decision,
      reason: wouldBlock?.reason ?? verdict.reason,
      rule: verdict.rule,
      source: verdict.ruleSource,
      ...(request.program === undefined ? {} : { program: request.program }),
      guard: wouldBlock?.source ?? verdict.source,
      ...(verdict.decision === "allow" && verdict.addresses.length > 0
        ? { addresses: verdict.addresses }
        : {}),
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
    marksTls: (host, port) => tlsMarkingRule(state.policy, host, port) !== undefined,
    terminates: (host) =>
      state.config.network.mode === "limited" ||
      (state.policy.requestRules?.has(host) ?? false) ||
      // With secrets, every tunnel is terminated: a placeholder is refused off its hosts only
      // where the proxy can see it.
      (secrets !== null && secrets.bindings.length > 0),
    rewrite: (headers, verdict) =>
      rewriteRequestHeaders(headers, verdict, state.injections, secrets),
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

  const serve = (
    conn: Deno.Conn,
    kind: "http" | "socks" | "unix" | "capture",
    captured?: CapturedTarget,
  ): void => {
    if (abort.signal.aborted) {
      safeClose(conn);
      return;
    }
    const slot = slots.add(conn);
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
      slots.delete(slot);
      return;
    }
    const overloaded = slots.size > limits.maxConnections;
    const task = (async () => {
      try {
        const reader = new BufferedReader(conn, 2048);
        if (kind === "capture") {
          slot.expectWithin(limits.headerTimeoutMs);
          const target = captured ?? await readCaptureHeader(reader);
          if (target === null || overloaded) return;
          slot.unwatch();
          await handleCapturedClient(conn, reader, target, runtime, slot);
          return;
        }
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
  const acceptLoop = async (
    listener: Deno.Listener,
    kind: "http" | "socks" | "unix" | "capture",
  ) => {
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

  const noteBound = (addr: Deno.NetAddr): void => {
    const ip = parseIpLiteral(addr.hostname);
    // Two listeners on one port (HTTP and SOCKS5 on different addresses): count it everywhere.
    if (ip === null || ownBound.has(addr.port)) ownBound.set(addr.port, "0.0.0.0");
    else ownBound.set(addr.port, ip.canonical);
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
    slots.stop();
    for (const listener of listeners) safeClose(listener);
    for (const slot of slots.slots()) slot.close();
    await Promise.allSettled(loops);
    for (const slot of slots.slots()) slot.close();
    while (tasks.size > 0) await Promise.allSettled([...tasks]);
    log?.close();
    await otlp?.close();
    for (const path of [options.unixPath, options.captureUnixPath]) {
      if (!path) continue;
      try {
        Deno.removeSync(path);
      } catch {
        // Already gone.
      }
    }
  };

  let httpListener: Deno.TcpListener | null = null;
  let socksListener: Deno.TcpListener | null = null;
  let unixListener: Deno.UnixListener | null = null;
  let captureListener: Deno.UnixListener | null = null;
  try {
    if (options.logFile) log = await openDecisionLog(options.logFile);
    if (options.otlp) {
      // Loaded only when export is on: the OpenTelemetry SDK stays out of every other start-up.
      const { startOtlpExporter } = await import("./otlp.ts");
      otlp = await startOtlpExporter({
        endpoint: options.otlp.endpoint,
        headers: options.otlp.headers,
      });
    }
    if (httpAddress !== null) {
      httpListener = listen(httpAddress, "HTTP proxy");
      listeners.push(httpListener);
      ownPorts.add(httpListener.addr.port);
      noteBound(httpListener.addr);
    }
    if (socksAddress !== null) {
      socksListener = listen(socksAddress, "SOCKS5 proxy");
      listeners.push(socksListener);
      ownPorts.add(socksListener.addr.port);
      noteBound(socksListener.addr);
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
    if (options.captureUnixPath) {
      try {
        captureListener = Deno.listen({ path: options.captureUnixPath, transport: "unix" });
        Deno.chmodSync(options.captureUnixPath, 0o600);
        // Never an x-unix-socket target: the header it trusts must come from the bridge alone.
        ownUnixPaths.push(options.captureUnixPath, Deno.realPathSync(options.captureUnixPath));
      } catch (error) {
        throw new SandboxError(
          "proxy_failed",
          `Cannot listen on the capture socket "${options.captureUnixPath}": ${
            errorMessage(error)
          }`,
          { cause: error },
        );
      }
      listeners.push(captureListener);
    }
  } catch (error) {
    await closeAll();
    throw error;
  }

  if (httpListener !== null) loops.push(acceptLoop(httpListener, "http"));
  if (socksListener !== null) loops.push(acceptLoop(socksListener, "socks"));
  if (unixListener !== null) loops.push(acceptLoop(unixListener, "unix"));
  if (captureListener !== null) loops.push(acceptLoop(captureListener, "capture"));

  // A large allowlist's rule objects and indexes are built while the proxy waits for work.
  void warmNetworkPolicy(state.policy, { signal: abort.signal });
  const close = (): Promise<void> => closing ??= closeAll();
  return {
    http: httpListener?.addr ?? null,
    socks: socksListener?.addr ?? null,
    unixPath: options.unixPath ?? null,
    updateConfig(config: EffectiveConfig): void {
      state = compileState(config);
      void warmNetworkPolicy(state.policy, { signal: abort.signal });
    },
    serveClient: (conn) => serve(conn, "unix"),
    serveCaptured: (conn, target) => serve(conn, "capture", target),
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

/**
 * Connecting out: to exactly the addresses the policy checked (in order, no
 * second lookup), with a timeout, never to the proxy's own listeners, and
 * through the launcher's own upstream (corporate) proxy when its environment
 * names one, using CONNECT to the checked address.
 *
 * @example
 * ```ts
 * const upstream = upstreamProxyFromEnv(Deno.env.toObject());
 * const conn = await connectTarget(
 *   { host: "allowed.test", port: 80, addresses: ["127.0.0.2"] },
 *   { timeoutMs: 10_000, upstream, protocol: "http" },
 * );
 * ```
 *
 * @module
 */
import { ConfigError, errorMessage } from "../errors.ts";
import { parseIpLiteral } from "../policy/address.ts";
import { normalizeHost } from "../policy/host.ts";
import {
  BufferedReader,
  headerValues,
  HttpParseError,
  latin1Encode,
  readResponseHead,
  writeAll,
} from "./http_parser.ts";
import type { ProxyProtocol } from "./decision_log.ts";
import { prependBytes } from "./relay.ts";

/** One upstream proxy (`http://[user:pass@]host:port`). */
export interface UpstreamProxyServer {
  /** Host name or IP of the upstream proxy. */
  readonly hostname: string;
  /** Its port. */
  readonly port: number;
  /** `Basic …` credentials from the URL, or null. */
  readonly authorization: string | null;
  /** The URL without credentials, for messages. */
  readonly display: string;
}

/** The upstream proxies read from the launcher's environment, once, at start. */
export interface UpstreamProxyConfig {
  /** Used for plain-HTTP (absolute-form) requests: `HTTP_PROXY`, else `HTTPS_PROXY`. */
  readonly http: UpstreamProxyServer | null;
  /** Used for CONNECT and SOCKS5 tunnels: `HTTPS_PROXY`, else `HTTP_PROXY`. */
  readonly https: UpstreamProxyServer | null;
  /** `NO_PROXY` entries (lower-case); `*` means never use the upstream. */
  readonly noProxy: readonly string[];
}

function envValue(env: Record<string, string | undefined>, name: string): string | undefined {
  const value = env[name] ?? env[name.toLowerCase()];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

/** Parses one proxy URL; throws {@linkcode ConfigError} naming the variable when it is not usable. */
export function parseUpstreamProxyUrl(value: string, variable: string): UpstreamProxyServer {
  const problem = (message: string) =>
    new ConfigError([{ file: "environment", keyPath: variable, message }]);
  let url: URL;
  try {
    url = new URL(value.includes("://") ? value : `http://${value}`);
  } catch (error) {
    throw new ConfigError([{
      file: "environment",
      keyPath: variable,
      message: `Invalid proxy URL "${value}": expected http://HOST:PORT`,
    }], { cause: error });
  }
  if (url.protocol !== "http:") {
    throw problem(
      `Unsupported proxy scheme "${url.protocol}" in "${url.host}": expected http://HOST:PORT`,
    );
  }
  if (url.hostname === "") throw problem(`Invalid proxy URL "${value}": expected http://HOST:PORT`);
  const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === "" ? 80 : Number(url.port);
  const authorization = url.username === "" && url.password === "" ? null : "Basic " +
    btoa(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`);
  return { hostname, port, authorization, display: `http://${url.host}` };
}

/**
 * Reads `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (either case) from `env`.
 * Returns null when neither proxy variable is set.
 */
export function upstreamProxyFromEnv(
  env: Record<string, string | undefined>,
): UpstreamProxyConfig | null {
  const httpsValue = envValue(env, "HTTPS_PROXY");
  const httpValue = envValue(env, "HTTP_PROXY");
  if (httpsValue === undefined && httpValue === undefined) return null;
  const https = httpsValue === undefined ? null : parseUpstreamProxyUrl(httpsValue, "HTTPS_PROXY");
  const http = httpValue === undefined ? null : parseUpstreamProxyUrl(httpValue, "HTTP_PROXY");
  const noProxy = (envValue(env, "NO_PROXY") ?? "").split(",").map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");
  return { http: http ?? https, https: https ?? http, noProxy };
}

/** Whether `host` is excluded from the upstream proxy by `NO_PROXY` (suffix match, like curl). */
export function bypassesUpstream(config: UpstreamProxyConfig, host: string): boolean {
  const name = normalizeHost(host);
  return config.noProxy.some((entry) => {
    if (entry === "*") return true;
    const bare = normalizeHost(entry.replace(/^\*?\./, ""));
    return name === bare || name.endsWith(`.${bare}`);
  });
}

/** Why a connection could not be made. */
export type UpstreamErrorCode = "refused" | "unreachable" | "timeout" | "self" | "upstream_proxy";

/** A failed outgoing connection (mapped to 502 / SOCKS reply codes by the caller). */
export class UpstreamError extends Error {
  /** What went wrong. */
  readonly code: UpstreamErrorCode;
  constructor(code: UpstreamErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = "UpstreamError";
    this.code = code;
  }
}

/** Where to connect: the checked addresses of an allow decision. */
export interface ConnectTarget {
  /** The host as asked for (for messages and `NO_PROXY`). */
  readonly host: string;
  /** The port. */
  readonly port: number;
  /** The addresses the policy checked, tried in order. */
  readonly addresses: readonly string[];
}

/** Options for {@linkcode connectTarget}. */
export interface ConnectTargetOptions {
  /** Give up on each attempt after this long. */
  timeoutMs: number;
  /** Aborts every attempt (the proxy is closing). */
  signal?: AbortSignal;
  /** The upstream proxy to go through, if any. */
  upstream?: UpstreamProxyConfig | null;
  /** Which upstream to pick. */
  protocol: ProxyProtocol;
  /** True when `address:port` is one of the proxy's own listeners (never connect there). */
  isSelf?: (address: string, port: number) => boolean;
}

/**
 * Connects to the first of `target.addresses` that answers (through the
 * upstream proxy when configured). Throws {@linkcode UpstreamError}.
 */
export async function connectTarget(
  target: ConnectTarget,
  options: ConnectTargetOptions,
): Promise<Deno.TcpConn> {
  if (target.addresses.length === 0) {
    throw new UpstreamError("unreachable", `No address to connect to for "${target.host}"`);
  }
  const upstream = options.upstream === null || options.upstream === undefined ||
      bypassesUpstream(options.upstream, target.host)
    ? null
    : options.protocol === "http"
    ? options.upstream.http
    : options.upstream.https;
  let lastError: UpstreamError | null = null;
  for (const address of target.addresses) {
    if (options.isSelf?.(address, target.port)) {
      throw new UpstreamError("self", `"${address}:${target.port}" is the proxy's own listener`);
    }
    try {
      return upstream === null
        ? await connectTcp(address, target.port, options)
        : await connectThrough(upstream, address, target.port, options);
    } catch (error) {
      lastError = error instanceof UpstreamError
        ? error
        : new UpstreamError("unreachable", String(error), { cause: error });
      if (options.signal?.aborted) break;
    }
  }
  throw lastError ?? new UpstreamError("unreachable", `Cannot connect to "${target.host}"`);
}

/** Connects to one TCP address with a timeout; sets TCP_NODELAY. */
export async function connectTcp(
  hostname: string,
  port: number,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<Deno.TcpConn> {
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  options.signal?.addEventListener("abort", onAbort);
  const timer = setTimeout(() => controller.abort(), options.timeoutMs);
  try {
    const conn = await Deno.connect({ hostname, port, signal: controller.signal });
    try {
      conn.setNoDelay(true);
    } catch {
      // Not fatal.
    }
    return conn;
  } catch (error) {
    const where = `${formatAuthority(hostname, port)}`;
    if (controller.signal.aborted) {
      throw new UpstreamError("timeout", `Connecting to ${where} timed out`, { cause: error });
    }
    if (error instanceof Deno.errors.ConnectionRefused) {
      throw new UpstreamError("refused", `Connection to ${where} refused`, { cause: error });
    }
    const why = errorMessage(error);
    throw new UpstreamError("unreachable", `Cannot connect to ${where}: ${why}`, { cause: error });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/** `host:port`, with brackets around an IPv6 address. */
export function formatAuthority(host: string, port: number): string {
  const ip = parseIpLiteral(host);
  return ip?.family === 6 ? `[${ip.canonical}]:${port}` : `${host}:${port}`;
}

async function connectThrough(
  proxy: UpstreamProxyServer,
  address: string,
  port: number,
  options: ConnectTargetOptions,
): Promise<Deno.TcpConn> {
  if (options.isSelf?.(proxy.hostname, proxy.port)) {
    throw new UpstreamError(
      "self",
      `The upstream proxy ${proxy.display} is this proxy's own listener`,
    );
  }
  const conn = await connectTcp(proxy.hostname, proxy.port, options);
  const timer = setTimeout(() => safeClose(conn), options.timeoutMs);
  const onAbort = () => safeClose(conn);
  options.signal?.addEventListener("abort", onAbort);
  try {
    const authority = formatAuthority(address, port);
    let head = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
    if (proxy.authorization !== null) head += `Proxy-Authorization: ${proxy.authorization}\r\n`;
    await writeAll(conn, latin1Encode(head + "\r\n"));
    // Read byte by byte-sized buffers so nothing of the tunnel is swallowed after the head.
    const reader = new BufferedReader(conn, 1024);
    const response = await readResponseHead(reader);
    if (response.status < 200 || response.status > 299) {
      throw new UpstreamError(
        "upstream_proxy",
        `The upstream proxy ${proxy.display} answered ${response.status} to CONNECT ${authority}`,
      );
    }
    if (
      headerValues(response.headers, "content-length").some((v) => v !== "0") ||
      headerValues(response.headers, "transfer-encoding").length > 0
    ) {
      throw new UpstreamError(
        "upstream_proxy",
        `The upstream proxy ${proxy.display} sent a body with 200`,
      );
    }
    if (reader.buffered > 0) {
      // A server speaking first inside the tunnel is legal but rare; keep those bytes.
      return prependBytes(conn, reader.take());
    }
    return conn;
  } catch (error) {
    safeClose(conn);
    if (error instanceof UpstreamError) throw error;
    const why = error instanceof HttpParseError || error instanceof Error
      ? error.message
      : String(error);
    const code = options.signal?.aborted ? "timeout" : "upstream_proxy";
    throw new UpstreamError(code, `The upstream proxy ${proxy.display} failed: ${why}`, {
      cause: error,
    });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

function safeClose(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

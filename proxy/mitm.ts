/**
 * Limited-mode TLS termination (MITM). After the proxy has answered `200` to
 * a CONNECT, {@linkcode createMitmHandler}'s handler speaks TLS to the client
 * with a leaf certificate for the CONNECT host, checks every request inside
 * the tunnel (every keep-alive request), and forwards the allowed ones over a
 * second, verified TLS connection to the real server.
 *
 * Inside the tunnel:
 * - the client's SNI must name the CONNECT host (an IP-literal target may
 *   send none), otherwise the connection is closed; ALPN offers `http/1.1` only;
 * - `Host` (and an absolute-form target) must be the CONNECT host and port: 400;
 * - the method policy applies: 403 `blocked-by-method-policy` with a JSON body;
 * - an inner CONNECT is refused (405); protocol upgrades (WebSocket) and a
 *   request body on GET, HEAD or OPTIONS are refused (403);
 * - every decision goes through the proxy's {@linkcode MitmContext.decide}
 *   (protocol `https-connect`, with the method), so it is logged.
 * After any refusal the connection is closed: the refused request's body is
 * never read, so the stream cannot be trusted to be in sync.
 *
 * Upstream, the handler connects to exactly the addresses the proxy checked
 * ({@linkcode MitmContext.connect}, no second lookup) and verifies the
 * server's certificate for the CONNECT host against the system roots plus
 * {@linkcode MitmOptions.upstreamCaCerts}. A certificate that does not verify
 * is a `502` with the reason in the body and `x-proxy-error:
 * upstream-tls-error`, never a silent pass.
 *
 * Server-side TLS on an accepted `Deno.Conn` is not in Deno's own API, so the
 * client side runs `node:tls` over a small `node:stream` Duplex that wraps the
 * `Deno.Conn`; the upstream side uses Deno's own `Deno.startTls`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { isIP } from "node:net";
import { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import { errorMessage, SandboxError } from "../errors.ts";
import type { EffectiveConfig } from "../profiles/types.ts";
import { type CertificateAuthority, defaultCaDir, loadCa, readSystemCaBundle } from "./ca.ts";
import type { DecisionEvent } from "./decision_log.ts";
import {
  type BodyFraming,
  BufferedReader,
  type ByteReader,
  type ByteWriter,
  copyBody,
  headerTokens,
  headerValues,
  HttpParseError,
  latin1Encode,
  readRequestHead,
  readResponseHead,
  requestBodyFraming,
  type RequestHead,
  responseBodyFraming,
  serializeRequestHead,
  serializeResponseHead,
  stripHopByHop,
  writeAll,
} from "./http_parser.ts";
import { createLeafIssuer, type LeafIssuer } from "./leaf_certs.ts";
import { parseAbsoluteTarget, parseAuthority, sameHost } from "./request_parts.ts";
import type { MitmContext, Verdict } from "./runtime.ts";
import { DENY_REASONS, type DenyReason } from "../policy/reasons.ts";

/**
 * The part of the proxy's `MitmContext` (proxy/runtime.ts) this handler uses: all but the
 * target (the handler is given it apart), with only the slot calls a tunnel makes.
 */
export type MitmTunnelContext = Omit<MitmContext, "target" | "slot"> & {
  /**
   * The connection's slot in the proxy's one timeout mechanism
   * (proxy/connection_slot.ts): the tunnel arms its handshake and head
   * deadlines and its idle watch there, notes activity, and is closed with it.
   */
  readonly slot: TunnelSlot;
};

/** The part of the proxy's `ConnectionSlot` a tunnel uses. */
export interface TunnelSlot {
  /** Arms a deadline `ms` from now (closes the connection when it passes). */
  expectWithin(ms: number): void;
  /** Watches for idleness instead (at most `options.idleMs` without a byte). */
  watchIdle(onIdle?: () => void, options?: { idleMs?: number }): void;
  /** Closes `conn` with the connection. */
  add(conn: { close(): void }): void;
  /** Notes that bytes moved. */
  readonly touch: () => void;
}

/** The proxy's verdict for one request inside the tunnel, with its logged event. */
export type MitmVerdict = Verdict;

/** The target of a tunnel, as decided for the CONNECT. */
export interface MitmTarget {
  /** The normalized host. */
  host: string;
  /** The port. */
  port: number;
  /** The addresses the policy checked. */
  addresses: string[];
}

/** Options for {@linkcode createMitmHandler}. */
export interface MitmOptions {
  /** The CA that signs the leaf certificates. */
  ca: CertificateAuthority;
  /** Extra PEM CA certificates trusted for upstream servers (e.g. a test CA), besides the system roots. */
  upstreamCaCerts?: readonly string[];
  /** Trust the system's root bundle for upstream servers (default true). */
  systemRoots?: boolean;
  /** Most leaf certificates cached (default 1024). */
  leafCacheSize?: number;
  /** Time for a TLS handshake, either side (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Time a client has to send a request head, also the keep-alive idle time (default 30 s). */
  headerTimeoutMs?: number;
  /** A request in flight with no bytes moving either way for this long is closed (default 300 s). */
  idleTimeoutMs?: number;
}

/** A MITM handler for `startProxy({ mitm })` (it satisfies proxy/server.ts's `MitmHandler`), with its leaf issuer exposed for benchmarks and tests. */
export interface MitmTunnelHandler {
  /** Serves one tunnel until it ends; never rejects (the client is closed on any error). */
  handleTunnel(client: Deno.Conn, target: MitmTarget, context: MitmTunnelContext): Promise<void>;
  /** The leaf certificate issuer (cache statistics). */
  readonly leaves: LeafIssuer;
}

/**
 * Creates the MITM handler the proxy calls for limited-mode CONNECT tunnels.
 *
 * @example
 * ```ts
 * const mitm = createMitmHandler({ ca: await loadCa(defaultCaDir()) });
 * await using proxy = await startProxy({ config, resolver, mitm });
 * ```
 */
export function createMitmHandler(options: MitmOptions): MitmTunnelHandler {
  const leaves = createLeafIssuer(options.ca, { maxEntries: options.leafCacheSize });
  const timeouts = {
    handshake: options.handshakeTimeoutMs ?? 10_000,
    header: options.headerTimeoutMs ?? 30_000,
    idle: options.idleTimeoutMs ?? 300_000,
  };
  let trust: Promise<string[]> | null = null;
  const upstreamTrust = (): Promise<string[]> => {
    trust ??= (async () => {
      const extra = [...(options.upstreamCaCerts ?? [])];
      return options.systemRoots === false ? extra : [await readSystemCaBundle(), ...extra];
    })();
    return trust;
  };
  return {
    leaves,
    async handleTunnel(client, target, context) {
      const tunnel = new Tunnel(client, target, context, timeouts);
      try {
        await tunnel.serve(leaves, upstreamTrust);
      } catch {
        // A broken tunnel only ends itself; the proxy keeps running.
      } finally {
        tunnel.close();
      }
    },
  };
}

/** Options for {@linkcode prepareMitm}. */
export interface PrepareMitmOptions {
  /** `--ca-dir`; default {@linkcode defaultCaDir}. Ignored when the profile supplies `mitm_ca`. */
  caDir?: string | null;
  /**
   * Environment to read `SANDBOX_UPSTREAM_CA` from (a PEM file of extra CAs
   * trusted for upstream servers; tests and private registries).
   * Defaults to the process environment.
   */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Everything `sandbox run` needs for MITM in one call: loads the CA (the
 * profile's `mitm_ca`, else `caDir`, else the default directory; a missing CA
 * says to run `sandbox init`), reads `SANDBOX_UPSTREAM_CA` when set, and
 * builds the handler. Throws `SandboxError` (`ca_error`).
 *
 * @example
 * ```ts
 * const { handler, ca } = await prepareMitm(config, { caDir: flags["ca-dir"] });
 * const bundle = await writeCaBundle(runDir, ca.certPem);
 * ```
 */
export async function prepareMitm(
  config: EffectiveConfig,
  options: PrepareMitmOptions = {},
): Promise<{ handler: MitmTunnelHandler; ca: CertificateAuthority }> {
  const env = options.env ?? Deno.env.toObject();
  const ca = await loadCa(config.network.mitmCa ?? options.caDir ?? defaultCaDir({ env }));
  const upstreamCaCerts: string[] = [];
  const file = env.SANDBOX_UPSTREAM_CA;
  if (file !== undefined && file !== "") {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (error) {
      throw new SandboxError(
        "ca_error",
        `Cannot read SANDBOX_UPSTREAM_CA "${file}": ${
          error instanceof Error ? error.message : error
        }`,
        { cause: error },
      );
    }
    if (!text.includes("-----BEGIN CERTIFICATE-----")) {
      throw new SandboxError("ca_error", `SANDBOX_UPSTREAM_CA "${file}" holds no PEM certificate`);
    }
    upstreamCaCerts.push(text);
  }
  return { handler: createMitmHandler({ ca, upstreamCaCerts }), ca };
}

const encoder = new TextEncoder();

/** How a request is refused. */
interface Refusal {
  status: number;
  statusText: string;
  reason: DenyReason;
  xProxyError: string;
  message: string;
  detail: string;
  event: DecisionEvent;
}

/** One upstream TLS connection, reused across keep-alive requests. */
interface Upstream {
  conn: Deno.TlsConn;
  reader: BufferedReader;
}

class Tunnel {
  #client: Deno.Conn;
  #target: MitmTarget;
  #context: MitmTunnelContext;
  #timeouts: { handshake: number; header: number; idle: number };
  #tls: TLSSocket | null = null;
  #upstream: Upstream | null = null;
  #closed = false;
  #onAbort = () => this.close();

  constructor(
    client: Deno.Conn,
    target: MitmTarget,
    context: MitmTunnelContext,
    timeouts: { handshake: number; header: number; idle: number },
  ) {
    this.#client = client;
    this.#target = target;
    this.#context = context;
    this.#timeouts = timeouts;
    // The proxy's slot holds the deadlines and the idle watch; when one passes it closes the
    // connection, and with it this tunnel (TLS, upstream).
    context.slot.add({ close: () => this.close() });
    context.signal.addEventListener("abort", this.#onAbort);
    if (context.signal.aborted) this.close();
  }

  readonly #touch = (): void => this.#context.slot.touch();

  #expectWithin(ms: number): void {
    this.#context.slot.expectWithin(ms);
  }

  #watchIdle(): void {
    this.#context.slot.watchIdle(undefined, { idleMs: this.#timeouts.idle });
  }

  async serve(leaves: LeafIssuer, upstreamTrust: () => Promise<string[]>): Promise<void> {
    const leaf = leaves.certificateFor(this.#target.host);
    this.#expectWithin(this.#timeouts.handshake);
    const duplex = duplexFromConn(this.#client, this.#touch);
    const tls = new TLSSocket(
      duplex,
      {
        isServer: true,
        cert: leaf.chainPem,
        key: leaf.keyPem,
        ALPNProtocols: ["http/1.1"],
      } as ConstructorParameters<typeof TLSSocket>[1],
    );
    this.#tls = tls;
    const end = new StreamEnd(tls);
    await end.secured();
    if (this.#closed || !sniMatches(tls, this.#target.host)) return;
    const reader = new BufferedReader(end, 4096);
    for (;;) {
      this.#expectWithin(this.#timeouts.header);
      let head: RequestHead | null;
      try {
        head = await readRequestHead(reader, this.#context.httpLimits);
      } catch (error) {
        if (error instanceof HttpParseError && !this.#closed) {
          await this.#respondPlain(end, 400, "Bad Request", `Malformed request: ${error.message}`);
        }
        return;
      }
      if (head === null || this.#closed) return;
      this.#watchIdle();
      const checked = await this.#check(head);
      if (this.#closed) return;
      if (checked.kind === "refuse") {
        await this.#respondBlocked(end, head.method, checked.refusal);
        return;
      }
      const keepAlive = await this.#forward(
        head,
        checked.framing,
        reader,
        end,
        upstreamTrust,
        checked.verdict,
      );
      if (!keepAlive) return;
    }
  }

  /** Describes one request to the proxy's decision and turns a denial into its answer. */
  async #check(
    head: RequestHead,
  ): Promise<
    { kind: "forward"; framing: BodyFraming; verdict: MitmVerdict } | {
      kind: "refuse";
      refusal: Refusal;
    }
  > {
    const named = requestAuthority(head, headerValues(head.headers, "host"));
    const upgrade = headerValues(head.headers, "upgrade").length > 0 ||
      headerTokens(head.headers, "connection").includes("upgrade");
    let malformed: string | null = null;
    let framing: BodyFraming = { kind: "none" };
    try {
      framing = requestBodyFraming(head);
    } catch (error) {
      malformed = errorMessage(error);
    }
    const verdict = await this.#context.decide({
      method: head.method,
      host: named?.host ?? "",
      port: named?.port ?? 0,
      upgrade,
      body: framing.kind !== "none",
      malformed,
      target: safeOriginForm(head.target),
      headers: head.headers,
    });
    if (verdict.decision === "allow") return { kind: "forward", framing, verdict };
    const [status, statusText] =
      head.method === "CONNECT" && verdict.reason === "method_not_allowed"
        ? [405, "Method Not Allowed"]
        : verdict.reason === "host_mismatch" || verdict.reason === "bad_request"
        ? [400, "Bad Request"]
        : [403, "Forbidden"];
    const info = DENY_REASONS[verdict.reason];
    return {
      kind: "refuse",
      refusal: {
        status,
        statusText,
        reason: verdict.reason,
        xProxyError: info.xProxyError,
        message: info.message,
        detail: verdict.detail,
        event: verdict.event,
      },
    };
  }

  /** Sends one request upstream and its response back; resolves whether the client connection may stay open. */
  async #forward(
    head: RequestHead,
    framing: BodyFraming,
    reader: BufferedReader,
    client: StreamEnd,
    upstreamTrust: () => Promise<string[]>,
    verdict: MitmVerdict,
  ): Promise<boolean> {
    let upstream = this.#upstream;
    if (upstream === null) {
      const opened = await this.#openUpstream(upstreamTrust);
      if (opened.kind === "error") {
        return await this.#badGateway(client, opened.message, opened.xProxyError);
      }
      upstream = opened.upstream;
      this.#upstream = upstream;
    }
    const clientWantsClose = wantsClose(head.version, head.headers);
    const outHead: RequestHead = {
      method: head.method,
      target: originForm(head.target),
      version: head.version,
      // `x-unix-socket` addresses the proxy, never the origin: inside a tunnel the target is
      // fixed by the CONNECT, so the header is dropped rather than leaked upstream.
      headers: this.#context.rewrite === undefined
        ? stripHopByHop(head.headers, ["x-unix-socket"])
        : this.#context.rewrite(stripHopByHop(head.headers, ["x-unix-socket"]), verdict),
    };
    try {
      await writeAll(upstream.conn, serializeRequestHead(outHead));
      await copyBody(reader, upstream.conn, framing, {
        onActivity: this.#touch,
        limits: this.#context.httpLimits,
      });
    } catch (error) {
      if (error instanceof HttpParseError) return false;
      return await this.#badGateway(client, `Upstream write failed: ${errorMessage(error)}`);
    }
    let response;
    let bodyFraming: BodyFraming;
    try {
      // Interim 1xx answers (100 Continue) are forwarded; 101 never comes (upgrades are refused).
      for (;;) {
        response = await readResponseHead(upstream.reader, this.#context.httpLimits);
        if (response.status >= 200 || response.status === 101) break;
        await client.write(
          serializeResponseHead({ ...response, headers: stripHopByHop(response.headers) }),
        );
      }
      if (response.status === 101) {
        throw new HttpParseError("malformed", "Unexpected 101 Switching Protocols");
      }
      bodyFraming = responseBodyFraming(response, head.method);
    } catch (error) {
      return await this.#badGateway(client, `Invalid upstream response: ${errorMessage(error)}`);
    }
    const upstreamCloses = bodyFraming.kind === "until_close" ||
      wantsClose(response.version, response.headers);
    const keepAlive = !clientWantsClose && bodyFraming.kind !== "until_close";
    const headers = stripHopByHop(response.headers);
    if (!keepAlive) headers.push({ name: "Connection", value: "close" });
    try {
      await writeAll(client, serializeResponseHead({ ...response, headers }));
      await copyBody(upstream.reader, client, bodyFraming, {
        onActivity: this.#touch,
        limits: this.#context.httpLimits,
      });
    } catch {
      return false;
    }
    if (upstreamCloses) {
      this.#closeUpstream();
    }
    return keepAlive;
  }

  async #openUpstream(
    upstreamTrust: () => Promise<string[]>,
  ): Promise<
    { kind: "ok"; upstream: Upstream } | { kind: "error"; message: string; xProxyError: string }
  > {
    let tcp: Deno.TcpConn;
    try {
      tcp = await this.#context.connect();
    } catch (error) {
      return {
        kind: "error",
        message: `Cannot connect to "${this.#target.host}:${this.#target.port}": ${
          errorMessage(error)
        }`,
        xProxyError: "upstream-connect-failed",
      };
    }
    let conn: Deno.TlsConn | null = null;
    try {
      conn = await Deno.startTls(tcp, {
        hostname: this.#target.host,
        caCerts: await upstreamTrust(),
        alpnProtocols: ["http/1.1"],
      });
      if (this.#closed) throw new Error("tunnel closed");
      this.#expectWithin(this.#timeouts.handshake);
      const handshake = conn.handshake();
      this.#upstream = { conn, reader: new BufferedReader(conn, 16 * 1024) }; // closed with the tunnel even mid-handshake
      await handshake;
      this.#watchIdle();
      return { kind: "ok", upstream: this.#upstream };
    } catch (error) {
      this.#closeUpstream();
      if (conn === null) closeQuietly(tcp);
      return {
        kind: "error",
        message:
          `TLS to upstream "${this.#target.host}:${this.#target.port}" failed: ${
            errorMessage(error)
          }` +
          " (the server's certificate was not accepted, or it does not speak TLS)",
        xProxyError: "upstream-tls-error",
      };
    }
  }

  async #respondBlocked(client: StreamEnd, method: string, refusal: Refusal): Promise<void> {
    const body = JSON.stringify({
      status: refusal.status,
      host: this.#target.host,
      port: this.#target.port,
      protocol: "https-connect",
      method,
      decision: "deny",
      reason: refusal.reason,
      rule: refusal.event.rule,
      source: refusal.event.source,
      message: refusal.message,
      detail: refusal.detail,
    }) + "\n";
    await this.#respond(client, refusal.status, refusal.statusText, {
      body,
      contentType: "application/json",
      xProxyError: refusal.xProxyError,
      extra: refusal.status === 405 ? [["Allow", "GET, HEAD, OPTIONS"]] : [],
    });
  }

  /** Answers 502 with `message`; resolves false (the client connection must close). */
  async #badGateway(client: StreamEnd, message: string, xProxyError?: string): Promise<false> {
    await this.#respondPlain(client, 502, "Bad Gateway", message, xProxyError);
    return false;
  }

  async #respondPlain(
    client: StreamEnd,
    status: number,
    statusText: string,
    message: string,
    xProxyError = status === 400 ? "bad-request" : "upstream-error",
  ): Promise<void> {
    await this.#respond(client, status, statusText, {
      body: message + "\n",
      contentType: "text/plain; charset=utf-8",
      xProxyError,
      extra: [],
    });
  }

  async #respond(
    client: StreamEnd,
    status: number,
    statusText: string,
    options: { body: string; contentType: string; xProxyError: string; extra: [string, string][] },
  ): Promise<void> {
    const body = encoder.encode(options.body);
    let head = `HTTP/1.1 ${status} ${statusText}\r\n` +
      `Content-Type: ${options.contentType}\r\n` +
      `Content-Length: ${body.length}\r\n` +
      `x-proxy-error: ${options.xProxyError}\r\n` +
      `Connection: close\r\n`;
    for (const [name, value] of options.extra) head += `${name}: ${value}\r\n`;
    const headBytes = latin1Encode(head + "\r\n");
    const bytes = new Uint8Array(headBytes.length + body.length);
    bytes.set(headBytes);
    bytes.set(body, headBytes.length);
    try {
      await writeAll(client, bytes);
      await client.end();
    } catch {
      // The client went away; nothing to tell it.
    }
  }

  #closeUpstream(): void {
    const upstream = this.#upstream;
    this.#upstream = null;
    if (upstream !== null) closeQuietly(upstream.conn);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#context.signal.removeEventListener("abort", this.#onAbort);
    this.#closeUpstream();
    if (this.#tls !== null) this.#tls.destroy();
    closeQuietly(this.#client);
  }
}

/** True when the client's SNI names the target (an IP-literal target may send none). */
function sniMatches(tls: TLSSocket, host: string): boolean {
  const raw = (tls as unknown as { servername?: string | false | null }).servername;
  const sni = typeof raw === "string" && raw !== "" ? raw.toLowerCase().replace(/\.+$/, "") : null;
  if (sni === null) return isIP(host) !== 0;
  return sameHost(sni, host);
}

/** The host and port a request names: its absolute-form target, else its single Host header. */
function requestAuthority(
  head: RequestHead,
  hosts: string[],
): { host: string; port: number } | null {
  try {
    if (!head.target.startsWith("/") && head.target !== "*") {
      const fromTarget = parseAbsoluteTarget(head.target, "https");
      // When both are present they must agree.
      if (hosts.length > 1) return null;
      if (hosts.length === 1) {
        const fromHeader = parseAuthority(hosts[0]);
        if (
          !sameHost(fromHeader.host, fromTarget.host) ||
          (fromHeader.port ?? 443) !== fromTarget.port
        ) {
          return null;
        }
      }
      return { host: fromTarget.host, port: fromTarget.port };
    }
    if (head.target === "*" && head.method !== "OPTIONS") return null;
    if (hosts.length !== 1) return null;
    const named = parseAuthority(hosts[0]);
    return { host: named.host, port: named.port ?? 443 };
  } catch {
    return null; // Not a host the strict parser accepts: the request names none.
  }
}

/** Turns an absolute-form target into origin-form (`/path?query`), as the plain proxy does. */
function originForm(target: string): string {
  if (target.startsWith("/") || target === "*") return target;
  return parseAbsoluteTarget(target, "https").path;
}

/** The origin form for the rules, "" when the target has none (an inner CONNECT, a bad target). */
function safeOriginForm(target: string): string {
  try {
    return originForm(target);
  } catch {
    return "";
  }
}

function wantsClose(version: string, headers: RequestHead["headers"]): boolean {
  const tokens = headerTokens(headers, "connection");
  if (tokens.includes("close")) return true;
  return version === "HTTP/1.0" && !tokens.includes("keep-alive");
}

function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/**
 * A node Duplex over a `Deno.Conn`, so `node:tls` can run a server handshake
 * on a connection Deno accepted. Reads allocate a fresh buffer each time
 * because pushed chunks are kept by the stream.
 */
function duplexFromConn(conn: Deno.Conn, onActivity: () => void): Duplex {
  let reading = false;
  const duplex: Duplex = new Duplex({
    read() {
      if (reading) return;
      reading = true;
      (async () => {
        try {
          for (;;) {
            const buf = new Uint8Array(64 * 1024);
            const n = await conn.read(buf);
            if (n === null) {
              duplex.push(null);
              return;
            }
            onActivity();
            if (!duplex.push(Buffer.from(buf.buffer, 0, n))) {
              reading = false;
              return;
            }
          }
        } catch (error) {
          duplex.destroy(error as Error);
        }
      })();
    },
    write(chunk: Buffer, _encoding, callback) {
      writeAll(conn, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)).then(
        () => callback(),
        (error) => callback(error),
      );
    },
    final(callback) {
      conn.closeWrite().then(() => callback(), () => callback());
    },
    destroy(error, callback) {
      closeQuietly(conn);
      callback(error);
    },
  });
  return duplex;
}

/**
 * A `ByteReader`/`ByteWriter` over a node stream (the server-side
 * `TLSSocket`), so the HTTP parser can read the decrypted requests and write
 * the responses.
 */
class StreamEnd implements ByteReader, ByteWriter {
  #stream: TLSSocket;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #error: Error | null = null;
  #wake: (() => void) | null = null;
  #secure: Promise<void>;

  constructor(stream: TLSSocket) {
    this.#stream = stream;
    this.#secure = new Promise((resolve, reject) => {
      stream.once("secure", () => resolve());
      stream.once("error", (error: Error) => reject(error));
      stream.once("close", () => reject(new Error("closed before the TLS handshake finished")));
    });
    this.#secure.catch(() => {});
    stream.on("data", (chunk: Buffer) => {
      this.#queue.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.#queued += chunk.byteLength;
      if (this.#queued > 1024 * 1024) stream.pause();
      this.#notify();
    });
    stream.on("end", () => {
      this.#ended = true;
      this.#notify();
    });
    stream.on("error", (error: Error) => {
      this.#error = error;
      this.#notify();
    });
    stream.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
  }

  /** Resolves when the TLS handshake is done; rejects when it fails. */
  secured(): Promise<void> {
    return this.#secure;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#queue.length === 0) {
      if (this.#error !== null) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    const head = this.#queue[0];
    const n = Math.min(p.length, head.length);
    p.set(head.subarray(0, n));
    if (n === head.length) this.#queue.shift();
    else this.#queue[0] = head.subarray(n);
    this.#queued -= n;
    if (this.#queued < 256 * 1024 && this.#stream.isPaused()) this.#stream.resume();
    return n;
  }

  async write(p: Uint8Array): Promise<number> {
    if (this.#stream.destroyed || this.#error !== null) {
      throw this.#error ?? new Error("connection closed");
    }
    // Copied: the caller reuses its buffer, and the stream keeps the chunk until flushed.
    if (!this.#stream.write(Buffer.from(p))) {
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          this.#stream.off("drain", done);
          this.#stream.off("close", closed);
          resolve();
        };
        const closed = () => {
          this.#stream.off("drain", done);
          this.#stream.off("close", closed);
          reject(new Error("connection closed"));
        };
        this.#stream.on("drain", done);
        this.#stream.on("close", closed);
      });
    }
    return p.length;
  }

  /** Sends close_notify and FIN after everything written so far. */
  end(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#stream.destroyed) return resolve();
      this.#stream.end(() => resolve());
    });
  }
}

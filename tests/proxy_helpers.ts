/**
 * Helpers for the proxy tests: a config built by the real loader, raw-byte
 * fake upstream servers on 127.0.0.x that count their accepts, and raw
 * client exchanges with a timeout on every wait.
 *
 * @module
 */
import type { ConfigFlags } from "../profiles/flags.ts";
import { type CertificateAuthority, initCa } from "../proxy/ca.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import type { EffectiveConfig } from "../profiles/types.ts";
import { createResolver } from "../proxy/resolver.ts";
import { type ProxyOptions, type RunningProxy, startProxy } from "../proxy/server.ts";
import { tempDir } from "./cli_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The effective config for these flags (the real loader, no files). */
export function configFor(flags: ConfigFlags): Promise<EffectiveConfig> {
  return loadEffectiveConfig(flags, { env: { HOME: "/nonexistent-home-for-tests" } });
}

/** Starts a proxy on loopback with `allowed.test` (and friends) resolving to `addresses`. */
export async function proxyFor(
  flags: ConfigFlags,
  options: Partial<ProxyOptions> & { names?: Record<string, string[]> } = {},
): Promise<RunningProxy> {
  const config = await configFor(flags);
  const names = options.names ?? {};
  return startProxy({
    config,
    resolver: createResolver({ overrides: new Map(Object.entries(names)) }),
    http: { hostname: "127.0.0.1", port: 0 },
    socks: { hostname: "127.0.0.1", port: 0 },
    ...options,
  });
}

/** A raw-byte server on a loopback address; counts accepted connections. */
export interface FakeServer extends AsyncDisposable {
  readonly hostname: string;
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

/**
 * Starts a fake upstream on `hostname` (port 0); `handler` serves each
 * connection (it is closed afterwards).
 */
export function fakeServer(
  hostname: string,
  handler: (conn: Deno.Conn, index: number) => Promise<void>,
): FakeServer {
  const listener = Deno.listen({ hostname, port: 0 });
  const served = serveConnections(listener, handler);
  return {
    hostname,
    port: listener.addr.port,
    get accepted() {
      return served.accepted();
    },
    close: served.close,
    [Symbol.asyncDispose]: served.close,
  };
}

/** What {@linkcode serveConnections} returns. */
export interface ServedConnections {
  /** How many connections it accepted so far. */
  accepted(): number;
  /** Closes the listener and every open connection; resolves when every handler is done. */
  close(): Promise<void>;
}

/**
 * Accepts connections on `listener` until closed and runs `handler` on each
 * (its errors are ignored: the test decides what matters); each connection is
 * closed when its handler ends.
 */
export function serveConnections(
  listener: Deno.Listener,
  handler: (conn: Deno.Conn, index: number) => Promise<void>,
): ServedConnections {
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  const closeQuietly = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  };
  const loop = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      const index = accepted++;
      conns.add(conn);
      const task = (async () => await handler(conn, index))().catch(() => {}).finally(() => {
        if (conns.delete(conn)) closeQuietly(conn);
      });
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })();
  return {
    accepted: () => accepted,
    async close() {
      listener.close();
      await loop;
      for (const conn of conns) closeQuietly(conn);
      await Promise.allSettled([...tasks]);
    },
  };
}

/** Reads from `conn` until `done(text)` is true or the stream ends; rejects after `timeoutMs`. */
export async function readUntil(
  conn: Deno.Conn,
  done: (text: string) => boolean,
  timeoutMs = 5000,
): Promise<string> {
  let text = "";
  const buf = new Uint8Array(65536);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out; got so far: ${JSON.stringify(text)}`)),
      timeoutMs,
    );
  });
  try {
    while (!done(text)) {
      const n = await Promise.race([conn.read(buf), timeout]);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n), { stream: true });
    }
    return text;
  } finally {
    clearTimeout(timer);
  }
}

/** Reads until end of stream (with a timeout). */
export function readAll(conn: Deno.Conn, timeoutMs = 5000): Promise<string> {
  return readUntil(conn, () => false, timeoutMs);
}

/** Writes text or bytes fully. */
export async function send(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Connects, sends `request`, reads until the server closes; returns what came back. */
export async function exchange(
  port: number,
  request: string | Uint8Array,
  options: { hostname?: string; timeoutMs?: number } = {},
): Promise<string> {
  const conn = await Deno.connect({ hostname: options.hostname ?? "127.0.0.1", port });
  try {
    await send(conn, request);
    return await readAll(conn, options.timeoutMs);
  } finally {
    conn.close();
  }
}

/** A complete HTTP/1.1 response with a Content-Length body has arrived. */
export function completeResponse(text: string): boolean {
  const end = text.indexOf("\r\n\r\n");
  if (end === -1) return false;
  const match = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
  return match !== null && text.length >= end + 4 + Number(match[1]);
}

/** Splits a raw response into status code, lower-cased headers and body. */
export function parseResponse(
  text: string,
): { status: number; headers: Map<string, string>; body: string } {
  const end = text.indexOf("\r\n\r\n");
  const head = end === -1 ? text : text.slice(0, end);
  const [statusLine, ...lines] = head.split("\r\n");
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return {
    status: Number(statusLine.split(" ")[1]),
    headers,
    body: end === -1 ? "" : text.slice(end + 4),
  };
}

/** A fake upstream handler: reads one request head per response and answers each with `body`. */
export function respondWith(body: string, extraHeaders = ""): (conn: Deno.Conn) => Promise<void> {
  return async (conn) => {
    let pending = "";
    const buf = new Uint8Array(65536);
    for (;;) {
      while (!pending.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) return;
        pending += decoder.decode(buf.subarray(0, n));
      }
      const end = pending.indexOf("\r\n\r\n");
      const head = pending.slice(0, end);
      pending = pending.slice(end + 4);
      const length = /\r\ncontent-length: *(\d+)/i.exec(head);
      if (length !== null) {
        while (pending.length < Number(length[1])) {
          const n = await conn.read(buf);
          if (n === null) return;
          pending += decoder.decode(buf.subarray(0, n));
        }
        pending = pending.slice(Number(length[1]));
      }
      const echo = head.split("\r\n")[0];
      const text = body.replace("$REQUEST", echo).replace("$HEAD", JSON.stringify(head));
      await send(
        conn,
        `HTTP/1.1 200 OK\r\nContent-Length: ${
          encoder.encode(text).length
        }\r\n${extraHeaders}\r\n${text}`,
      );
    }
  };
}

/** `promise`, or a rejection `Timed out after MS ms: WHAT` once `ms` pass. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A new CA for a test, kept in memory (its files are removed at once). */
export async function testCa(name: string): Promise<CertificateAuthority> {
  await using dir = await tempDir(`sandbox_test_ca_${name}_`);
  return (await initCa(dir.path, { commonName: `${name} test CA` })).ca;
}

/**
 * Reads one Content-Length framed response from `conn` (bytes after it stay
 * in `state.buffered` for the next call); null when the connection ends or
 * fails first. Each read times out after 10 s.
 */
export async function readFramedResponse(
  conn: { read(buffer: Uint8Array): Promise<number | null> },
  state: { buffered: string },
): Promise<{ status: number; headers: Map<string, string>; body: string } | null> {
  const buf = new Uint8Array(64 * 1024);
  const decoder = new TextDecoder();
  for (;;) {
    const end = state.buffered.indexOf("\r\n\r\n");
    if (end !== -1) {
      const lines = state.buffered.slice(0, end).split("\r\n");
      const headers = new Map<string, string>();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
      }
      const length = Number(headers.get("content-length") ?? "0");
      if (state.buffered.length >= end + 4 + length) {
        const body = state.buffered.slice(end + 4, end + 4 + length);
        state.buffered = state.buffered.slice(end + 4 + length);
        return { status: Number(lines[0].split(" ")[1]), headers, body };
      }
    }
    let n: number | null;
    try {
      n = await withTimeout(conn.read(buf), 10_000, "response");
    } catch (error) {
      if (error instanceof Error && error.message.startsWith("Timed out")) throw error;
      return null; // reset or TLS alert: the connection is over
    }
    if (n === null) return null;
    state.buffered += decoder.decode(buf.subarray(0, n), { stream: true });
  }
}

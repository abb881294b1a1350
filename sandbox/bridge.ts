/**
 * The bridge: listens on loopback TCP ports inside the sandbox's network
 * namespace and relays every connection to the proxy's unix socket, which
 * lives outside it. The launcher runs it as `sandbox __bridge`, entered into
 * the sandbox's namespace with `nsenter`, so the sandboxed command can
 * neither see nor signal it.
 *
 * Kept free of other project imports: it starts once per run, and its
 * module graph is part of every run's start-up time.
 *
 * @module
 */

/** One TCP address to listen on. */
export interface BridgeListenAddress {
  /** Usually `127.0.0.1`. */
  readonly hostname: string;
  /** Port; 0 picks a free one (tests). */
  readonly port: number;
}

/** Options for {@linkcode startBridge}. */
export interface BridgeOptions {
  /** Where to listen. */
  readonly listen: readonly BridgeListenAddress[];
  /** The proxy's unix socket (absolute path). */
  readonly target: string;
  /**
   * Instead of relaying to `target`: hands each accepted connection over (to
   * a proxy in the same process), which owns it from then on.
   */
  readonly handoff?: (conn: Deno.TcpConn) => void;
  /** Creates each listener (default `Deno.listen`): inside the sandbox's namespace when in-process. */
  readonly bind?: (address: BridgeListenAddress) => Deno.TcpListener;
}

/** A running bridge; close it (or `await using` it) when done. */
export interface RunningBridge extends AsyncDisposable {
  /** The bound addresses, in the order of `listen`. */
  readonly addrs: readonly Deno.NetAddr[];
  /** Stops listening and closes every open connection. */
  close(): Promise<void>;
}

const SMALL_BUFFER = 16 * 1024;
const LARGE_BUFFER = 1024 * 1024;

/**
 * Starts listening on every address of `options.listen` (synchronously, so
 * the ports are bound when it returns) and relays each accepted connection
 * to `options.target`.
 *
 * @example
 * ```ts
 * await using bridge = startBridge({
 *   listen: [{ hostname: "127.0.0.1", port: 3128 }],
 *   target: "/tmp/sandbox-run-x/proxy.sock",
 * });
 * ```
 */
export function startBridge(options: BridgeOptions): RunningBridge {
  const listeners: Deno.TcpListener[] = [];
  try {
    for (const address of options.listen) {
      const where = { hostname: address.hostname, port: address.port };
      listeners.push(options.bind === undefined ? Deno.listen(where) : options.bind(where));
    }
  } catch (error) {
    for (const listener of listeners) listener.close();
    throw error;
  }
  const open = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const track = (task: Promise<void>) => {
    tasks.add(task);
    task.finally(() => tasks.delete(task));
  };
  for (const listener of listeners) {
    track(acceptLoop(listener, options.target, open, track, options.handoff));
  }
  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      for (const listener of listeners) safeClose(listener);
      for (const conn of open) safeClose(conn);
      while (tasks.size > 0) await Promise.allSettled([...tasks]);
    })();
    return closing;
  };
  return {
    addrs: listeners.map((listener) => listener.addr),
    close,
    [Symbol.asyncDispose]: close,
  };
}

async function acceptLoop(
  listener: Deno.TcpListener,
  target: string,
  open: Set<Deno.Conn>,
  track: (task: Promise<void>) => void,
  handoff: ((conn: Deno.TcpConn) => void) | undefined,
): Promise<void> {
  for (;;) {
    let client: Deno.TcpConn;
    try {
      client = await listener.accept();
    } catch {
      return; // closed
    }
    if (handoff !== undefined) {
      handoff(client);
      continue;
    }
    track(forwardToProxy(client, target, open));
  }
}

/**
 * Connects to the proxy's unix socket `target`, sends `header` first when
 * given (a captured connection's line), then relays until both sides end;
 * closes both and drops them from `open` (which tracks them meanwhile, so a
 * closing bridge can end them). Never rejects: a proxy that is gone or
 * refuses just closes the client.
 */
export async function forwardToProxy(
  client: Deno.TcpConn,
  target: string,
  open: Set<Deno.Conn>,
  header?: Uint8Array,
): Promise<void> {
  open.add(client);
  let upstream: Deno.UnixConn | null = null;
  try {
    client.setNoDelay(true);
    upstream = await Deno.connect({ transport: "unix", path: target });
    open.add(upstream);
    if (header !== undefined) {
      let offset = 0;
      while (offset < header.length) offset += await upstream.write(header.subarray(offset));
    }
    await relayConns(client, upstream);
  } catch {
    // The proxy is gone or refused: the client just sees the connection close.
  } finally {
    open.delete(client);
    safeClose(client);
    if (upstream !== null) {
      open.delete(upstream);
      safeClose(upstream);
    }
  }
}

/**
 * Copies bytes both ways between `a` and `b` until both directions have
 * ended; end of stream on one side half-closes (`closeWrite`) the other.
 * Each direction reads into a 16 KiB buffer and moves to a 1 MiB one once
 * a read fills it, so idle connections stay small and bulk transfers make
 * few system calls. Does not close the connections; rejects on an error.
 *
 * @example
 * ```ts
 * await relayConns(tcpConn, unixConn);
 * ```
 */
export async function relayConns(a: Deno.Conn, b: Deno.Conn): Promise<void> {
  let failed = false;
  const fail = (error: unknown) => {
    if (!failed) {
      failed = true;
      safeClose(a);
      safeClose(b);
    }
    throw error;
  };
  await Promise.all([pump(a, b).catch(fail), pump(b, a).catch(fail)]);
}

async function pump(src: Deno.Conn, dst: Deno.Conn): Promise<void> {
  let buffer = new Uint8Array(SMALL_BUFFER);
  for (;;) {
    const n = await src.read(buffer);
    if (n === null) break;
    let offset = 0;
    while (offset < n) offset += await dst.write(buffer.subarray(offset, n));
    if (n === buffer.length && buffer.length < LARGE_BUFFER) buffer = new Uint8Array(LARGE_BUFFER);
  }
  try {
    await dst.closeWrite();
  } catch {
    // The peer already closed; the other direction ends on its own.
  }
}

function safeClose(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed.
  }
}

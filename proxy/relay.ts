/**
 * The tunnel hot path: copies bytes both ways between two connections with
 * explicit `read`/`write` loops (measured here to be ~2.5x faster than
 * `node:net` `pipe()` or web-stream `pipeTo()`), and half-closes with
 * `closeWrite()` so request/response protocols that end one direction early
 * still work.
 *
 * Memory: an idle tunnel holds only two small buffers (one pending read per
 * direction). A direction whose reads fill its small buffer borrows a 1 MiB
 * buffer from a shared {@linkcode BufferPool} and gives it back as soon as
 * reads get small again, so 1,000 idle tunnels stay cheap while a bulk
 * transfer runs with large reads.
 *
 * @example
 * ```ts
 * const pool = new BufferPool();
 * await relay(client, upstream, { buffers: pool });
 * ```
 *
 * @module
 */
import type { BufferProvider } from "./http_parser.ts";
import { writeAll } from "./http_parser.ts";

/** Options for {@linkcode BufferPool}. */
export interface BufferPoolOptions {
  /** Size of each large buffer (default 1 MiB). */
  size?: number;
  /** How many free buffers to keep for reuse (default 8); extra ones are left to the GC. */
  maxFree?: number;
}

/** A small free list of large buffers shared by all tunnels of one proxy. */
export class BufferPool implements BufferProvider {
  /** Size of each buffer. */
  readonly size: number;
  #maxFree: number;
  #free: Uint8Array[] = [];

  constructor(options: BufferPoolOptions = {}) {
    this.size = options.size ?? 1024 * 1024;
    this.#maxFree = options.maxFree ?? 8;
  }

  /** Number of buffers currently kept for reuse. */
  get free(): number {
    return this.#free.length;
  }

  /** Takes a buffer (reused or new). */
  acquire(): Uint8Array {
    return this.#free.pop() ?? new Uint8Array(this.size);
  }

  /** Gives a buffer back. */
  release(buffer: Uint8Array): void {
    if (buffer.length === this.size && this.#free.length < this.#maxFree) this.#free.push(buffer);
  }
}

/** The two ends a relay copies between (`Deno.Conn` fits). */
export interface RelayEnd {
  /** Reads into `p`; null at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p`. */
  write(p: Uint8Array): Promise<number>;
  /** Ends the write side (half-close). */
  closeWrite(): Promise<void>;
  /** Closes both directions. */
  close(): void;
}

/** Options for {@linkcode relay}. */
export interface RelayOptions {
  /** Where large buffers come from. */
  buffers: BufferProvider;
  /** Called after every read (the idle sweeper looks at this). */
  onActivity?: () => void;
  /** Bytes already read from `a` (e.g. pipelined after a CONNECT head) to send to `b` first. */
  initialAtoB?: Uint8Array;
  /** Starting buffer size per direction (default 8 KiB). */
  smallBufferSize?: number;
}

/** What a finished relay moved. */
export interface RelayResult {
  /** Bytes copied from `a` to `b`. */
  readonly aToB: number;
  /** Bytes copied from `b` to `a`. */
  readonly bToA: number;
}

/**
 * Copies `a` -> `b` and `b` -> `a` until both directions end, then closes
 * both. End of stream on one side half-closes the other; an error on either
 * side closes both at once. Never rejects.
 */
export async function relay(a: RelayEnd, b: RelayEnd, options: RelayOptions): Promise<RelayResult> {
  let closed = false;
  const closeBoth = () => {
    if (closed) return;
    closed = true;
    safeClose(a);
    safeClose(b);
  };
  const counts = { aToB: 0, bToA: 0 };
  const pumpAB = pump(a, b, options, options.initialAtoB, (n) => counts.aToB += n).catch(closeBoth);
  const pumpBA = pump(b, a, options, undefined, (n) => counts.bToA += n).catch(closeBoth);
  await Promise.all([pumpAB, pumpBA]);
  closeBoth();
  return counts;
}

async function pump(
  src: RelayEnd,
  dst: RelayEnd,
  options: RelayOptions,
  initial: Uint8Array | undefined,
  count: (n: number) => void,
): Promise<void> {
  const smallSize = options.smallBufferSize ?? 8 * 1024;
  const small: Uint8Array = new Uint8Array(smallSize);
  let buf: Uint8Array = small;
  let large = false;
  try {
    if (initial !== undefined && initial.length > 0) {
      await writeAll(dst, initial);
      count(initial.length);
    }
    for (;;) {
      const n = await src.read(buf);
      if (n === null) break;
      options.onActivity?.();
      await writeAll(dst, n === buf.length ? buf : buf.subarray(0, n));
      count(n);
      if (!large && n === buf.length) {
        buf = options.buffers.acquire();
        large = true;
      } else if (large && n < smallSize) {
        options.buffers.release(buf);
        buf = small;
        large = false;
      }
    }
  } finally {
    if (large) options.buffers.release(buf);
  }
  try {
    await dst.closeWrite();
  } catch {
    // The peer may already be gone; the other direction decides when to close.
  }
}

/**
 * Returns `conn` with `prefix` delivered by its first reads (bytes that were
 * already read from it, e.g. buffered after a request head). Everything else
 * goes to `conn` itself. Only `read()` sees the prefix, not `readable`.
 */
export function prependBytes<T extends Deno.Conn>(conn: T, prefix: Uint8Array): T {
  if (prefix.length === 0) return conn;
  let pending: Uint8Array | null = prefix;
  const read = (p: Uint8Array): Promise<number | null> => {
    if (pending === null) return conn.read(p);
    const n = Math.min(p.length, pending.length);
    p.set(pending.subarray(0, n));
    pending = n === pending.length ? null : pending.subarray(n);
    return Promise.resolve(n);
  };
  return new Proxy(conn, {
    get(target, property) {
      if (property === "read") return read;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function safeClose(end: RelayEnd): void {
  try {
    end.close();
  } catch {
    // Already closed.
  }
}

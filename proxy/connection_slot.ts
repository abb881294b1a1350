/**
 * The proxy's one timeout mechanism. Each client connection has a
 * {@linkcode ConnectionSlot}: the sockets to close with it, a deadline (head
 * read, handshake) and an idle watch (tunnels, requests in flight). One
 * {@linkcode SlotSweeper} timer per proxy checks every slot, so the hot path
 * sets no timers. Plain HTTP, SOCKS5 and the MITM handler's TLS tunnels all
 * use it.
 *
 * @module
 */

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
  /** This slot's own idle timeout while watched (the sweeper's applies when shorter). */
  idleMs = Infinity;
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
   * `options.idleMs` shortens the idle timeout for this watch.
   */
  watchIdle(onIdle?: () => void, options: { idleMs?: number } = {}): void {
    this.deadline = Infinity;
    this.idleWatch = true;
    this.idleMs = options.idleMs ?? Infinity;
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

/** Options for {@linkcode SlotSweeper}. */
export interface SlotSweeperOptions {
  /** Idle timeout of a watched slot (a slot may ask for a shorter one). */
  readonly idleTimeoutMs: number;
  /** How often the slots are checked (default: a quarter of the shortest timeout, 5 ms to 1 s). */
  readonly tickMs?: number;
}

/** One timer for many connection slots: closes (or warns) those past their deadline or idle. */
export class SlotSweeper {
  #slots = new Set<ConnectionSlot>();
  #idleTimeoutMs: number;
  #tick: number;
  #timer: ReturnType<typeof setInterval> | null = null;
  #stopped = false;

  constructor(options: SlotSweeperOptions) {
    this.#idleTimeoutMs = options.idleTimeoutMs;
    this.#tick = options.tickMs ?? Math.max(5, Math.min(1000, options.idleTimeoutMs / 4));
  }

  /** Number of slots watched. */
  get size(): number {
    return this.#slots.size;
  }

  /** Watches a new slot for `conn`. */
  add(conn: { close(): void }): ConnectionSlot {
    const slot = new ConnectionSlot(conn);
    this.#slots.add(slot);
    // The timer starts with the first slot, not with the proxy: Deno's first timer loads its
    // timers module (~7 ms), which a run whose command never connects need not pay at start-up.
    if (this.#timer === null && !this.#stopped) {
      this.#timer = setInterval(() => this.sweep(), this.#tick);
    }
    return slot;
  }

  /** Stops watching `slot` (it is not closed). */
  delete(slot: ConnectionSlot): void {
    this.#slots.delete(slot);
  }

  /** The slots watched now. */
  slots(): ConnectionSlot[] {
    return [...this.#slots];
  }

  /** Checks every slot once (the timer calls it). */
  sweep(now = Date.now()): void {
    for (const slot of this.#slots) {
      const idleMs = Math.min(slot.idleMs, this.#idleTimeoutMs);
      if (now > slot.deadline || (slot.idleWatch && now - slot.lastActivity > idleMs)) {
        slot.expire();
      }
    }
  }

  /** Stops the timer (slots are not closed). */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}

function safeClose(thing: { close(): void }): void {
  try {
    thing.close();
  } catch {
    // Already closed.
  }
}

/**
 * Moves the calling thread into another process's network namespace with
 * `setns(2)`, through libc. The bridge uses it when the launcher started it
 * before the sandbox existed (to overlap its start-up with bwrap's): once
 * bwrap reports the sandbox's pid, the bridge's JavaScript thread joins the
 * sandbox's network namespace and every socket it creates from then on
 * (listeners, the DNS stub, the rtnetlink socket) is created there. Deno
 * runs synchronous socket calls on that thread; the bridge's connections to
 * the proxy are unix sockets by path, which no network namespace affects.
 *
 * Only for a launcher that may join the namespace from where it is (root in
 * the initial user namespace): joining the user namespace that owns it is
 * refused to a multi-threaded process, so an unprivileged launcher still
 * starts the bridge through `nsenter` once the pid is known.
 *
 * Kept free of other project imports (the bridge's start-up).
 *
 * @module
 */

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

/**
 * Joins the network namespace of `pid` (this thread only). Throws with what
 * failed.
 *
 * @example
 * ```ts
 * enterNetworkNamespace(sandboxPid);
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 3128 }); // inside
 * ```
 */
export function enterNetworkNamespace(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error(`Invalid pid ${pid}`);
  const lib = openLibc();
  try {
    const O_RDONLY_CLOEXEC = 0o2000000;
    const CLONE_NEWNET = 0x40000000;
    const fd = lib.symbols.open(
      new TextEncoder().encode(`/proc/${pid}/ns/net\0`),
      O_RDONLY_CLOEXEC,
    );
    if (fd < 0) throw new Error(`Cannot open the network namespace of pid ${pid}`);
    try {
      if (lib.symbols.setns(fd, CLONE_NEWNET) !== 0) {
        throw new Error(`Cannot join the network namespace of pid ${pid} (setns failed)`);
      }
    } finally {
      lib.symbols.close(fd);
    }
  } finally {
    lib.close();
  }
}

/** A network namespace the calling thread can step into and back out of. */
export interface NetworkNamespace extends Disposable {
  /**
   * Runs `fn` with the calling thread in the namespace and returns to the
   * thread's own afterwards, whatever happens. `fn` must be synchronous: a
   * socket it creates (`Deno.listen`, `Deno.listenDatagram`, a netlink socket)
   * lives in the namespace for good; nothing else can run on the thread
   * meanwhile, so no other socket of the process lands there. Should the way
   * back fail, the process exits (code 70) rather than go on inside.
   */
  run<T>(fn: () => T): T;
  /** Closes the namespace descriptors. */
  close(): void;
}

/**
 * Opens the network namespace of `pid` for {@linkcode NetworkNamespace.run}:
 * how a launcher running as root listens inside the sandbox itself, without
 * a bridge process (setns(2) with CLONE_NEWNET acts on the calling thread
 * only, and Deno creates sockets on its JavaScript thread). Throws with what
 * failed.
 *
 * @example
 * ```ts
 * using inside = openNetworkNamespace(sandboxPid);
 * const listener = inside.run(() => Deno.listen({ hostname: "127.0.0.1", port: 3128 }));
 * ```
 */
export function openNetworkNamespace(pid: number): NetworkNamespace {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error(`Invalid pid ${pid}`);
  const lib = openLibc();
  const O_RDONLY_CLOEXEC = 0o2000000;
  const CLONE_NEWNET = 0x40000000;
  const openNs = (path: string) =>
    lib.symbols.open(new TextEncoder().encode(`${path}\0`), O_RDONLY_CLOEXEC);
  const own = openNs("/proc/thread-self/ns/net");
  const target = openNs(`/proc/${pid}/ns/net`);
  if (own < 0 || target < 0) {
    if (own >= 0) lib.symbols.close(own);
    if (target >= 0) lib.symbols.close(target);
    lib.close();
    throw new Error(`Cannot open the network namespace of pid ${pid}`);
  }
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    lib.symbols.close(own);
    lib.symbols.close(target);
    lib.close();
  };
  return {
    run<T>(fn: () => T): T {
      if (closed) throw new Error("The network namespace handle is closed");
      if (lib.symbols.setns(target, CLONE_NEWNET) !== 0) {
        throw new Error(`Cannot join the network namespace of pid ${pid} (setns failed)`);
      }
      try {
        return fn();
      } finally {
        if (lib.symbols.setns(own, CLONE_NEWNET) !== 0) {
          // Never go on in the sandbox's namespace: every later connection of the launcher (the
          // proxy's upstream ones) would be made there. Nothing can be trusted past this point.
          Deno.stderr.writeSync(
            new TextEncoder().encode(
              "sandbox: Cannot return to the launcher's network namespace (setns failed): stopping\n",
            ),
          );
          Deno.exit(70);
        }
      }
    },
    close,
    [Symbol.dispose]: close,
  };
}

function openLibc(): Deno.DynamicLibrary<typeof SYMBOLS> {
  for (const name of ["libc.so.6", "libc.so", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"]) {
    try {
      return Deno.dlopen(name, SYMBOLS);
    } catch {
      // Try the next name.
    }
  }
  throw new Error("libc could not be loaded");
}

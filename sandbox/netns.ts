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
 * Imports only `libc.ts` (the bridge's start-up).
 *
 * @module
 */

import { dlopenLibc } from "./libc.ts";

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;

const O_RDONLY_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;

/** A descriptor of the network namespace at `path` (`/proc/PID/ns/net`), or -1. */
function openNamespace(lib: Libc, path: string): number {
  return lib.symbols.open(new TextEncoder().encode(`${path}\0`), O_RDONLY_CLOEXEC);
}

/** Moves the calling thread into the namespace of `fd`; throws naming `pid` when refused. */
function join(lib: Libc, fd: number, pid: number): void {
  if (lib.symbols.setns(fd, CLONE_NEWNET) !== 0) {
    throw new Error(`Cannot join the network namespace of pid ${pid} (setns failed)`);
  }
}

function checkPid(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error(`Invalid pid ${pid}`);
}

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
  checkPid(pid);
  using lib = dlopenLibc(SYMBOLS);
  const fd = openNamespace(lib, `/proc/${pid}/ns/net`);
  if (fd < 0) throw new Error(`Cannot open the network namespace of pid ${pid}`);
  try {
    join(lib, fd, pid);
  } finally {
    lib.symbols.close(fd);
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
  checkPid(pid);
  const lib = dlopenLibc(SYMBOLS);
  const own = openNamespace(lib, "/proc/thread-self/ns/net");
  const target = openNamespace(lib, `/proc/${pid}/ns/net`);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    for (const fd of [own, target]) if (fd >= 0) lib.symbols.close(fd);
    lib.close();
  };
  if (own < 0 || target < 0) {
    close();
    throw new Error(`Cannot open the network namespace of pid ${pid}`);
  }
  return {
    run<T>(fn: () => T): T {
      if (closed) throw new Error("The network namespace handle is closed");
      join(lib, target, pid);
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

/**
 * Waits (bounded, about 5 s, or until `stopped` says so) until bwrap has
 * brought the sandbox's loopback device up. bwrap reports the sandbox's pid
 * before it adds 127.0.0.1/8 and sets the device up; only then is the whole
 * prefix local, so 127.0.0.2 binds only once the device is up. `inside` runs
 * the probe in the namespace (default: where the thread is, for a bridge
 * that joined it for good).
 *
 * @example
 * ```ts
 * await untilLoopbackUp((fn) => inside.run(fn));
 * ```
 */
export async function untilLoopbackUp(
  inside: <T>(fn: () => T) => T = (fn) => fn(),
  stopped: () => boolean = () => false,
): Promise<void> {
  for (let waited = 0; !stopped(); waited++) {
    try {
      inside(() => Deno.listen({ hostname: "127.0.0.2", port: 0 })).close();
      return;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrNotAvailable) || waited > 5000) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

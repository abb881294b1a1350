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
  let lib: Deno.DynamicLibrary<typeof SYMBOLS> | null = null;
  for (const name of ["libc.so.6", "libc.so", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"]) {
    try {
      lib = Deno.dlopen(name, SYMBOLS);
      break;
    } catch {
      // Try the next name.
    }
  }
  if (lib === null) throw new Error("libc could not be loaded");
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

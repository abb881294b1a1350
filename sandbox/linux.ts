/**
 * Runs a {@linkcode SandboxPlan} under Bubblewrap. With network, bwrap
 * reports the sandbox's pid on `--json-status-fd` and holds the command back
 * on `--block-fd` until something listens on the proxy ports inside the
 * sandbox's network namespace: as root, the launcher itself (its thread
 * steps into the namespace to create the sockets and hands connections to
 * the in-process proxy: no bridge process); unprivileged, the bridge process,
 * started outside the sandbox before bwrap, in a user namespace of its own
 * (`unshare`) inside which bwrap then runs (`nsenter`), so that the bridge
 * may join the sandbox's network namespace by itself once bwrap reports the
 * pid; without `unshare`, the bridge starts after the pid, through `nsenter`.
 * Either is out of the command's sight (other mount and pid namespaces) and
 * out of reach of anything applied to the command, such as the seccomp
 * filter (`buildSeccompFilter()`) that bwrap loads from `--seccomp` on every
 * run, with network or without.
 *
 * Process handling: only fds 0, 1 and 2 reach the command (inherited
 * descriptors are marked close-on-exec first); bwrap runs in its own
 * session so a terminal's Ctrl-C reaches only the launcher, which forwards
 * SIGINT, SIGTERM and SIGHUP to the command's process group; bwrap's
 * `--die-with-parent` and the bridge's watch on its stdin end both when the
 * launcher dies, however it dies. The bridge, too, runs in a session of its
 * own (with `setsid`), so a Ctrl-C leaves it relaying while the command
 * shuts down. Should the bridge die while the command runs, the command's
 * connections fail from then on: {@linkcode LinuxRunOptions.onBridgeStopped}
 * is told at once, and the run still ends with the command's own exit code.
 *
 * @module
 */
import { errorMessage, SandboxError } from "../errors.ts";
import { buildBwrapArgs } from "./bwrap_args.ts";
import { dlopenLibc } from "./libc.ts";
import { BRIDGE_HOST } from "./env.ts";
import type { CaptureHeader } from "./capture.ts";
import type { CapturePlan, SandboxPlan } from "./plan.ts";
import { userNamespaceProblem } from "./preflight.ts";
import { buildSeccompFilter, currentSeccompArch } from "./seccomp.ts";

/** Options for {@linkcode runLinuxPlan}. */
export interface LinuxRunOptions {
  /** Absolute path of `bwrap`. */
  readonly bwrap: string;
  /**
   * Absolute path of util-linux `setsid`, which starts bwrap in its own
   * session; null or absent: `Deno.Command`'s `detached`, which forks the
   * whole launcher (~2-9 ms) where a plain spawn is a cheap `posix_spawn`.
   */
  readonly setsid?: string | null;
  /**
   * Absolute path of util-linux `nsenter`, which starts the bridge; needed
   * with network (never looked up on PATH: see `SYSTEM_BIN_DIRS`).
   */
  readonly nsenter?: string | null;
  /**
   * Absolute path of util-linux `unshare`. Unprivileged, with `nsenter` too:
   * the bridge starts before bwrap, in a user namespace of its own, and bwrap
   * inside it (see {@linkcode runLinuxPlan}); absent: the bridge starts once
   * bwrap has reported the sandbox's pid.
   */
  readonly unshare?: string | null;
  /** argv prefix that starts `sandbox` again (the bridge is `… __bridge`); needed with network. */
  readonly self?: readonly string[];
  /** Environment of the bridge process (default: the launcher's). */
  readonly bridgeEnv?: Readonly<Record<string, string>>;
  /** The launcher's uid (0 = root); decides whether `nsenter` also enters the user namespace. */
  readonly uid: number;
  /** Called once the command runs (after the bridge listens), with bwrap's and the sandbox's pid. */
  readonly onStarted?: (pids: { bwrap: number; sandbox: number }) => void;
  /**
   * Called (at most once) when the bridge exits on its own after it was ready
   * and before the command has exited, with how it ended (`killed by SIGKILL`,
   * `exit code 1`). Never called for the launcher's own stop at the end.
   */
  readonly onBridgeStopped?: (how: string) => void;
  /** Stops the run early: the sandbox is killed. */
  readonly signal?: AbortSignal;
  /**
   * Work the command must wait for, such as starting the proxy. With network
   * it is called once bwrap and the bridge have been started, so that it
   * overlaps with their start-up (bwrap holds the command on `--block-fd`
   * until it resolves); without, before bwrap starts. A rejection ends the
   * run with that error before the command has started.
   */
  readonly beforeCommand?: () => Promise<void>;
  /**
   * The proxy, once {@linkcode LinuxRunOptions.beforeCommand} has started it,
   * for a launcher running as root: it then listens inside the sandbox's
   * network namespace itself (the proxy ports and transparent capture) and
   * hands every connection to the proxy in-process, with no bridge process and
   * no relay hop. Absent, or unprivileged: the bridge process does it.
   */
  readonly sink?: () => Promise<ConnectionSink>;
}

/** What the launcher's own listeners inside the sandbox hand their connections to: the proxy. */
export interface ConnectionSink {
  /** A client of the proxy ports (HTTP or SOCKS5, told apart by its first byte). */
  serveClient(conn: Deno.Conn): void;
  /** A captured connection, with what the capture learnt about it. */
  serveCaptured(conn: Deno.Conn, target: CaptureHeader): void;
}

/** How the command ended. */
export interface LinuxRunResult {
  /** The command's exit code (128+N when it died of signal N). */
  readonly exitCode: number;
  /** The signal that ended the command when one of ours did, else null. */
  readonly signal: Deno.Signal | null;
}

const FORWARDED: readonly Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];
const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
const BRIDGE_READY_TIMEOUT_MS = 15_000;

/**
 * Runs `plan` in bwrap and resolves when the command has exited and the
 * bridge is gone. Throws a {@linkcode SandboxError} (`sandbox_failed`,
 * `userns_disabled`) when the sandbox could not be set up.
 *
 * Both processes are started with `Deno.Command`: `node:child_process`
 * would cost ~12 ms to load and ~20 ms for its first spawn, on every run.
 * bwrap's status, block and seccomp descriptors are pipes made with `pipe2(2)` whose
 * child ends alone are inheritable, and only for the instant of the spawn.
 *
 * @example
 * ```ts
 * const { exitCode } = await runLinuxPlan(plan, { bwrap: "/usr/bin/bwrap", uid: 0, self });
 * ```
 */
export async function runLinuxPlan(
  plan: SandboxPlan,
  options: LinuxRunOptions,
): Promise<LinuxRunResult> {
  const withNetwork = plan.network.kind === "proxy";
  const seccomp = seccompFilterFor(plan);
  // Without network nothing holds the command back once bwrap starts: finish first.
  if (!withNetwork) await options.beforeCommand?.();
  let bridge: BridgeProcess | null = null;
  // As root the bridge can join the sandbox's network namespace itself (setns from its own
  // thread), so it starts now and boots while bwrap sets the sandbox up; it is told the pid
  // later. Unprivileged, `unshare` starts the bridge early too, as the owner of a user
  // namespace of its own (B) with its capabilities there kept across execve (`--keep-caps`),
  // and bwrap is started inside B: bwrap's own user namespace is then B's child, owned by the same uid, and that
  // owner, in the parent, has every capability in it. So the bridge (multi-threaded: it could
  // never join a user namespace) may setns into the sandbox's network namespace from its thread,
  // add the capture range and bind ports below 1024 there, like the root bridge; the command
  // stays in bwrap's nested namespace without capabilities, as before. Without unshare, the
  // bridge must enter bwrap's user namespace, which only a single-threaded process (nsenter)
  // can: it starts once the pid is known.
  let ownUserNamespace = withNetwork && options.uid !== 0 && (options.unshare ?? null) !== null &&
    (options.nsenter ?? null) !== null;
  // The DNS stub needs Deno's UDP listener (`--unstable-net`): without it, the bridge process.
  const udp = typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function";
  if (
    withNetwork && options.uid === 0 && plan.network.kind === "proxy" && options.sink &&
    (udp || (plan.network.capture ?? null) === null)
  ) {
    bridge = startJoinedBridge({
      ports: [plan.network.httpPort, plan.network.socksPort],
      capture: plan.network.capture ?? null,
      sink: options.sink,
    });
  } else if (
    withNetwork && plan.network.kind === "proxy" && (options.uid === 0 || ownUserNamespace)
  ) {
    if (plan.network.proxySocket === null) {
      throw new SandboxError("sandbox_failed", "The plan has network but no proxy socket");
    }
    bridge = startBridgeProcess(null, {
      setsid: options.setsid ?? null,
      nsenter: null,
      unshare: ownUserNamespace ? options.unshare! : null,
      self: options.self ?? [],
      env: options.bridgeEnv ?? Deno.env.toObject(),
      enterUser: false,
      target: plan.network.proxySocket,
      ports: [plan.network.httpPort, plan.network.socksPort],
      capture: plan.network.capture ?? null,
    });
  }
  let spawned: ReturnType<typeof spawnBwrap>;
  try {
    // A millisecond or two: unshare's own start, not the bridge's. Should unshare fail (its
    // message is on stderr), bwrap has not started yet: the bridge starts late instead.
    if (ownUserNamespace && bridge !== null && !await untilOwnUserNamespace(bridge.pid!)) {
      await bridge.stop();
      bridge = null;
      ownUserNamespace = false;
    }
    using libc = openLibc("hand Bubblewrap its status and block pipes");
    closeInheritedOnExec(libc);
    spawned = spawnBwrap(plan, libc, {
      seccomp,
      bwrap: options.bwrap,
      setsid: options.setsid ?? null,
      withNetwork,
      // nsenter joins the bridge's user namespace and execs bwrap, without capabilities there.
      enter: ownUserNamespace && bridge !== null
        ? [options.nsenter!, `--user=/proc/${bridge.pid}/ns/user`, "--preserve-credentials", "--"]
        : [],
    });
  } catch (error) {
    await bridge?.stop();
    throw error;
  }
  const { bwrap, status, block } = spawned;
  // With network, the launcher's own work before the command (the proxy) runs while bwrap sets
  // the sandbox up and the bridge boots: neither waits on it until the command is released.
  const prepared = withNetwork ? (options.beforeCommand?.() ?? Promise.resolve()) : null;
  prepared?.catch(() => {});
  let bwrapDone = false;
  const exited = bwrap.status.then((s) => s.code).finally(() => bwrapDone = true);
  const killBwrap = () => {
    if (!bwrapDone) killQuietly(bwrap.pid, "SIGKILL");
  };
  let stopping: Promise<void> | undefined;

  // Signals: before the command runs, one ends the run; afterwards it goes to the command's group.
  let sandboxPid: number | null = null;
  let running = false;
  let cmdPid: number | null = null;
  let forwardedSignal: Deno.Signal | null = null;
  const retries = new Set<ReturnType<typeof setTimeout>>();
  const forward = (signal: Deno.Signal, attempt: number) => {
    if (bwrapDone) return;
    if (!running || sandboxPid === null) {
      killBwrap();
      return;
    }
    cmdPid ??= findChild(sandboxPid);
    if (cmdPid !== null) {
      killGroup(cmdPid, signal);
    } else if (attempt < 200) {
      // The command is being forked right now; try again shortly.
      const timer = setTimeout(() => {
        retries.delete(timer);
        forward(signal, attempt + 1);
      }, 5);
      retries.add(timer);
    }
  };
  const listeners = FORWARDED.map((signal) => {
    const listener = () => {
      forwardedSignal = signal;
      forward(signal, 0);
    };
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  options.signal?.addEventListener("abort", killBwrap);
  try {
    const first = await status.next();
    sandboxPid = typeof first?.["child-pid"] === "number" ? first["child-pid"] : null;
    if (sandboxPid === null) {
      const code = await exited;
      if (forwardedSignal !== null) return interrupted(forwardedSignal);
      throw await setupFailure(code, options.uid);
    }
    if (plan.network.kind === "proxy" && block !== null) {
      if (plan.network.proxySocket === null) {
        throw new SandboxError("sandbox_failed", "The plan has network but no proxy socket");
      }
      if (bridge !== null) {
        bridge.enter(sandboxPid);
      } else if (options.nsenter === undefined || options.nsenter === null) {
        throw new SandboxError(
          "sandbox_failed",
          'Cannot start the network bridge: "nsenter" (util-linux) was not found in /usr/bin, /bin, ' +
            "/usr/sbin, /sbin or /usr/local/bin: install util-linux, or set SANDBOX_NSENTER to its " +
            "absolute path",
        );
      } else {
        // bwrap reports the pid before its child has written its own id maps: a bridge that
        // joins the user namespace before then is no one there, and execs without capabilities.
        if (options.uid !== 0) await untilIdsMapped(sandboxPid);
        bridge = startBridgeProcess(sandboxPid, {
          setsid: options.setsid ?? null,
          nsenter: options.nsenter,
          self: options.self ?? [],
          env: options.bridgeEnv ?? Deno.env.toObject(),
          enterUser: options.uid !== 0,
          target: plan.network.proxySocket,
          ports: [plan.network.httpPort, plan.network.socksPort],
          capture: plan.network.capture ?? null,
        });
      }
      const ready = await Promise.race([
        Promise.all([bridge.ready, prepared]).then(() => true),
        exited.then(() => false),
      ]);
      if (!ready) {
        if (forwardedSignal !== null) return interrupted(forwardedSignal);
        throw new SandboxError("sandbox_failed", "The sandbox ended before the bridge was ready");
      }
      if (forwardedSignal !== null) {
        killBwrap();
        return interrupted(forwardedSignal);
      }
      bridge.watch((how) => options.onBridgeStopped?.(how));
      // Only now may the command start: the bridge listens.
      try {
        await writeAndClose(block, "1");
      } catch (error) {
        // bwrap died between its set-up and this write (a broken pipe): report why it ended,
        // not the pipe error.
        if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
        const code = await exited;
        if (forwardedSignal !== null) return interrupted(forwardedSignal);
        throw await setupFailure(code, options.uid);
      }
    }
    running = true;
    options.onStarted?.({ bwrap: bwrap.pid, sandbox: sandboxPid });
    const last = await status.next();
    // The command has exited and its pid namespace goes with it: the bridge is done too.
    stopping = bridge?.stop();
    const code = await exited;
    const exitCode = typeof last?.["exit-code"] === "number" ? last["exit-code"] : code;
    const signal: Deno.Signal | null = forwardedSignal !== null &&
        exitCode === 128 + SIGNAL_NUMBERS[forwardedSignal]
      ? forwardedSignal
      : null;
    return { exitCode, signal };
  } finally {
    options.signal?.removeEventListener("abort", killBwrap);
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
    if (!running && sandboxPid !== null) {
      // bwrap resets the sandbox's parent-death signal while it waits on --block-fd: closing
      // our end now would let the command start. Kill the sandbox itself first.
      await killAndReap(sandboxPid);
    }
    killBwrap();
    // The bridge has nothing to flush (the command is gone): stop it while bwrap is reaped.
    stopping ??= bridge?.stop();
    await exited;
    for (const timer of retries) clearTimeout(timer);
    status.close();
    if (block !== null) closeQuietly(block);
    await stopping;
  }
}

function interrupted(signal: Deno.Signal): LinuxRunResult {
  return { exitCode: 128 + SIGNAL_NUMBERS[signal], signal };
}

/**
 * Starts bwrap in its own session (the terminal's Ctrl-C goes to the
 * launcher alone, which forwards it) with `--json-status-fd` and, with
 * network, `--block-fd` on fresh pipes, and the seccomp filter on a third
 * (`--seccomp`), written whole and closed before bwrap starts, so bwrap
 * reads it to its end at once. Its environment is exactly the plan's.
 */
function spawnBwrap(
  plan: SandboxPlan,
  libc: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>,
  options: {
    bwrap: string;
    setsid: string | null;
    withNetwork: boolean;
    seccomp: Uint8Array;
    /** argv that runs bwrap in another user namespace (`nsenter … --`), or empty. */
    enter: readonly string[];
  },
): { bwrap: Deno.ChildProcess; status: JsonLines; block: Deno.FsFile | null } {
  const { bwrap: bwrapPath, setsid, withNetwork, enter } = options;
  const statusPipe = makePipe(libc);
  const blockPipe = withNetwork ? makePipe(libc) : null;
  const seccompPipe = makePipe(libc);
  // The launcher's ends become ordinary Deno files (opened again through
  // /proc, close-on-exec); the raw descriptors are closed whatever happens.
  const childEnds = [
    statusPipe.write,
    seccompPipe.read,
    ...(blockPipe === null ? [] : [blockPipe.read]),
  ];
  let seccompWriteOpen = true;
  let status: Deno.FsFile | null = null;
  let block: Deno.FsFile | null = null;
  try {
    status = Deno.openSync(`/proc/self/fd/${statusPipe.read}`, { read: true });
    if (blockPipe !== null) {
      block = Deno.openSync(`/proc/self/fd/${blockPipe.write}`, { write: true });
    }
    // A few hundred bytes: far below a pipe's capacity, so the write never blocks.
    writeAll(libc, seccompPipe.write, options.seccomp);
    libc.symbols.close(seccompPipe.write);
    seccompWriteOpen = false;
    const args = buildBwrapArgs(withoutVanishedMasks(plan), {
      fds: {
        jsonStatusFd: statusPipe.write,
        blockFd: blockPipe?.read ?? null,
        seccompFd: seccompPipe.read,
      },
    });
    // Inheritable only from here to the (synchronous) spawn: nothing else starts in between.
    for (const fd of childEnds) setInheritable(libc, fd, true);
    let child: Deno.ChildProcess;
    try {
      // `setsid -w` execs bwrap in place (the spawned child leads no process group, so it need
      // not fork): the child's pid is bwrap's. Should it fork after all, -w keeps it waiting.
      const argv = [...enter, bwrapPath, ...args];
      child = new Deno.Command(setsid ?? argv[0], {
        args: setsid === null ? argv.slice(1) : ["-w", ...argv],
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
        detached: setsid === null,
        clearEnv: true,
        env: { ...plan.env },
        cwd: plan.cwd,
      }).spawn();
    } catch (error) {
      throw new SandboxError(
        "sandbox_failed",
        `Cannot start Bubblewrap ("${bwrapPath}"): ${errorMessage(error)}`,
        { cause: error },
      );
    }
    return { bwrap: child, status: new JsonLines(status), block };
  } catch (error) {
    if (status !== null) closeQuietly(status);
    if (block !== null) closeQuietly(block);
    throw error;
  } finally {
    for (const fd of [statusPipe.read, ...childEnds, ...(blockPipe ? [blockPipe.write] : [])]) {
      libc.symbols.close(fd);
    }
    if (seccompWriteOpen) libc.symbols.close(seccompPipe.write);
  }
}

interface BridgeProcess {
  readonly ready: Promise<void>;
  /** The bridge's pid (a process of its own; undefined for the launcher's in-process listeners). */
  readonly pid?: number;
  /** Started early (`sandboxPid` null): tells the bridge which sandbox to join. */
  enter(sandboxPid: number): void;
  /** Calls `onExit` if the bridge exits before {@linkcode BridgeProcess.stop} is called. */
  watch(onExit: (how: string) => void): void;
  stop(): Promise<void>;
}

/**
 * The bridge without a process, for a launcher running as root: once the
 * sandbox's pid is known, the launcher's own thread steps into the sandbox's
 * network namespace just long enough to bind the proxy ports on its loopback
 * (and, with capture, to add the synthetic range, bind the DNS stub and,
 * later, each name's listeners), then steps back. Accepted connections go to
 * the proxy in the same process: no second runtime to start, no relay.
 * Nothing of it is visible inside but the listening sockets, as with the
 * bridge process; the command still cannot reach the launcher's process or
 * files.
 */
function startJoinedBridge(options: {
  ports: readonly number[];
  capture: CapturePlan | null;
  sink: () => Promise<ConnectionSink>;
}): BridgeProcess {
  const { promise: entered, resolve: enter } = Promise.withResolvers<number>();
  const closers: (() => Promise<void> | void)[] = [];
  let stopped = false;
  // Loaded while bwrap starts.
  const modules = Promise.all([
    import("./netns.ts"),
    import("./bridge.ts"),
    options.capture === null ? null : import("./capture.ts"),
  ]);
  modules.catch(() => {});
  const ready = (async () => {
    const pid = await entered;
    if (stopped) return;
    // Asked only now: the proxy is started (beforeCommand) once bwrap is.
    const sink = options.sink();
    const [{ openNetworkNamespace, untilLoopbackUp }, { startBridge }, capture] = await modules;
    if (stopped) return;
    const inside = openNetworkNamespace(pid);
    closers.push(() => inside.close());
    await untilLoopbackUp((fn) => inside.run(fn), () => stopped);
    if (stopped) return;
    const proxy = await sink;
    if (stopped) return;
    const bridge = startBridge({
      listen: options.ports.map((port) => ({ hostname: BRIDGE_HOST, port })),
      target: "",
      bind: (address) => inside.run(() => Deno.listen(address)),
      handoff: (conn) => proxy.serveClient(conn),
    });
    closers.unshift(() => bridge.close());
    if (capture !== null && options.capture !== null) {
      const running = capture.startCapture({
        ports: options.capture.ports,
        tlsPorts: options.capture.tlsPorts,
        httpPorts: options.capture.httpPorts,
        addresses: options.capture.addresses ?? [],
        onProblem: (message) =>
          void Deno.stderr.writeSync(new TextEncoder().encode(`sandbox: ${message}\n`)),
        sandboxPid: pid,
        deliver: { handoff: (conn, header) => proxy.serveCaptured(conn, header) },
        inNamespace: (fn) => inside.run(fn),
        procNet: `/proc/${pid}/net`,
      });
      closers.unshift(() => running.close());
    }
  })();
  ready.catch(() => {});
  return {
    ready,
    enter: (pid) => enter(pid),
    // No process of its own: it stops only with the launcher.
    watch: () => {},
    async stop() {
      stopped = true;
      enter(0);
      await ready.catch(() => {});
      for (const close of closers.splice(0)) await close();
    },
  };
}

function startBridgeProcess(
  sandboxPid: number | null,
  options: {
    setsid: string | null;
    nsenter: string | null;
    /** Started early and unprivileged: `unshare`, which gives it a user namespace of its own. */
    unshare?: string | null;
    self: readonly string[];
    env: Readonly<Record<string, string>>;
    enterUser: boolean;
    target: string;
    ports: readonly number[];
    capture: CapturePlan | null;
  },
): BridgeProcess {
  if (options.self.length === 0) {
    throw new SandboxError(
      "sandbox_failed",
      "Cannot start the bridge: no way to run sandbox again",
    );
  }
  const early = sandboxPid === null || options.nsenter === null;
  const nsArgs = early ? [] : [`--net=/proc/${sandboxPid}/ns/net`];
  // Unprivileged, the network namespace belongs to a user namespace of bwrap's: join that first.
  const owner = options.enterUser && !early ? openNetnsOwner(sandboxPid!) : null;
  if (owner !== null) {
    nsArgs.unshift(`--user=/proc/${Deno.pid}/fd/${owner.fd}`, "--preserve-credentials");
  }
  const bridgeArgv = [
    ...options.self,
    "__bridge",
    ...(early ? ["--netns-from-stdin", "1"] : []),
    "--target",
    options.target,
    ...options.ports.flatMap((port) => ["--listen", `${BRIDGE_HOST}:${port}`]),
    ...(options.capture === null ? [] : [
      "--capture-target",
      options.capture.socket,
      "--capture-ports",
      options.capture.ports.join(","),
      "--tls-ports",
      options.capture.tlsPorts.join(","),
      "--http-ports",
      options.capture.httpPorts.join(","),
      ...((options.capture.addresses ?? []).length === 0
        ? []
        : ["--capture-addresses", options.capture.addresses!.join(",")]),
      ...(early ? [] : ["--sandbox-pid", String(sandboxPid)]),
    ]),
  ];
  // Early: the bridge itself (setsid execs it in place), or unshare, which execs it as the owner
  // of a new user namespace where it keeps its capabilities; else nsenter, which execs it.
  const unshare = early ? options.unshare ?? null : null;
  const program = unshare ?? (early ? bridgeArgv[0] : options.nsenter!);
  const args = unshare !== null
    ? ["--user", "--map-current-user", "--keep-caps", "--", ...bridgeArgv]
    : early
    ? bridgeArgv.slice(1)
    : [...nsArgs, "--", ...bridgeArgv];
  let child: Deno.ChildProcess;
  try {
    // Its own session (setsid execs in place: the pid stays the bridge's): the terminal's
    // Ctrl-C goes to the launcher's process group, and the command still needs the bridge
    // while it handles the SIGINT the launcher forwards.
    child = new Deno.Command(options.setsid ?? program, {
      args: options.setsid === null ? args : ["-w", program, ...args],
      // stdin stays open for the bridge's lifetime: its end (also when the launcher dies) stops it.
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      clearEnv: true,
      env: { ...options.env },
    }).spawn();
  } catch (error) {
    owner?.[Symbol.dispose]();
    throw new SandboxError(
      "sandbox_failed",
      `Cannot start the bridge with "${program}": ${errorMessage(error)}`,
      { cause: error },
    );
  }
  let done = false;
  let stopped = false;
  const exited = child.status.finally(() => done = true);
  const stdin = child.stdin.getWriter();
  const stdout = child.stdout.getReader();
  const ready = (async () => {
    const { promise: timedOut, reject } = Promise.withResolvers<never>();
    const timer = setTimeout(
      () => reject(new SandboxError("sandbox_failed", "The bridge did not start within 15 s")),
      BRIDGE_READY_TIMEOUT_MS,
    );
    const decoder = new TextDecoder();
    let text = "";
    try {
      while (!text.includes("\n")) {
        const chunk = await Promise.race([stdout.read(), timedOut]);
        if (chunk.done) {
          throw new SandboxError("sandbox_failed", "The bridge exited before it was ready");
        }
        text += decoder.decode(chunk.value, { stream: true });
      }
    } finally {
      clearTimeout(timer);
      owner?.[Symbol.dispose]();
    }
    if (!text.startsWith("ready")) {
      throw new SandboxError("sandbox_failed", `The bridge failed: ${text.trim()}`);
    }
  })();
  ready.catch(() => {});
  return {
    ready,
    pid: child.pid,
    enter(pid) {
      stdin.write(new TextEncoder().encode(`${pid}\n`)).catch(() => {});
    },
    watch(onExit) {
      exited.then((status) => {
        if (stopped) return;
        onExit(status.signal !== null ? `killed by ${status.signal}` : `exit code ${status.code}`);
      });
    },
    async stop() {
      stopped = true;
      owner?.[Symbol.dispose]();
      if (!done) killQuietly(child.pid, "SIGKILL");
      await exited;
      await stdin.close().catch(() => {});
      await stdout.cancel().catch(() => {});
    },
  };
}

/** Reads JSON objects, one per line, from bwrap's status pipe. */
class JsonLines {
  #file: Deno.FsFile;
  #queue: Record<string, unknown>[] = [];
  #waiters: ((value: Record<string, unknown> | null) => void)[] = [];
  #ended = false;

  constructor(file: Deno.FsFile) {
    this.#file = file;
    this.#pump().finally(() => {
      this.#ended = true;
      for (const waiter of this.#waiters.splice(0)) waiter(null);
    });
  }

  async #pump(): Promise<void> {
    const decoder = new TextDecoder();
    const chunk = new Uint8Array(4096);
    let buffer = "";
    for (;;) {
      let n: number | null;
      try {
        n = await this.#file.read(chunk);
      } catch {
        return; // closed
      }
      if (n === null) return;
      buffer += decoder.decode(chunk.subarray(0, n), { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) !== -1) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line === "") continue;
        try {
          this.#push(JSON.parse(line));
        } catch {
          // Not JSON: bwrap never writes that; ignore rather than guess.
        }
      }
    }
  }

  #push(value: Record<string, unknown>): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(value);
    else this.#queue.push(value);
  }

  /** The next object, or null once the stream has ended. */
  next(): Promise<Record<string, unknown> | null> {
    const value = this.#queue.shift();
    if (value !== undefined) return Promise.resolve(value);
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  close(): void {
    closeQuietly(this.#file);
  }
}

async function writeAndClose(file: Deno.FsFile, text: string): Promise<void> {
  try {
    await file.write(new TextEncoder().encode(text));
  } finally {
    closeQuietly(file);
  }
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed.
  }
}

/** The first child of `pid` (bwrap's init inside the sandbox has exactly one: the command). */
function findChild(pid: number): number | null {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`);
    const first = Number.parseInt(text.trim().split(/\s+/)[0], 10);
    return Number.isSafeInteger(first) ? first : null;
  } catch {
    return null;
  }
}

/** SIGKILLs `pid` (not our child) and waits, bounded, until it is gone or a zombie. */
async function killAndReap(pid: number): Promise<void> {
  killQuietly(pid, "SIGKILL");
  for (let i = 0; i < 400; i++) {
    let stat: string;
    try {
      stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    } catch {
      return;
    }
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function killGroup(pid: number, signal: Deno.Signal): void {
  try {
    // bwrap's --new-session made the command a session and process-group leader.
    Deno.kill(-pid, signal);
  } catch {
    killQuietly(pid, signal);
  }
}

function killQuietly(pid: number | undefined, signal: Deno.Signal): void {
  if (pid === undefined) return;
  try {
    Deno.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

async function setupFailure(code: number, uid: number): Promise<SandboxError> {
  const userns = await userNamespaceProblem({ uid, strict: true });
  if (userns !== null) return new SandboxError("userns_disabled", userns);
  return new SandboxError(
    "sandbox_failed",
    `Bubblewrap could not set up the sandbox (exit code ${code}): see its message above`,
  );
}

/**
 * Marks every inherited descriptor above 2 close-on-exec, so that nothing
 * the launcher was given (a CI runner's pipes, an agent's sockets) reaches
 * the command. Deno opens its own descriptors close-on-exec; this catches
 * the rest. Uses `fcntl` from libc through FFI; fails closed when it cannot.
 */
export function markInheritedFdsCloseOnExec(): void {
  using libc = openLibc("keep inherited file descriptors from the command");
  closeInheritedOnExec(libc);
}

function closeInheritedOnExec(libc: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>): void {
  const F_GETFD = 1;
  const FD_CLOEXEC = 1;
  const fds = [...Deno.readDirSync("/proc/self/fd")]
    .map((entry) => Number(entry.name))
    .filter((fd) => Number.isInteger(fd) && fd > 2);
  for (const fd of fds) {
    const flags = libc.symbols.fcntl(fd, F_GETFD, 0);
    if (flags < 0) continue; // closed since the listing (the listing's own descriptor)
    if ((flags & FD_CLOEXEC) === 0) setInheritable(libc, fd, false);
  }
}

/**
 * Waits (bounded, 5 s) until `pid` (the bridge, started by `unshare`) is in a
 * user namespace other than the launcher's, with its uid and gid maps
 * written: only then can bwrap be started inside it. Before `unshare` has
 * run, the pid's maps are the launcher's own (not empty), hence the
 * namespace comparison first. False when the process is gone (unshare
 * failed: its message is on stderr).
 */
async function untilOwnUserNamespace(pid: number): Promise<boolean> {
  const own = Deno.readLinkSync("/proc/self/ns/user");
  for (let waited = 0;; waited++) {
    try {
      // A zombie's namespace links cannot be read: the catch below.
      const ready = Deno.readLinkSync(`/proc/${pid}/ns/user`) !== own &&
        Deno.readTextFileSync(`/proc/${pid}/uid_map`).trim() !== "" &&
        Deno.readTextFileSync(`/proc/${pid}/gid_map`).trim() !== "";
      if (ready) return true;
    } catch {
      return false;
    }
    if (waited >= 5000) {
      throw new SandboxError(
        "sandbox_failed",
        `The bridge got no user namespace of its own within 5 s (pid ${pid})`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/**
 * Waits (bounded, 5 s) until the user namespace of `pid` has its uid and gid
 * maps. Unprivileged, bwrap's child writes them itself right after the
 * clone that bwrap reports on the status fd; the bridge must join after
 * that: it is root there (the launcher's uid maps to 0), so it keeps its
 * capabilities across `execve` and can add the capture range and bind
 * ports below 1024. Joined before, its uid is unmapped, the kernel drops
 * every capability at `execve`, and the rtnetlink request fails with EPERM.
 * A nested user namespace bwrap makes later has maps too (written after
 * the first's), so a non-empty map always means the first one is set.
 */
async function untilIdsMapped(pid: number): Promise<void> {
  for (let waited = 0;; waited++) {
    let mapped: boolean;
    try {
      mapped = (await Deno.readTextFile(`/proc/${pid}/uid_map`)).trim() !== "" &&
        (await Deno.readTextFile(`/proc/${pid}/gid_map`)).trim() !== "";
    } catch {
      return; // gone: the run ends on bwrap's own status
    }
    if (mapped) return;
    if (waited >= 5000) {
      throw new SandboxError(
        "sandbox_failed",
        `The sandbox's user namespace got no uid map within 5 s (pid ${pid})`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/**
 * Opens the user namespace that owns the network namespace of `pid` and
 * returns a descriptor for it (close-on-exec). Unprivileged, bwrap's
 * `--dev` makes it set the sandbox up as root in one user namespace and then
 * run the command in a second, nested one; only the first has the rights
 * over the network namespace that `nsenter --net` needs, and no process
 * stays in it, so it is reached with the `NS_GET_USERNS` ioctl instead.
 */
function openNetnsOwner(pid: number): { fd: number } & Disposable {
  using libc = openLibc("enter the sandbox's network namespace");
  const O_RDONLY_CLOEXEC = 0o2000000;
  const NS_GET_USERNS = 0xb701n;
  const netns = libc.symbols.open(
    new TextEncoder().encode(`/proc/${pid}/ns/net\0`),
    O_RDONLY_CLOEXEC,
  );
  if (netns < 0) {
    throw new SandboxError("sandbox_failed", `Cannot open the network namespace of pid ${pid}`);
  }
  const owner = libc.symbols.ioctl(netns, NS_GET_USERNS);
  libc.symbols.close(netns);
  if (owner < 0) {
    throw new SandboxError(
      "sandbox_failed",
      `Cannot find the user namespace that owns the network namespace of pid ${pid}`,
    );
  }
  let closed = false;
  return {
    fd: owner,
    [Symbol.dispose]() {
      if (closed) return;
      closed = true;
      using again = openLibc("close a namespace descriptor");
      again.symbols.close(owner);
    },
  };
}

/**
 * The seccomp filter for `plan` on this machine's architecture. Fails
 * closed: without a syscall table for the architecture, no run.
 */
function seccompFilterFor(plan: SandboxPlan): Uint8Array {
  const arch = currentSeccompArch();
  if (arch === null) {
    throw new SandboxError(
      "sandbox_failed",
      `Cannot build the seccomp filter for architecture "${Deno.build.arch}": ` +
        "the Linux sandbox supports x86_64 and aarch64",
    );
  }
  return buildSeccompFilter(plan, arch);
}

/** Writes all of `bytes` to a raw descriptor; fails closed. */
function writeAll(
  libc: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>,
  fd: number,
  bytes: Uint8Array,
): void {
  let done = 0;
  while (done < bytes.length) {
    const chunk = bytes.subarray(done);
    const n = Number(libc.symbols.write(fd, chunk, BigInt(chunk.length)));
    if (n <= 0) {
      throw new SandboxError("sandbox_failed", "Cannot hand Bubblewrap the seccomp filter");
    }
    done += n;
  }
}

/** A pipe from `pipe2(2)`, both ends close-on-exec. */
function makePipe(libc: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>): { read: number; write: number } {
  const O_CLOEXEC = 0o2000000;
  const fds = new Int32Array(2);
  if (libc.symbols.pipe2(fds, O_CLOEXEC) !== 0) {
    throw new SandboxError("sandbox_failed", "Cannot create a pipe for Bubblewrap");
  }
  return { read: fds[0], write: fds[1] };
}

/** Sets or clears a descriptor's close-on-exec flag; fails closed. */
function setInheritable(
  libc: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>,
  fd: number,
  inheritable: boolean,
): void {
  const F_SETFD = 2;
  const FD_CLOEXEC = 1;
  if (libc.symbols.fcntl(fd, F_SETFD, inheritable ? 0 : FD_CLOEXEC) !== 0) {
    throw new SandboxError(
      "sandbox_failed",
      `Cannot change the close-on-exec flag of file descriptor ${fd}`,
    );
  }
}

const LIBC_SYMBOLS = {
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

function openLibc(purpose: string): Deno.DynamicLibrary<typeof LIBC_SYMBOLS> & Disposable {
  try {
    return dlopenLibc(LIBC_SYMBOLS);
  } catch (error) {
    throw new SandboxError("sandbox_failed", `Cannot ${purpose}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/**
 * The plan without the file masks whose target is gone. The masks come from
 * the host's socket table and the deny-read list as they were when the plan
 * was made; a host program that removed its socket since (a test server, an
 * editor's helper) would otherwise make bwrap fail to create the mount point
 * under a read-only parent, and the run with it. A path that no longer exists
 * needs no mask; one created after this point is a socket bound after the
 * run started (see docs/linux-sandbox.md). Checked right before the spawn, so
 * the window left is bwrap's own start-up.
 */
export function withoutVanishedMasks(plan: SandboxPlan): SandboxPlan {
  const linux = plan.linux;
  if (linux === undefined) return plan;
  const kept = linux.maskedFiles.filter((path) => {
    try {
      Deno.lstatSync(path);
      return true;
    } catch (error) {
      // Only a path that is certainly gone is dropped; anything else keeps its mask.
      return !(error instanceof Deno.errors.NotFound);
    }
  });
  if (kept.length === linux.maskedFiles.length) return plan;
  return { ...plan, linux: { ...linux, maskedFiles: kept } };
}

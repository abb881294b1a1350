/**
 * `sandbox __bridge` (internal, hidden from help): the bridge process the
 * launcher starts inside the sandbox's network namespace. It listens, says
 * `ready` on stdout, and relays until its stdin closes (the launcher ended
 * the run, or died) or it gets SIGTERM.
 *
 * Usage: `sandbox __bridge --target SOCKET --listen 127.0.0.1:PORT [--listen …]`
 *
 * @module
 */
import { type RunningBridge, startBridge } from "../sandbox/bridge.ts";
import type { RunningCapture } from "../sandbox/capture.ts";
import { UsageError } from "../errors.ts";

/** Help text of the internal bridge command. */
export const BRIDGE_HELP =
  `Usage: sandbox __bridge --target SOCKET --listen HOST:PORT [--listen HOST:PORT]…
         [--capture-target SOCKET --capture-ports P,… --tls-ports P,… --http-ports P,…
          --capture-addresses ADDR,… --sandbox-pid PID]

Internal: relays TCP connections on HOST:PORT to the proxy's unix socket.
With --capture-target: answers DNS inside the namespace with synthetic
addresses and hands connections to them (and to each --capture-addresses
literal, put on the loopback device) on the captured ports to that socket.
Prints "ready" once listening; exits when stdin closes or on SIGTERM.`;

const BRIDGE_FLAGS = new Set([
  "--target",
  "--listen",
  "--capture-target",
  "--capture-ports",
  "--tls-ports",
  "--http-ports",
  "--capture-addresses",
  "--sandbox-pid",
  "--netns-from-stdin",
]);

/**
 * Runs the bridge until stdin reaches end of file or SIGTERM arrives;
 * returns the exit code.
 *
 * @example
 * ```ts
 * await bridgeCommand(["--target", "/tmp/x/proxy.sock", "--listen", "127.0.0.1:3128"]);
 * ```
 */
export async function bridgeCommand(args: string[]): Promise<number> {
  // Parsed by hand: node:util would pull Node compatibility into a process whose start-up every run waits for.
  const values: { target?: string; listen: string[]; other: Map<string, string> } = {
    listen: [],
    other: new Map(),
  };
  for (let i = 0; i < args.length; i += 2) {
    const [name, value] = [args[i], args[i + 1]];
    if (value === undefined || !BRIDGE_FLAGS.has(name)) {
      throw new UsageError(
        `Invalid arguments for "sandbox __bridge": unexpected "${name}": expected --target PATH and --listen HOST:PORT`,
      );
    }
    if (name === "--target") values.target = value;
    else if (name === "--listen") values.listen.push(value);
    else values.other.set(name, value);
  }
  if (values.target === undefined || !values.target.startsWith("/")) {
    throw new UsageError('Invalid arguments for "sandbox __bridge": expected --target /ABS/PATH');
  }
  const listen = values.listen.map(parseListen);
  if (listen.length === 0) {
    throw new UsageError('Invalid arguments for "sandbox __bridge": expected --listen HOST:PORT');
  }
  let sandboxPid = Number(values.other.get("--sandbox-pid") ?? "");
  const captureTarget = values.other.get("--capture-target");
  // Loaded only with capture: its FFI and DNS code are not every bridge's start-up. The load
  // starts now, so that it overlaps with the wait for the sandbox's pid.
  const capturing = captureTarget === undefined ? null : import("../sandbox/capture.ts");
  if (values.other.get("--netns-from-stdin") === "1") {
    // Started before the sandbox existed: its pid comes as the first line on stdin.
    const netns = import("../sandbox/netns.ts");
    const line = await readLine();
    if (line === null) return 0; // the launcher gave up before bwrap reported a pid
    sandboxPid = Number(line);
    const { enterNetworkNamespace, untilLoopbackUp } = await netns;
    enterNetworkNamespace(sandboxPid);
    // bwrap reports the pid before its child has brought the loopback device up.
    await untilLoopbackUp();
  }
  const startCapture = capturing === null ? null : (await capturing).startCapture;
  const target = values.target;
  // Another try adds the capture range again: the kernel's EEXIST is taken as done.
  const start = (): { capture: RunningCapture | null; bridge: RunningBridge } => {
    let capture: RunningCapture | null = null;
    if (startCapture !== null && captureTarget !== undefined) {
      const pid = sandboxPid;
      capture = startCapture({
        ports: parsePorts(values.other.get("--capture-ports")),
        tlsPorts: parsePorts(values.other.get("--tls-ports")),
        httpPorts: parsePorts(values.other.get("--http-ports")),
        addresses: (values.other.get("--capture-addresses") ?? "").split(",").filter((a) => a),
        onProblem: (message) =>
          void Deno.stderr.writeSync(new TextEncoder().encode(`sandbox: ${message}\n`)),
        deliver: { target: captureTarget },
        sandboxPid: Number.isSafeInteger(pid) && pid > 0 ? pid : null,
      });
    }
    try {
      return { capture, bridge: startBridge({ listen, target }) };
    } catch (error) {
      void capture?.[Symbol.asyncDispose]();
      throw error;
    }
  };
  const started = await startWhenAddressesAreUp(start);
  await using _capture = started.capture;
  await using bridge = started.bridge;
  const ports = bridge.addrs.map((addr) => addr.port).join(" ");
  await Deno.stdout.write(new TextEncoder().encode(`ready ${ports}\n`));
  await untilStopped();
  return 0;
}

function parsePorts(text: string | undefined): number[] {
  if (text === undefined || text === "") return [];
  return text.split(",").map((part) => {
    const port = Number(part);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new UsageError(`Invalid arguments for "sandbox __bridge": bad port "${part}"`);
    }
    return port;
  });
}

function parseListen(value: string): { hostname: string; port: number } {
  const colon = value.lastIndexOf(":");
  const port = Number(value.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(
      `Invalid arguments for "sandbox __bridge": bad --listen "${value}": expected HOST:PORT`,
    );
  }
  return { hostname: value.slice(0, colon), port };
}

/** One line from stdin (byte by byte: what follows stays for {@linkcode untilStopped}), or null at its end. */
async function readLine(): Promise<string | null> {
  const byte = new Uint8Array(1);
  let text = "";
  for (;;) {
    const n = await Deno.stdin.read(byte);
    if (n === null) return null;
    if (byte[0] === 0x0a) return text;
    text += String.fromCharCode(byte[0]);
    if (text.length > 32) return null;
  }
}

/**
 * Runs `start` until its listeners bind: right after the namespace is set up,
 * a bind can still fail with EADDRNOTAVAIL for a moment on a loaded machine
 * (the loopback device or the capture range not yet usable). Bounded: gives
 * up after about 5 s with the error.
 */
async function startWhenAddressesAreUp<T>(start: () => T): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      return start();
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrNotAvailable) || Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function untilStopped(): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  const onSignal = () => resolve();
  Deno.addSignalListener("SIGTERM", onSignal);
  const buffer = new Uint8Array(64);
  const reading = (async () => {
    try {
      while ((await Deno.stdin.read(buffer)) !== null) {
        // Nothing is expected on stdin; only its end matters.
      }
    } catch {
      // A broken pipe means the same as end of file.
    }
    resolve();
  })();
  try {
    await promise;
  } finally {
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  // On SIGTERM the stdin read is still pending; the process exits right after anyway.
  void reading;
}

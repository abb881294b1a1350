/**
 * Helpers for the `sandbox run` end-to-end tests: run the CLI as a real
 * subprocess, and small loopback servers written with raw sockets.
 *
 * @module
 */

// The subprocess runner lives in cli_helpers.ts, shared with the other CLI tests.
export {
  type CliResult,
  MAIN,
  sandboxArgv,
  sandboxCli,
  type SandboxCliOptions,
} from "./cli_helpers.ts";
import { serveConnections } from "./proxy_helpers.ts";
import { runDirBase } from "../sandbox/run_dir.ts";

/** A server the test started; close it when done. */
export interface TestServer extends AsyncDisposable {
  /** Port (TCP servers) or 0. */
  readonly port: number;
  /** How many connections it accepted. */
  readonly accepted: () => number;
  /** Stops it and closes every connection. */
  close(): Promise<void>;
}

/**
 * A raw HTTP/1.1 server: answers every request with `200` and `body`, then
 * closes the connection.
 */
export function startHttpServer(body: string, hostname = "127.0.0.1"): TestServer {
  return startServer(Deno.listen({ hostname, port: 0 }), async (conn) => {
    const buf = new Uint8Array(16384);
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buf);
      if (n === null) return;
      head += new TextDecoder().decode(buf.subarray(0, n));
    }
    const bytes = new TextEncoder().encode(body);
    await writeAll(
      conn,
      new TextEncoder().encode(
        `HTTP/1.1 200 OK\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`,
      ),
    );
    await writeAll(conn, bytes);
  });
}

/** A unix stream socket server that writes `reply` to each client and closes. */
export function startUnixServer(path: string, reply = "pong"): TestServer {
  return startServer(Deno.listen({ transport: "unix", path }), async (conn) => {
    await writeAll(conn, new TextEncoder().encode(reply));
  });
}

function startServer(
  listener: Deno.Listener,
  handle: (conn: Deno.Conn) => Promise<void>,
): TestServer {
  const served = serveConnections(listener, handle);
  const addr = listener.addr;
  return {
    port: addr.transport === "tcp" ? addr.port : 0,
    accepted: served.accepted,
    close: served.close,
    [Symbol.asyncDispose]: served.close,
  };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Paths of this user's run directories (`BASE/sandbox-run-*`, see `runDirBase()`) right now. */
export function runDirs(): string[] {
  const base = runDirBase(Deno.env.toObject(), Deno.uid() ?? 0);
  const out: string[] = [];
  try {
    for (const entry of Deno.readDirSync(base)) {
      if (entry.name.startsWith("sandbox-run-")) out.push(`${base}/${entry.name}`);
    }
  } catch {
    // No base yet: no run dirs.
  }
  return out.sort();
}

/** Parses `key=value` lines of a command's output into a map (later lines win). */
export function parseLines(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) map.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return map;
}

/** Whether a program exists at this absolute path (tests skip what the machine lacks). */
export function hasProgram(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Every descendant of `root` (from the stat file of each pid in /proc), parents before their children. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const child of children.get(pid) ?? []) {
      out.push(child);
      walk(child);
    }
  };
  walk(root);
  return out;
}

/** A child process as /proc shows it. */
export interface ChildProcessInfo {
  readonly pid: number;
  /** Its argv. */
  readonly argv: readonly string[];
  /** Its argv joined with spaces (for matching). */
  readonly cmdline: string;
}

/** The children of `pid` (those whose parent it is now), from /proc. */
export function childrenOf(pid: number): ChildProcessInfo[] {
  const out: ChildProcessInfo[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const status = Deno.readTextFileSync(`/proc/${entry.name}/status`);
      if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) !== pid) continue;
      const argv = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0");
      if (argv.at(-1) === "") argv.pop();
      out.push({ pid: Number(entry.name), argv, cmdline: argv.join(" ") });
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/**
 * Polls `get` every 25 ms until it gives something other than null, undefined
 * or false, and returns that; throws naming `what` after `timeoutMs`.
 */
export async function eventually<T>(
  what: string,
  get: () => T | null | undefined | false,
  timeoutMs = 10_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = get();
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Soak test of the proxy: starts one `sandbox proxy` process, drives it with
 * concurrent clients (default 200) mixing HTTP absolute-form (keep-alive),
 * CONNECT and SOCKS5, allowed and blocked, against loopback fake upstreams
 * (names mapped with `--resolve`), for a set time (default 600 s), then
 * prints requests served, expected refusals, unexpected errors, and the
 * proxy's open file descriptors (/proc/PID/fd) and RSS (/proc/PID/status
 * VmRSS) when idle after the warm-up and when idle after the clients stop.
 *
 * Targets: zero unexpected errors; fds back to the post-warm-up baseline;
 * RSS growth under 10%. Exits 1 when a target is missed.
 *
 * ```sh
 * deno run -A bench/soak.ts --seconds 600 --clients 200
 * ```
 *
 * @module
 */
import { serveConnections } from "../tests/proxy_helpers.ts";
import { parseArgs } from "node:util";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const REPO = new URL("..", import.meta.url).pathname;
const OP_TIMEOUT_MS = 15_000;

/** What one scenario ended in. */
type Outcome =
  | { kind: "served"; requests: number }
  | { kind: "refused" }
  | { kind: "error"; message: string };

/** Counters of the run. */
interface Tally {
  served: number;
  refused: number;
  errors: number;
  byScenario: Map<string, { served: number; refused: number; errors: number }>;
  samples: Map<string, number>;
}

/** A fd and memory snapshot of a process. */
interface Snapshot {
  fds: number;
  rssKiB: number;
}

function snapshot(pid: number): Snapshot {
  const fds = [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return { fds, rssKiB: rss === null ? NaN : Number(rss[1]) };
}

class TimeoutError extends Error {}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

async function writeAll(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** A small buffered reader over a connection. */
class Reader {
  #conn: Deno.Conn;
  #buf = new Uint8Array(0);
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }
  async #more(): Promise<boolean> {
    const chunk = new Uint8Array(16384);
    const n = await this.#conn.read(chunk);
    if (n === null) return false;
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
    return true;
  }
  async bytes(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!(await this.#more())) {
        throw new Error(`Connection closed after ${this.#buf.length} of ${n} bytes`);
      }
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }
  /** Reads one HTTP response (Content-Length framed, or until close). */
  async response(): Promise<{ status: number; body: string; close: boolean }> {
    let end = -1;
    for (;;) {
      end = decoder.decode(this.#buf).indexOf("\r\n\r\n");
      if (end !== -1) break;
      if (!(await this.#more())) throw new Error("Connection closed before a response head");
    }
    const head = decoder.decode(this.#buf.subarray(0, end));
    this.#buf = this.#buf.slice(end + 4);
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    const close = /\r\nconnection: *close/i.test(head);
    let body: Uint8Array;
    if (length !== null) {
      body = await this.bytes(Number(length[1]));
    } else {
      while (await this.#more()) { /* until close */ }
      body = this.#buf;
      this.#buf = new Uint8Array(0);
    }
    return { status, body: decoder.decode(body), close };
  }
}

/** The fake upstream: HTTP/1.1 keep-alive, answers every request with "ok:<path>". */
function startUpstream(hostname: string): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname, port: 0 });
  const handle = async (conn: Deno.Conn) => {
    const reader = new Reader(conn);
    try {
      for (;;) {
        let head = "";
        // Read a request head byte-for-byte through the buffered reader.
        for (;;) {
          const b = await reader.bytes(1);
          head += String.fromCharCode(b[0]);
          if (head.endsWith("\r\n\r\n")) break;
          if (head.length > 16384) return;
        }
        const length = /\r\ncontent-length: *(\d+)/i.exec(head);
        if (length !== null) await reader.bytes(Number(length[1]));
        const path = head.split(" ")[1] ?? "?";
        const body = `ok:${path}`;
        await writeAll(conn, `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      }
    } catch {
      // Client went away; serveConnections closes the connection.
    }
  };
  const served = serveConnections(listener, handle);
  return { port: listener.addr.port, close: served.close };
}

interface Ports {
  http: number;
  socks: number;
  upstream: number;
}

type Scenario = (ports: Ports, rnd: () => number) => Promise<Outcome>;

async function withConn(
  port: number,
  work: (conn: Deno.Conn) => Promise<Outcome>,
): Promise<Outcome> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    return await work(conn);
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

const httpAllowed: Scenario = (p, rnd) =>
  withConn(p.http, async (conn) => {
    const reader = new Reader(conn);
    const count = 1 + Math.floor(rnd() * 5);
    for (let i = 0; i < count; i++) {
      const post = rnd() < 0.3;
      const body = post ? "x".repeat(Math.floor(rnd() * 4096)) : "";
      await writeAll(
        conn,
        `${post ? "POST" : "GET"} http://allowed.test:${p.upstream}/r${i} HTTP/1.1\r\n` +
          `Host: allowed.test:${p.upstream}\r\n` +
          (post ? `Content-Length: ${body.length}\r\n` : "") +
          `\r\n${body}`,
      );
      const r = await reader.response();
      if (r.status !== 200 || r.body !== `ok:/r${i}`) {
        return {
          kind: "error",
          message: `http allowed: status ${r.status} body ${r.body.slice(0, 40)}`,
        };
      }
    }
    return { kind: "served", requests: count };
  });

const httpBlocked: Scenario = (p, rnd) =>
  withConn(p.http, async (conn) => {
    const host = rnd() < 0.5 ? "denied.test" : "other.test";
    await writeAll(
      conn,
      `GET http://${host}:${p.upstream}/ HTTP/1.1\r\nHost: ${host}:${p.upstream}\r\n\r\n`,
    );
    const r = await new Reader(conn).response();
    return r.status === 403
      ? { kind: "refused" }
      : { kind: "error", message: `http blocked: status ${r.status}` };
  });

async function tunnelGet(conn: Deno.Conn, reader: Reader, upstream: number): Promise<Outcome> {
  await writeAll(conn, `GET /t HTTP/1.1\r\nHost: allowed.test:${upstream}\r\n\r\n`);
  const r = await reader.response();
  return r.status === 200 && r.body === "ok:/t"
    ? { kind: "served", requests: 1 }
    : { kind: "error", message: `tunnel: status ${r.status}` };
}

const connectAllowed: Scenario = (p) =>
  withConn(p.http, async (conn) => {
    const reader = new Reader(conn);
    await writeAll(
      conn,
      `CONNECT allowed.test:${p.upstream} HTTP/1.1\r\nHost: allowed.test:${p.upstream}\r\n\r\n`,
    );
    const r = await readConnectReply(reader);
    if (r !== 200) return { kind: "error", message: `CONNECT allowed: status ${r}` };
    return await tunnelGet(conn, reader, p.upstream);
  });

async function readConnectReply(reader: Reader): Promise<number> {
  let head = "";
  while (!head.endsWith("\r\n\r\n")) head += String.fromCharCode((await reader.bytes(1))[0]);
  return Number(head.slice(9, 12));
}

const connectBlocked: Scenario = (p) =>
  withConn(p.http, async (conn) => {
    await writeAll(
      conn,
      `CONNECT denied.test:${p.upstream} HTTP/1.1\r\nHost: denied.test:${p.upstream}\r\n\r\n`,
    );
    const r = await new Reader(conn).response();
    return r.status === 403
      ? { kind: "refused" }
      : { kind: "error", message: `CONNECT blocked: status ${r.status}` };
  });

function socksRequest(host: string, port: number): Uint8Array {
  const name = encoder.encode(host);
  return new Uint8Array([5, 1, 0, 5, 1, 0, 3, name.length, ...name, port >> 8, port & 0xff]);
}

async function socksReply(reader: Reader): Promise<number> {
  const method = await reader.bytes(2);
  if (method[0] !== 5 || method[1] !== 0) throw new Error(`SOCKS method reply ${method}`);
  const head = await reader.bytes(4);
  const rest = head[3] === 4 ? 16 : head[3] === 3 ? (await reader.bytes(1))[0] : 4;
  await reader.bytes(rest + 2);
  return head[1];
}

const socksAllowed: Scenario = (p) =>
  withConn(p.socks, async (conn) => {
    const reader = new Reader(conn);
    await writeAll(conn, socksRequest("allowed.test", p.upstream));
    const code = await socksReply(reader);
    if (code !== 0) return { kind: "error", message: `SOCKS allowed: reply ${code}` };
    return await tunnelGet(conn, reader, p.upstream);
  });

const socksBlocked: Scenario = (p) =>
  withConn(p.socks, async (conn) => {
    await writeAll(conn, socksRequest("denied.test", p.upstream));
    const code = await socksReply(new Reader(conn));
    return code === 2
      ? { kind: "refused" }
      : { kind: "error", message: `SOCKS blocked: reply ${code}` };
  });

const SCENARIOS: [string, Scenario, number][] = [
  ["http-allowed", httpAllowed, 3],
  ["http-blocked", httpBlocked, 1],
  ["connect-allowed", connectAllowed, 2],
  ["connect-blocked", connectBlocked, 1],
  ["socks-allowed", socksAllowed, 2],
  ["socks-blocked", socksBlocked, 1],
];

function pick(rnd: () => number): [string, Scenario] {
  const total = SCENARIOS.reduce((n, s) => n + s[2], 0);
  let x = rnd() * total;
  for (const [name, scenario, weight] of SCENARIOS) {
    if ((x -= weight) < 0) return [name, scenario];
  }
  return [SCENARIOS[0][0], SCENARIOS[0][1]];
}

/** A small seeded generator (mulberry32), so runs are repeatable. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function newTally(): Tally {
  return { served: 0, refused: 0, errors: 0, byScenario: new Map(), samples: new Map() };
}

async function drive(ports: Ports, clients: number, ms: number, tally: Tally, seed: number) {
  const until = Date.now() + ms;
  const client = async (id: number) => {
    const rnd = random(seed * 7919 + id);
    while (Date.now() < until) {
      const [name, scenario] = pick(rnd);
      let outcome: Outcome;
      try {
        outcome = await withTimeout(scenario(ports, rnd), OP_TIMEOUT_MS, name);
      } catch (error) {
        outcome = {
          kind: "error",
          message: `${name}: ${error instanceof Error ? error.message : error}`,
        };
      }
      const row = tally.byScenario.get(name) ?? { served: 0, refused: 0, errors: 0 };
      tally.byScenario.set(name, row);
      if (outcome.kind === "served") {
        tally.served += outcome.requests;
        row.served += outcome.requests;
      } else if (outcome.kind === "refused") {
        tally.refused++;
        row.refused++;
      } else {
        tally.errors++;
        row.errors++;
        const key = outcome.message.replace(/\d+/g, "N").slice(0, 120);
        tally.samples.set(key, (tally.samples.get(key) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
}

async function readFirstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
  } finally {
    reader.releaseLock();
  }
  return text.split("\n")[0];
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "600" },
      clients: { type: "string", default: "200" },
      warmup: { type: "string", default: "30" },
      seed: { type: "string", default: "1" },
    },
    strict: true,
  });
  const seconds = Number(values.seconds);
  const clients = Number(values.clients);
  const warmup = Number(values.warmup);
  const seed = Number(values.seed);
  if (![seconds, clients, warmup, seed].every((n) => Number.isFinite(n) && n >= 0) || clients < 1) {
    console.error("soak: --seconds, --clients, --warmup and --seed take non-negative numbers");
    return 2;
  }
  const home = await Deno.makeTempDir({ prefix: "sandbox-soak-" });
  const upstream = startUpstream("127.0.0.2");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${REPO}main.ts`,
      "proxy",
      "--allow",
      "allowed.test",
      "--deny",
      "denied.test",
      "--resolve",
      "allowed.test=127.0.0.2",
      "--resolve",
      "denied.test=127.0.0.3",
      "--http-port",
      "0",
      "--socks-port",
      "0",
    ],
    // Keep HOME (Deno's module cache lives there); hide the user's own config.
    env: { XDG_CONFIG_HOME: home, SANDBOX_MANAGED_CONFIG: "" },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const stderrText = child.stderr.text();
  try {
    const ready = JSON.parse(await withTimeout(readFirstLine(child.stdout), 30_000, "proxy start"));
    const ports: Ports = {
      http: Number(ready.http.split(":").pop()),
      socks: Number(ready.socks5.split(":").pop()),
      upstream: upstream.port,
    };
    const idle = snapshot(child.pid);
    console.log(
      `proxy pid ${child.pid}: idle before load: fds ${idle.fds}, RSS ${idle.rssKiB} KiB`,
    );

    const warm = newTally();
    await drive(ports, clients, warmup * 1000, warm, seed);
    await new Promise((r) => setTimeout(r, 2000));
    const start = snapshot(child.pid);
    console.log(
      `after ${warmup} s warm-up (idle): fds ${start.fds}, RSS ${start.rssKiB} KiB; ` +
        `warm-up served ${warm.served}, refused ${warm.refused}, errors ${warm.errors}`,
    );

    const tally = newTally();
    let peak = start;
    const sampler = setInterval(() => {
      try {
        const s = snapshot(child.pid);
        if (s.fds > peak.fds) peak = { ...peak, fds: s.fds };
        if (s.rssKiB > peak.rssKiB) peak = { ...peak, rssKiB: s.rssKiB };
      } catch {
        // The process is gone; reported below.
      }
    }, 1000);
    const t0 = performance.now();
    try {
      await drive(ports, clients, seconds * 1000, tally, seed + 1);
    } finally {
      clearInterval(sampler);
    }
    const elapsed = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 2000));
    const end = snapshot(child.pid);

    const growth = (end.rssKiB - start.rssKiB) / start.rssKiB * 100;
    console.log(`\nsoak: ${clients} clients for ${elapsed.toFixed(0)} s`);
    console.log(
      `served ${tally.served} (${
        (tally.served / elapsed).toFixed(0)
      }/s), expected refusals ${tally.refused}, unexpected errors ${tally.errors}`,
    );
    for (const [name, row] of [...tally.byScenario].sort()) {
      console.log(
        `  ${name.padEnd(16)} served ${row.served}  refused ${row.refused}  errors ${row.errors}`,
      );
    }
    for (const [message, count] of tally.samples) console.log(`  error x${count}: ${message}`);
    console.log(`fds:  start ${start.fds}, peak ${peak.fds}, end ${end.fds}`);
    console.log(
      `RSS:  start ${start.rssKiB} KiB, peak ${peak.rssKiB} KiB, end ${end.rssKiB} KiB (${
        growth >= 0 ? "+" : ""
      }${growth.toFixed(1)}%)`,
    );
    const ok = tally.errors === 0 && end.fds <= start.fds && growth < 10;
    console.log(ok ? "targets met" : "TARGETS MISSED");
    return ok ? 0 : 1;
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited; its status and stderr are reported below.
    }
    const status = await child.status;
    const err = await stderrText;
    if (status.code !== 0) console.error(`proxy exited ${status.code}:\n${err.slice(-2000)}`);
    await upstream.close();
    await Deno.remove(home, { recursive: true });
  }
}

if (import.meta.main) {
  Deno.exitCode = await main();
}

/**
 * Proxy benchmark, all on loopback, in one run:
 *
 * 1. throughput of a 1 GiB download (curl as the client, a raw Deno server as
 *    the source): direct, through a CONNECT tunnel (`curl -p`), and as an
 *    absolute-form request; MB/s (10^6 bytes/s, median of 3) and the ratio to
 *    direct;
 * 2. latency of 2,000 sequential small requests (a Deno raw-socket client):
 *    keep-alive absolute-form through the proxy vs keep-alive direct, and a
 *    new CONNECT tunnel per request vs a new direct connection per request;
 *    median and p99 per request;
 * 3. 1,000 concurrent CONNECT tunnels held open against a fresh proxy
 *    process: failures, and the proxy's peak RSS (VmHWM from /proc).
 *
 * The proxy runs as a separate `sandbox proxy` process so its RSS is its own.
 *
 * Run: `npx -y deno@2.9.6 run -A bench/proxy_bench.ts [--size-mib N] [--requests N] [--tunnels N]`
 *
 * @module
 */
import { serveConnections } from "../tests/proxy_helpers.ts";
import { parseArgs } from "node:util";
import { sandboxTaskFlags } from "../tools/task_flags.ts";
import { median, type ProxyProcess, startSandboxProxy } from "./common.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const TASK_FLAGS = await sandboxTaskFlags();
const V8_OVERRIDE = Deno.env.get("BENCH_PROXY_V8_FLAGS");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "size-mib": { type: "string", default: "1024" },
    requests: { type: "string", default: "2000" },
    tunnels: { type: "string", default: "1000" },
    reps: { type: "string", default: "3" },
  },
});
const SIZE = Number(values["size-mib"]) * 1024 * 1024;
const REQUESTS = Number(values.requests);
const TUNNELS = Number(values.tunnels);
const REPS = Number(values.reps);

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Source server: `/big` = SIZE bytes, `/small` = 2 bytes, `/hold` = echo whatever arrives; keep-alive. */
function startSource(hostname: string) {
  const listener = Deno.listen({ hostname, port: 0 });
  const chunk = new Uint8Array(1024 * 1024).fill(120);
  const serve = async (conn: Deno.TcpConn) => {
    const buf = new Uint8Array(16 * 1024);
    let pending = "";
    try {
      conn.setNoDelay(true);
      for (;;) {
        while (!pending.includes("\r\n\r\n")) {
          const n = await conn.read(buf);
          if (n === null) return;
          pending += decoder.decode(buf.subarray(0, n));
          if (pending.startsWith("HOLD")) break;
        }
        if (pending.startsWith("HOLD")) {
          // Tunnel test: echo bytes until closed.
          await writeAll(conn, encoder.encode(pending.slice(4)));
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) return;
            await writeAll(conn, buf.subarray(0, n));
          }
        }
        const end = pending.indexOf("\r\n\r\n");
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        if (head.includes(" /big ")) {
          await writeAll(
            conn,
            encoder.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${SIZE}\r\n\r\n`),
          );
          let left = SIZE;
          while (left > 0) {
            const n = Math.min(left, chunk.length);
            await writeAll(conn, n === chunk.length ? chunk : chunk.subarray(0, n));
            left -= n;
          }
        } else {
          await writeAll(conn, encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        }
      }
    } catch {
      // Client went away; serveConnections closes the connection.
    }
  };
  const served = serveConnections(listener, (conn) => serve(conn as Deno.TcpConn));
  return { port: listener.addr.port, close: served.close };
}

function startProxyProcess(sourceHost: string): Promise<ProxyProcess> {
  return startSandboxProxy([
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    // As `deno task sandbox` runs it (its flags), unless BENCH_PROXY_V8_FLAGS says otherwise
    // (set but empty: plain `deno run`).
    ...(V8_OVERRIDE === undefined ? TASK_FLAGS : V8_OVERRIDE === "" ? [] : [
      `--v8-flags=${V8_OVERRIDE}`,
    ]),
    MAIN,
    "proxy",
    "--allow",
    "bench.test",
    "--resolve",
    `bench.test=${sourceHost}`,
    "--socks-port",
    "0",
  ]);
}

function peakRssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match === null ? NaN : Number(match[1]) / 1024;
}

function currentRssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match === null ? NaN : Number(match[1]) / 1024;
}

function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function curlSpeed(args: string[]): Promise<number> {
  const out = await new Deno.Command("curl", {
    args: [
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{speed_download} %{size_download} %{http_code}",
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_PROXY: "", no_proxy: "" },
  }).output();
  const [speed, size, code] = decoder.decode(out.stdout).trim().split(" ").map(Number);
  if (code !== 200 || size !== SIZE) {
    throw new Error(
      `curl ${args.join(" ")}: HTTP ${code}, ${size} bytes; ${decoder.decode(out.stderr)}`,
    );
  }
  return speed / 1e6;
}

async function throughput(sourcePort: number, proxyPort: number) {
  const url = `http://bench.test:${sourcePort}/big`;
  const resolve = ["--resolve", `bench.test:${sourcePort}:127.0.0.2`];
  const runs = { direct: [] as number[], tunnel: [] as number[], absolute: [] as number[] };
  for (let i = 0; i < REPS; i++) {
    runs.direct.push(await curlSpeed([...resolve, url]));
    runs.tunnel.push(await curlSpeed(["-p", "-x", `http://127.0.0.1:${proxyPort}`, url]));
    runs.absolute.push(await curlSpeed(["-x", `http://127.0.0.1:${proxyPort}`, url]));
  }
  return {
    direct: median(runs.direct),
    tunnel: median(runs.tunnel),
    absolute: median(runs.absolute),
    runs,
  };
}

async function readResponse(conn: Deno.Conn, buf: Uint8Array): Promise<void> {
  // The source answers small requests with a fixed 40-byte response.
  let got = 0;
  let text = "";
  while (!(text.includes("\r\n\r\n") && text.endsWith("ok"))) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("Connection closed mid-response");
    got += n;
    text += decoder.decode(buf.subarray(0, n));
  }
  if (got === 0) throw new Error("Empty response");
}

async function keepAliveLatency(
  hostname: string,
  port: number,
  request: string,
): Promise<number[]> {
  const conn = await Deno.connect({ hostname, port });
  conn.setNoDelay(true);
  const buf = new Uint8Array(4096);
  const bytes = encoder.encode(request);
  const times: number[] = [];
  try {
    for (let i = 0; i < REQUESTS + 50; i++) {
      const start = performance.now();
      await writeAll(conn, bytes);
      await readResponse(conn, buf);
      if (i >= 50) times.push(performance.now() - start); // 50 warm-up requests
    }
  } finally {
    conn.close();
  }
  return times;
}

async function newConnectionLatency(
  connect: () => Promise<Deno.TcpConn>,
  preamble: Uint8Array | null,
  request: Uint8Array,
): Promise<number[]> {
  const buf = new Uint8Array(4096);
  const times: number[] = [];
  for (let i = 0; i < REQUESTS + 50; i++) {
    const start = performance.now();
    const conn = await connect();
    try {
      conn.setNoDelay(true);
      if (preamble !== null) {
        await writeAll(conn, preamble);
        let text = "";
        while (!text.includes("\r\n\r\n")) {
          const n = await conn.read(buf);
          if (n === null) throw new Error("Proxy closed the tunnel");
          text += decoder.decode(buf.subarray(0, n));
        }
      }
      await writeAll(conn, request);
      await readResponse(conn, buf);
    } finally {
      conn.close();
    }
    if (i >= 50) times.push(performance.now() - start);
  }
  return times;
}

async function tunnels(proxyPort: number, sourcePort: number) {
  const conns: Deno.Conn[] = [];
  let failures = 0;
  const connectOne = async (): Promise<void> => {
    let conn: Deno.Conn | null = null;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
      conns.push(conn);
      await writeAll(
        conn,
        encoder.encode(
          `CONNECT bench.test:${sourcePort} HTTP/1.1\r\nHost: bench.test:${sourcePort}\r\n\r\nHOLD`,
        ),
      );
      const buf = new Uint8Array(256);
      let text = "";
      while (!text.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) throw new Error("closed");
        text += decoder.decode(buf.subarray(0, n));
      }
      if (!text.startsWith("HTTP/1.1 200 ")) throw new Error(text);
    } catch {
      failures++;
    }
  };
  // Open in waves of 100 so the accept queues are not the thing being measured.
  for (let i = 0; i < TUNNELS; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, TUNNELS - i) }, connectOne));
  }
  // Every tunnel must still carry bytes both ways.
  let echoFailures = 0;
  await Promise.all(conns.map(async (conn) => {
    try {
      await writeAll(conn, encoder.encode("x"));
      const buf = new Uint8Array(16);
      const n = await conn.read(buf);
      if (n !== 1) echoFailures++;
    } catch {
      echoFailures++;
    }
  }));
  return {
    conns,
    failures,
    echoFailures,
    close() {
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
    },
  };
}

function fmt(n: number, digits = 0): string {
  return n.toFixed(digits);
}

const source = startSource("127.0.0.2");
try {
  console.log(
    `proxy bench: loopback, ${Deno.build.os}/${Deno.build.arch}, ${navigator.hardwareConcurrency} cores`,
  );
  console.log(
    `source: raw Deno server on 127.0.0.2:${source.port}; proxy: separate "sandbox proxy" process\n`,
  );

  const proxy = await startProxyProcess("127.0.0.2");
  try {
    console.log(
      `1. throughput, ${
        SIZE / 1024 / 1024
      } MiB download, curl client, median of ${REPS} (MB/s = 10^6 B/s)`,
    );
    const t = await throughput(source.port, proxy.http);
    console.log(
      `   direct                 ${fmt(t.direct)} MB/s   runs: ${
        t.runs.direct.map((x) => fmt(x)).join(", ")
      }`,
    );
    console.log(
      `   CONNECT tunnel         ${fmt(t.tunnel)} MB/s   ratio ${
        fmt(t.tunnel / t.direct, 2)
      }   runs: ${t.runs.tunnel.map((x) => fmt(x)).join(", ")}`,
    );
    console.log(
      `   absolute-form          ${fmt(t.absolute)} MB/s   ratio ${
        fmt(t.absolute / t.direct, 2)
      }   runs: ${t.runs.absolute.map((x) => fmt(x)).join(", ")}`,
    );

    console.log(
      `\n2. latency, ${REQUESTS} sequential small requests (Deno raw-socket client), ms per request`,
    );
    const small = `GET /small HTTP/1.1\r\nHost: bench.test:${source.port}\r\n\r\n`;
    const viaProxy =
      `GET http://bench.test:${source.port}/small HTTP/1.1\r\nHost: bench.test:${source.port}\r\n\r\n`;
    const direct = await keepAliveLatency("127.0.0.2", source.port, small);
    const proxied = await keepAliveLatency("127.0.0.1", proxy.http, viaProxy);
    const row = (name: string, xs: number[], base: number[] | null) =>
      console.log(
        `   ${name.padEnd(34)} median ${fmt(median(xs), 3)}  p99 ${fmt(percentile(xs, 99), 3)}` +
          (base === null
            ? ""
            : `   added: median ${fmt(median(xs) - median(base), 3)}  p99 ${
              fmt(percentile(xs, 99) - percentile(base, 99), 3)
            }`),
      );
    row("keep-alive, direct", direct, null);
    row("keep-alive, absolute-form via proxy", proxied, direct);
    const newDirect = await newConnectionLatency(
      () => Deno.connect({ hostname: "127.0.0.2", port: source.port }),
      null,
      encoder.encode(small.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")),
    );
    const newTunnel = await newConnectionLatency(
      () => Deno.connect({ hostname: "127.0.0.1", port: proxy.http }),
      encoder.encode(
        `CONNECT bench.test:${source.port} HTTP/1.1\r\nHost: bench.test:${source.port}\r\n\r\n`,
      ),
      encoder.encode(small.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")),
    );
    row("new connection, direct", newDirect, null);
    row("new connection, CONNECT tunnel", newTunnel, newDirect);
    console.log(`   (proxy process after 1-2: peak RSS ${fmt(peakRssMiB(proxy.pid), 1)} MiB)`);
  } finally {
    await proxy.close();
  }

  console.log(`\n3. ${TUNNELS} concurrent CONNECT tunnels held open, fresh proxy process`);
  const fresh = await startProxyProcess("127.0.0.2");
  try {
    const idleRss = currentRssMiB(fresh.pid);
    const held = await tunnels(fresh.http, source.port);
    await new Promise((r) => setTimeout(r, 500));
    const rss = currentRssMiB(fresh.pid);
    const peak = peakRssMiB(fresh.pid);
    console.log(
      `   tunnels opened: ${
        held.conns.length - held.failures
      }/${TUNNELS}, failures: ${held.failures}`,
    );
    console.log(`   echo through every tunnel afterwards: ${held.echoFailures} failures`);
    console.log(
      `   proxy RSS: at start ${fmt(idleRss, 1)} MiB, with tunnels open ${
        fmt(rss, 1)
      } MiB, peak (VmHWM) ${fmt(peak, 1)} MiB`,
    );
    held.close();
  } finally {
    await fresh.close();
  }
} finally {
  await source.close();
}

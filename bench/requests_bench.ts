/**
 * Keep-alive request latency with a real client: curl fetches a small
 * response 1,000 times over one connection (a URL glob), and the figure is
 * the sum of curl's own per-transfer times (`%{time_total}`), so process
 * and sandbox start-up are left out. Each row beside the direct baseline
 * measured in the same run (sources on loopback, rows interleaved, median
 * of N repetitions):
 *
 * - direct: curl on the host straight to the source;
 * - via the proxy: a `sandbox proxy` process, absolute-form (`-x`) and
 *   CONNECT tunnel (`-p -x`); names pinned with `--resolve`, and once with
 *   the system resolver (`localhost`, from /etc/hosts) to show the lookup
 *   cost per request;
 * - via `sandbox run`: curl inside the sandbox, through the listeners inside and the
 *   proxy (absolute-form from the proxy variables, and `-p` for a tunnel).
 *
 *   deno run -A bench/requests_bench.ts [--requests N] [--reps N] [--quick]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { serveConnections } from "../tests/proxy_helpers.ts";
import { median, sandboxArgv, startSandboxProxy } from "./common.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    requests: { type: "string", default: "1000" },
    reps: { type: "string" },
    quick: { type: "boolean", default: false },
    main: { type: "string" },
  },
});
const REQUESTS = Number(values.requests);
const REPS = Number(values.reps ?? (values.quick ? 3 : 7));
// `--main` points at another checkout's main.ts (an A/B comparison in one run).
const MAIN = values.main ?? decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);
const SELF = await sandboxArgv({ main: MAIN });
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A keep-alive source answering every request head with a 2-byte body. */
function startSource(hostname: string) {
  const listener = Deno.listen({ hostname, port: 0 });
  const response = encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  const served = serveConnections(listener, async (conn) => {
    (conn as Deno.TcpConn).setNoDelay(true);
    const buf = new Uint8Array(16 * 1024);
    let pending = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return;
      pending += decoder.decode(buf.subarray(0, n));
      for (let end = pending.indexOf("\r\n\r\n"); end !== -1; end = pending.indexOf("\r\n\r\n")) {
        pending = pending.slice(end + 4);
        let offset = 0;
        while (offset < response.length) offset += await conn.write(response.subarray(offset));
      }
    }
  });
  return { port: listener.addr.port, close: served.close };
}

/** `sandbox proxy ARGS…` with an HTTP listener and SOCKS5 on any free port. */
async function startProxy(args: string[]) {
  const proxy = await startSandboxProxy([...SELF, "proxy", "--socks-port", "0", ...args]);
  return { port: proxy.http, close: () => proxy.close() };
}

/** Runs curl (argv after `curl`, or a full argv) and returns the summed transfer time in ms. */
async function curlTotal(argv: string[], env: Record<string, string> = {}): Promise<number> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_PROXY: "", no_proxy: "", ...env },
  }).output();
  const lines = decoder.decode(out.stdout).trim().split("\n");
  const fields = lines.map((line) => line.split(" "));
  if (
    !out.success || fields.length !== REQUESTS || fields.some(([, code]) => code !== "200")
  ) {
    throw new Error(
      `${argv.join(" ")}: ${lines.length} transfers, codes ${
        [...new Set(fields.map(([, code]) => code))].join(",")
      }; ${decoder.decode(out.stderr).slice(0, 500)}`,
    );
  }
  return fields.reduce((sum, [seconds]) => sum + Number(seconds), 0) * 1000;
}

const CURL = ["curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{http_code}\\n"];
const source = startSource("127.0.0.2");
const local = startSource("127.0.0.1");
const pinned = await startProxy(["--allow", "bench.test", "--resolve", "bench.test=127.0.0.2"]);
const system = await startProxy(["--allow", "localhost"]);
try {
  const glob = `?[1-${REQUESTS}]`;
  const url = `http://bench.test:${source.port}/small${glob}`;
  const localUrl = `http://localhost:${local.port}/small${glob}`;
  const inSandbox = [
    ...SELF,
    "run",
    "--allow",
    "bench.test",
    "--resolve",
    "bench.test=127.0.0.2",
    "--",
  ];
  const rows: [string, string[], "direct" | "local"][] = [
    ["direct (curl on the host)", [
      ...CURL,
      "--resolve",
      `bench.test:${source.port}:127.0.0.2`,
      url,
    ], "direct"],
    [
      "absolute-form via the proxy",
      [...CURL, "-x", `http://127.0.0.1:${pinned.port}`, url],
      "direct",
    ],
    [
      "CONNECT tunnel via the proxy",
      [...CURL, "-p", "-x", `http://127.0.0.1:${pinned.port}`, url],
      "direct",
    ],
    [
      "absolute-form via sandbox run (listeners inside + proxy)",
      [...inSandbox, ...CURL, url],
      "direct",
    ],
    [
      "CONNECT tunnel via sandbox run (listeners inside + proxy)",
      [...inSandbox, ...CURL, "-p", url],
      "direct",
    ],
    ["direct to localhost (curl on the host)", [...CURL, localUrl], "local"],
    [
      "absolute-form via the proxy, localhost from the system resolver",
      [...CURL, "--noproxy", "", "-x", `http://127.0.0.1:${system.port}`, localUrl],
      "local",
    ],
  ];
  const results = new Map<string, number[]>(rows.map(([name]) => [name, []]));
  for (const [, argv] of rows) await curlTotal(argv); // Warm-up.
  for (let i = 0; i < REPS; i++) {
    for (const [name, argv] of rows) results.get(name)!.push(await curlTotal(argv));
  }
  console.log(
    `${REQUESTS} keep-alive GETs over one connection (curl), summed transfer time, median of ${REPS} (ms; ratio to its direct row):`,
  );
  const base = {
    direct: median(results.get(rows[0][0])!),
    local: median(results.get(rows[5][0])!),
  };
  for (const [name, , baseline] of rows) {
    const m = median(results.get(name)!);
    console.log(
      `  ${m.toFixed(1).padStart(8)}  ratio ${(m / base[baseline]).toFixed(2)}  ${name}`,
    );
  }
} finally {
  await pinned.close();
  await system.close();
  await source.close();
  await local.close();
}

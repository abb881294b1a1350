/**
 * What MITM costs: time to first byte for a new host (a leaf certificate is
 * issued) and for a cached host, and download throughput through the MITM
 * tunnel beside a plain CONNECT tunnel. Medians; ratios against the plain
 * tunnel measured in the same run.
 *
 * The client is `curl` (its own process; `time_starttransfer` covers CONNECT,
 * both TLS handshakes and the first response byte). The HTTPS upstream runs
 * in a separate Deno process (this file with `--upstream`) so that its TLS
 * work does not share the proxy's thread. Everything stays on loopback.
 *
 * A third proxy runs full mode with a request rule on every bench host (GET
 * only, strip one header, inject one from an env var) and a secret bound to
 * them (the client sends the placeholder in `Authorization`, the proxy swaps
 * it): its first-byte time (cached leaf) and throughput are printed beside
 * the same plain tunnel.
 *
 * Run: `npx -y deno@2.9.6 run -A bench/mitm_bench.ts [--mib 256] [--runs 3] [--samples 25]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type CertificateAuthority, initCa, signCertificate } from "../proxy/ca.ts";
import { createMitmHandler } from "../proxy/mitm.ts";
import { compileDomainPattern } from "../policy/pattern.ts";
import { createResolver } from "../proxy/resolver.ts";
import { startProxy } from "../proxy/server.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { generateKeyPairSync } from "node:crypto";
import { median } from "./common.ts";

const UPSTREAM_ADDR = "127.0.0.6";
const HOSTS = 200;
const hostName = (i: number) => `h${i}.bench.test`;

/** The upstream process: an HTTPS server for h0..hN.bench.test; prints its port. */
async function serveUpstream(caDir: string): Promise<void> {
  const ca = (await initCa(caDir)).ca;
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const now = Date.now();
  const certPem = signCertificate(ca, {
    publicKey,
    subject: { commonName: "bench upstream" },
    notBefore: new Date(now - 300_000),
    notAfter: new Date(now + 86_400_000),
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: Array.from({ length: HOSTS }, (_, i) => ({ type: 2, value: hostName(i) })),
      },
    ],
  });
  const chunk = new Uint8Array(1024 * 1024).fill(120);
  const server = Deno.serve({
    hostname: UPSTREAM_ADDR,
    port: 0,
    cert: certPem + ca.certPem,
    key: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    onListen: ({ port }) => console.log(port),
  }, (request) => {
    const mib = Number(new URL(request.url).searchParams.get("mib") ?? "0");
    if (mib === 0) return new Response("ok\n");
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < mib) controller.enqueue(chunk);
        else controller.close();
      },
    }, { highWaterMark: 4 });
    return new Response(body, { headers: { "content-length": String(mib * 1024 * 1024) } });
  });
  // Ends when the parent closes our stdin.
  for await (const _ of Deno.stdin.readable) { /* nothing is sent */ }
  await server.shutdown();
}

async function curl(args: string[]): Promise<string> {
  const output = await new Deno.Command("curl", {
    args: ["-sS", "-o", "/dev/null", ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  if (output.code !== 0) {
    throw new Error(`curl failed (${output.code}): ${new TextDecoder().decode(output.stderr)}`);
  }
  return text;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      upstream: { type: "string" },
      mib: { type: "string", default: "256" },
      runs: { type: "string", default: "3" },
      samples: { type: "string", default: "25" },
    },
  });
  if (values.upstream !== undefined) return await serveUpstream(values.upstream);
  const mib = Number(values.mib);
  const runs = Number(values.runs);
  const samples = Math.min(Number(values.samples), HOSTS - 2);

  const dir = await Deno.makeTempDir({ prefix: "sandbox_mitm_bench_" });
  const upstream = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      new URL(import.meta.url).pathname,
      "--upstream",
      `${dir}/upstream-ca`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = upstream.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const first = await reader.read();
    const port = Number(first.value?.trim());
    await reader.cancel();
    const mitmCa: CertificateAuthority = (await initCa(`${dir}/mitm-ca`)).ca;
    const upstreamCa = await Deno.readTextFile(`${dir}/upstream-ca/ca.pem`);
    await Deno.writeTextFile(`${dir}/trust.pem`, upstreamCa + mitmCa.certPem);
    const names = new Map(Array.from({ length: HOSTS }, (_, i) => [hostName(i), [UPSTREAM_ADDR]]));
    const resolver = createResolver({ overrides: names });
    const flags = { allow: ["**.bench.test"], "allow-local-binding": true };
    const env = { env: { HOME: "/nonexistent-home-for-bench" } };
    const limited = await loadEffectiveConfig({ ...flags, mode: "limited", mitm: true }, env);
    const full = await loadEffectiveConfig({ ...flags, mode: "full" }, env);
    const handler = createMitmHandler({ ca: mitmCa, upstreamCaCerts: [upstreamCa] });
    await using mitmProxy = await startProxy({
      config: limited,
      resolver,
      mitm: handler,
      socks: null,
    });
    await using plainProxy = await startProxy({ config: full, resolver, socks: null });
    const rules = Array.from({ length: HOSTS }, (_, i) => ({
      name: `bench.${i}`,
      host: hostName(i),
      methods: ["GET"],
      paths: ["/"],
      query: {},
      headers: {},
      stripHeaders: ["x-drop"],
      injectHeaders: [{ name: "x-inject", fromEnv: "BENCH_TOKEN", fromFile: null, prefix: "T " }],
      source: "bench",
    }));
    const placeholder = "ghp_PLACEHOLDERplaceholder0123456789abcd";
    await using rulesProxy = await startProxy({
      config: { ...full, network: { ...full.network, requestRules: rules } },
      resolver,
      mitm: handler,
      socks: null,
      env: (name) => (name === "BENCH_TOKEN" ? "bench-token" : undefined),
      secrets: {
        bindings: [{
          name: "GH_TOKEN",
          placeholder,
          hosts: [compileDomainPattern("**.bench.test", "allow")],
        }],
        values: new Map([["GH_TOKEN", "ghp_REALrealREALreal0123456789abcdefABCD"]]),
      },
    });
    const via = (
      proxy: { http: Deno.NetAddr | null },
    ) => ["--proxy", `http://127.0.0.1:${proxy.http!.port}`];
    const common = [
      "--cacert",
      `${dir}/trust.pem`,
      "--noproxy",
      "",
      "-H",
      `Authorization: Bearer ${placeholder}`,
    ];
    const ttfb = async (proxy: { http: Deno.NetAddr | null }, host: string) =>
      Number(
        await curl([
          ...via(proxy),
          ...common,
          "-w",
          "%{time_starttransfer}",
          `https://${host}:${port}/`,
        ]),
      ) *
      1000;

    // Warm up both paths (JIT, the system root bundle read, curl's own caches).
    await ttfb(plainProxy, hostName(HOSTS - 1));
    await ttfb(mitmProxy, hostName(HOSTS - 1));

    const plain: number[] = [];
    const fresh: number[] = [];
    const cached: number[] = [];
    for (let i = 0; i < samples; i++) {
      plain.push(await ttfb(plainProxy, hostName(i)));
      fresh.push(await ttfb(mitmProxy, hostName(i))); // first time for this host: a leaf is issued
      cached.push(await ttfb(mitmProxy, hostName(i))); // same host again: the cached leaf
    }
    const issued = handler.leaves.issued;
    const ruled: number[] = [];
    for (let i = 0; i < samples; i++) ruled.push(await ttfb(rulesProxy, hostName(i)));

    const throughput = async (proxy: { http: Deno.NetAddr | null }) => {
      const out = await curl([
        ...via(proxy),
        ...common,
        "-w",
        "%{speed_download}",
        `https://${hostName(0)}:${port}/?mib=${mib}`,
      ]);
      return Number(out) / 1e6;
    };
    const plainSpeed: number[] = [];
    const mitmSpeed: number[] = [];
    const rulesSpeed: number[] = [];
    for (let i = 0; i < runs; i++) {
      plainSpeed.push(await throughput(plainProxy));
      mitmSpeed.push(await throughput(mitmProxy));
      rulesSpeed.push(await throughput(rulesProxy));
    }

    const p = median(plain);
    const f = median(fresh);
    const c = median(cached);
    const ps = median(plainSpeed);
    const ms = median(mitmSpeed);
    const fmt = (n: number) => n.toFixed(2);
    console.log(
      `MITM bench (curl client, upstream in its own process, ${samples} samples, ${runs} x ${mib} MiB)`,
    );
    console.log(`  time to first byte, plain CONNECT tunnel:   median ${fmt(p)} ms`);
    console.log(
      `  time to first byte, MITM new host:          median ${fmt(f)} ms  (added ${
        fmt(f - p)
      } ms; target < 60)`,
    );
    console.log(
      `  time to first byte, MITM cached host:       median ${fmt(c)} ms  (added ${
        fmt(c - p)
      } ms; target < 5)`,
    );
    console.log(
      `  time to first byte, rules + secret (cached): median ${fmt(median(ruled))} ms  (added ${
        fmt(median(ruled) - p)
      } ms)`,
    );
    console.log(`  leaf certificates issued: ${issued} for ${samples + 1} hosts`);
    console.log(`  throughput, plain CONNECT tunnel: median ${ps.toFixed(0)} MB/s`);
    console.log(
      `  throughput, MITM tunnel:          median ${ms.toFixed(0)} MB/s  (ratio ${
        (ms / ps).toFixed(2)
      }; target >= 0.5)`,
    );
    console.log(
      `  throughput, rules + secret:       median ${median(rulesSpeed).toFixed(0)} MB/s  (ratio ${
        (median(rulesSpeed) / ps).toFixed(2)
      })`,
    );
  } finally {
    await upstream.stdin.close().catch(() => {});
    await upstream.status;
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();

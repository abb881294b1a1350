import { loadEffectiveConfig } from "../profiles/load.ts";
import { compileNetworkPolicy } from "../policy/policy.ts";
import { decideRequest } from "../policy/decide_request.ts";
import { createResolver } from "../proxy/resolver.ts";
import { readRequestHead } from "../proxy/http_parser.ts";
const config = await loadEffectiveConfig({ allow: ["bench.test"] } as never, {
  env: { HOME: "/tmp/p2" },
  cwd: "/tmp",
});
const policy = compileNetworkPolicy(config.network);
const resolver = createResolver({ overrides: new Map([["bench.test", ["127.0.0.2"]]]) });
const headers = [
  { name: "Host", value: "bench.test:18080" },
  { name: "User-Agent", value: "curl/8.5.0" },
  { name: "Accept", value: "*/*" },
  { name: "Proxy-Connection", value: "Keep-Alive" },
];
const opts = {
  policy,
  resolver,
  socksEnabled: false,
  mitm: false,
  ownListeners: { ports: new Set([18181]), addresses: new Set<string>() },
};
for (const round of [1, 2, 3]) {
  const N = 20000;
  let t = performance.now();
  for (let i = 0; i < N; i++) {
    await decideRequest({
      door: "http",
      host: "bench.test",
      port: 18080,
      method: "GET",
      upgrade: null,
      body: false,
      unixSocket: null,
      target: "/small?1",
      headers,
    }, opts);
  }
  const dr = (performance.now() - t) / N * 1000;
  t = performance.now();
  for (let i = 0; i < N; i++) new Date().toISOString();
  const iso = (performance.now() - t) / N * 1000;
  console.log(`decideRequest ${dr.toFixed(2)} µs, ISO time ${iso.toFixed(2)} µs`);
}

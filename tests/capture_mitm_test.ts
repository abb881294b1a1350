/**
 * End to end: a `tls://HOST:PORT` rule under `sandbox run --mode limited
 * --mitm`, reached by curl connecting directly (`--noproxy '*'`, captured).
 * The marked port goes through the captured-tls door, so limited mode's
 * MITM terminates it and sees the method: GET passes, POST is refused
 * before the upstream sees it. Unmarked, the same port is a plain tunnel,
 * which limited mode refuses outright. The upstream is a loopback HTTPS
 * server with its own test CA, trusted by the proxy through
 * `SANDBOX_UPSTREAM_CA`, on a random 127.x address behind `--resolve`.
 */
import assert from "node:assert/strict";
import { initCa } from "../proxy/ca.ts";
import { createLeafIssuer } from "../proxy/leaf_certs.ts";
import { onPath, sandboxCli } from "./cli_helpers.ts";

const HOST = "marked.test";
const missing = ["curl", "bwrap"].filter((name) => !onPath(name));
if (missing.length > 0) {
  console.warn(`capture_mitm_test: skipped, not installed: ${missing.join(", ")}`);
}

Deno.test({
  name:
    "sandbox run --mode limited --mitm: a tls:// marked port captured from curl --noproxy is terminated (GET passes, POST refused); unmarked it is refused",
  ignore: missing.length > 0,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "sandbox_capture_mitm_" });
    const address = `127.${2 + Math.floor(Math.random() * 250)}.${
      2 + Math.floor(Math.random() * 250)
    }.9`;
    const upstreamCa = (await initCa(`${dir}/upstream-ca`)).ca;
    const leaf = createLeafIssuer(upstreamCa).certificateFor(HOST);
    const seen: string[] = [];
    const server = Deno.serve(
      { hostname: address, port: 0, cert: leaf.chainPem, key: leaf.keyPem, onListen() {} },
      (request) => {
        seen.push(`${request.method} ${new URL(request.url).pathname}`);
        return new Response(`hello ${request.method}\n`);
      },
    );
    const port = server.addr.port;
    const caDir = `${dir}/mitm-ca`;
    const env = { SANDBOX_UPSTREAM_CA: upstreamCa.certPath!, HOME: dir };
    const run = (rule: string, log: string, curl: string[]) =>
      sandboxCli([
        "run",
        "--mode",
        "limited",
        "--mitm",
        "--allow",
        rule,
        "--allow-local-binding",
        "--resolve",
        `${HOST}=${address}`,
        "--ca-dir",
        caDir,
        "--log",
        log,
        "--",
        "curl",
        "-sS",
        "--noproxy",
        "*",
        ...curl,
        `https://${HOST}:${port}/x`,
      ], { env, timeoutMs: 90_000 });
    const protocols = async (log: string) =>
      (await Deno.readTextFile(log)).trim().split("\n").map((line) => JSON.parse(line))
        .filter((event) => event.port === port && event.host === HOST)
        .map((event) =>
          `${event.protocol} ${event.decision}${event.method ? " " + event.method : ""}`
        );
    try {
      const init = await sandboxCli(["init", "--ca-dir", caDir], { timeoutMs: 60_000 });
      assert.equal(init.code, 0, init.stderr);
      const marked = `tls://${HOST}:${port}`;

      const get = await run(marked, `${dir}/get.jsonl`, []);
      assert.equal(get.code, 0, get.stderr);
      assert.equal(get.stdout, "hello GET\n");
      assert.deepEqual(await protocols(`${dir}/get.jsonl`), [
        "captured-tls allow",
        "https-connect allow GET",
      ]);

      const post = await run(marked, `${dir}/post.jsonl`, ["-X", "POST", "-d", "x"]);
      assert.equal(post.code, 0, post.stderr);
      assert.equal(JSON.parse(post.stdout).reason, "method_not_allowed");
      assert.deepEqual(seen, ["GET /x"], "the POST never reached the upstream");

      const plain = await run(`${HOST}:${port}`, `${dir}/plain.jsonl`, []);
      assert.notEqual(plain.code, 0, plain.stdout);
      assert.deepEqual(await protocols(`${dir}/plain.jsonl`), ["captured-tcp deny"]);
      assert.deepEqual(seen, ["GET /x"]);
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

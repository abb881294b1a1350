/**
 * End to end: `sandbox run --mode limited --mitm` with plain `curl` (no -k)
 * inside Bubblewrap, a local HTTPS upstream with its own test CA on
 * 127.0.0.5 behind `--resolve upstream.test=127.0.0.5`, trusted by the proxy
 * through `SANDBOX_UPSTREAM_CA`.
 */
import assert from "node:assert/strict";
import { type CertificateAuthority, initCa } from "../proxy/ca.ts";
import { createLeafIssuer } from "../proxy/leaf_certs.ts";
import { type CliResult, onPath, sandboxCli } from "./cli_helpers.ts";

const HOST = "upstream.test";
const ADDR = "127.0.0.5";

const missing = ["curl", "bwrap"].filter((name) => !onPath(name));
if (missing.length > 0) {
  console.warn(`mitm_run_test: skipped, not installed: ${missing.join(", ")}`);
}

function sandboxRun(
  args: string[],
  command: string[],
  env: Record<string, string>,
): Promise<CliResult> {
  return sandboxCli(["run", ...args, "--", ...command], { env, timeoutMs: 90_000 });
}

Deno.test({
  name:
    "sandbox run --mode limited --mitm: curl GET passes, POST, Host switch, SNI mismatch and bad upstream are stopped",
  ignore: missing.length > 0,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "sandbox_mitm_run_" });
    const upstreamCa: CertificateAuthority = (await initCa(`${dir}/upstream-ca`)).ca;
    const leaf = createLeafIssuer(upstreamCa).certificateFor(HOST);
    const server = Deno.serve(
      { hostname: ADDR, port: 0, cert: leaf.chainPem, key: leaf.keyPem, onListen() {} },
      (request) => new Response(`hello ${request.method} ${new URL(request.url).pathname}\n`),
    );
    const port = server.addr.port;
    const url = (path: string) => `https://${HOST}:${port}${path}`;
    const caDir = `${dir}/mitm-ca`;
    const flags = [
      "--mode",
      "limited",
      "--mitm",
      "--allow",
      HOST,
      "--allow-local-binding",
      "--resolve",
      `${HOST}=${ADDR}`,
      "--ca-dir",
      caDir,
    ];
    const env = { SANDBOX_UPSTREAM_CA: upstreamCa.certPath!, HOME: dir };
    try {
      const init = await sandboxCli(["init", "--ca-dir", caDir], { timeoutMs: 60_000 });
      assert.equal(init.code, 0, init.stderr);

      await t.step("a GET with plain curl (no -k) succeeds", async () => {
        const result = await sandboxRun(flags, ["curl", "-sS", "--fail", url("/hello")], env);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, "hello GET /hello\n");
      });

      await t.step("a POST is blocked with 403 and the JSON body", async () => {
        const result = await sandboxRun(
          flags,
          ["curl", "-sS", "-X", "POST", "-d", "secret", "-D", "/dev/stderr", url("/upload")],
          env,
        );
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stderr, /HTTP\/1\.1 403 Forbidden/);
        assert.match(result.stderr, /x-proxy-error: blocked-by-method-policy/i);
        const body = JSON.parse(result.stdout);
        assert.equal(body.reason, "method_not_allowed");
        assert.equal(body.method, "POST");
        assert.equal(body.host, HOST);
      });

      await t.step(
        "a second request on the same connection with another Host is refused",
        async () => {
          const result = await sandboxRun(flags, [
            "curl",
            "-sS",
            url("/first"),
            "--next",
            "-sS",
            "-H",
            `Host: evil.test:${port}`,
            "-w",
            "\ncode=%{http_code} connects=%{num_connects}\n",
            url("/second"),
          ], env);
          assert.equal(result.code, 0, result.stderr);
          assert.match(result.stdout, /^hello GET \/first\n/);
          assert.match(result.stdout, /code=400 connects=0\n$/, "refused on the reused connection");
          assert.ok(!result.stdout.includes("hello GET /second"));
        },
      );

      await t.step("an SNI that is not the CONNECT host closes the connection", async () => {
        // --connect-to makes curl CONNECT to upstream.test but send SNI other.test; -k so that
        // only the proxy, not curl's own name check, can stop it.
        const result = await sandboxRun(flags, [
          "curl",
          "-sS",
          "-k",
          "--connect-to",
          `other.test:${port}:${HOST}:${port}`,
          `https://other.test:${port}/sni`,
        ], env);
        assert.notEqual(result.code, 0);
        assert.equal(result.stdout, "", "no HTTP response came back");
        assert.match(result.stderr, /curl: \((35|52|56)\)/);
      });

      await t.step(
        "an upstream with an untrusted certificate yields 502 with the reason",
        async () => {
          const result = await sandboxRun(
            flags,
            ["curl", "-sS", "-D", "/dev/stderr", url("/untrusted")],
            { HOME: dir, SANDBOX_UPSTREAM_CA: "" },
          );
          assert.equal(result.code, 0, result.stderr);
          assert.match(result.stderr, /HTTP\/1\.1 502 Bad Gateway/);
          assert.match(result.stderr, /x-proxy-error: upstream-tls-error/i);
          assert.match(
            result.stdout,
            /TLS to upstream "upstream\.test:\d+" failed: .*UnknownIssuer/,
          );
        },
      );

      await t.step("a group-readable CA key is refused before anything runs", async () => {
        await Deno.chmod(`${caDir}/ca-key.pem`, 0o640);
        try {
          const result = await sandboxRun(flags, ["curl", "-sS", url("/never")], env);
          assert.equal(result.code, 126);
          assert.match(result.stderr, /mode 640 .*chmod 600/);
          assert.equal(result.stdout, "");
        } finally {
          await Deno.chmod(`${caDir}/ca-key.pem`, 0o600);
        }
      });
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * End to end, real npm and curl under `sandbox run` (real bwrap): a loopback
 * TLS registry (its own test CA, trusted by the proxy via
 * `SANDBOX_UPSTREAM_CA`) that serves a packument and a tarball only with
 * `Authorization: Bearer <real token>`; `.npmrc` uses `${NPM_TOKEN}` and
 * `--secret NPM_TOKEN=registry.test` binds it. The command holds only a
 * placeholder; the proxy puts the real value into requests to the registry,
 * refuses the placeholder toward another allowed host, and the profile's
 * read-only rule refuses PUT/POST before the registry sees them.
 */
import assert from "node:assert/strict";
import { type CertificateAuthority, initCa } from "../proxy/ca.ts";
import { createLeafIssuer } from "../proxy/leaf_certs.ts";
import { onPath, sandboxCli } from "./cli_helpers.ts";

const REGISTRY = "registry.test";
const OTHER = "other.test";
const REG_ADDR = "127.0.0.6";
const OTHER_ADDR = "127.0.0.7";
const REAL = "npm_RealSecretValue0123456789abcdefABCDEF";

const missing = ["npm", "curl", "bwrap", "tar"].filter((name) => !onPath(name));
if (missing.length > 0) {
  console.warn(`secrets_run_test: skipped, not installed: ${missing.join(", ")}`);
}

function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

async function digest(algorithm: string, bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest(algorithm, bytes));
}

Deno.test({
  name:
    "sandbox run --secret NPM_TOKEN=registry: npm ci installs from a token-only registry, the command never holds the token, a leak to another host and writes are refused",
  ignore: missing.length > 0,
  fn: async () => {
    const dir = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "sandbox_secrets_run_" });
    const upstreamCa: CertificateAuthority = (await initCa(`${dir}/upstream-ca`)).ca;
    const issuer = createLeafIssuer(upstreamCa);
    // The package's tarball, built here.
    await Deno.mkdir(`${dir}/src/package`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/src/package/package.json`,
      JSON.stringify({ name: "pkg-a", version: "1.0.0", main: "index.js" }),
    );
    await Deno.writeTextFile(`${dir}/src/package/index.js`, "module.exports = 42;\n");
    const tar = await new Deno.Command("tar", {
      args: ["czf", `${dir}/pkg-a-1.0.0.tgz`, "-C", `${dir}/src`, "package"],
    }).output();
    assert.equal(tar.code, 0);
    const tgz = await Deno.readFile(`${dir}/pkg-a-1.0.0.tgz`);
    const integrity = `sha512-${encodeBase64(await digest("SHA-512", tgz))}`;
    const shasum = [...await digest("SHA-1", tgz)].map((b) => b.toString(16).padStart(2, "0"))
      .join("");

    const registrySeen: string[] = [];
    const otherSeen: string[] = [];
    const regLeaf = issuer.certificateFor(REGISTRY);
    let regPort = 0;
    const registry = Deno.serve(
      { hostname: REG_ADDR, port: 0, cert: regLeaf.chainPem, key: regLeaf.keyPem, onListen() {} },
      (request) => {
        const path = new URL(request.url).pathname;
        const auth = request.headers.get("authorization");
        registrySeen.push(`${request.method} ${path} ${auth === `Bearer ${REAL}` ? "real" : auth}`);
        if (auth !== `Bearer ${REAL}`) return new Response("unauthorized\n", { status: 401 });
        if (request.method !== "GET") return new Response("ok\n");
        if (path === "/pkg-a") {
          const tarball = `https://${REGISTRY}:${regPort}/pkg-a/-/pkg-a-1.0.0.tgz`;
          return Response.json({
            name: "pkg-a",
            "dist-tags": { latest: "1.0.0" },
            versions: {
              "1.0.0": { name: "pkg-a", version: "1.0.0", dist: { tarball, integrity, shasum } },
            },
          });
        }
        if (path === "/pkg-a/-/pkg-a-1.0.0.tgz") return new Response(tgz);
        return new Response("not found\n", { status: 404 });
      },
    );
    regPort = registry.addr.port;
    const otherLeaf = issuer.certificateFor(OTHER);
    const other = Deno.serve(
      {
        hostname: OTHER_ADDR,
        port: 0,
        cert: otherLeaf.chainPem,
        key: otherLeaf.keyPem,
        onListen() {},
      },
      (request) => {
        otherSeen.push(`${request.method} ${request.headers.get("authorization")}`);
        return new Response("other\n");
      },
    );
    const otherPort = other.addr.port;
    const app = `${dir}/app`;
    await Deno.mkdir(app);
    const resolved = `https://${REGISTRY}:${regPort}/pkg-a/-/pkg-a-1.0.0.tgz`;
    await Deno.writeTextFile(
      `${app}/package.json`,
      JSON.stringify({ name: "app", version: "1.0.0", dependencies: { "pkg-a": "1.0.0" } }),
    );
    await Deno.writeTextFile(
      `${app}/package-lock.json`,
      JSON.stringify({
        name: "app",
        version: "1.0.0",
        lockfileVersion: 3,
        requires: true,
        packages: {
          "": { name: "app", version: "1.0.0", dependencies: { "pkg-a": "1.0.0" } },
          "node_modules/pkg-a": { version: "1.0.0", resolved, integrity },
        },
      }),
    );
    await Deno.writeTextFile(
      `${app}/.npmrc`,
      [
        `registry=https://${REGISTRY}:${regPort}/`,
        `//${REGISTRY}:${regPort}/:_authToken=\${NPM_TOKEN}`,
        `cache=${app}/.npm-cache`,
        "audit=false",
        "fund=false",
        "update-notifier=false",
        "",
      ].join("\n"),
    );
    // A read-only request rule for the registry (our short form).
    await Deno.writeTextFile(
      `${dir}/config.toml`,
      `[permissions.t]\nextends = ":workspace"\n[permissions.t.network]\nenabled = true\n` +
        `requests = { "${REGISTRY}" = "read" }\n`,
    );
    const caDir = `${dir}/mitm-ca`;
    const env = {
      SANDBOX_UPSTREAM_CA: upstreamCa.certPath!,
      HOME: dir,
      NPM_TOKEN: REAL,
      npm_config_cache: `${app}/.npm-cache`,
    };
    try {
      const init = await sandboxCli(["init", "--ca-dir", caDir], { timeoutMs: 60_000 });
      assert.equal(init.code, 0, init.stderr);
      const script = [
        "npm ci --no-audit --no-fund >npm.out 2>&1; echo npm=$?",
        'node -e \'console.log("pkg=" + require("pkg-a"))\'',
        'echo "token=$NPM_TOKEN"',
        // What the command can read, copied out for the test to search (the real value must not
        // be in the command line either, which the report repeats).
        'cat /proc/self/environ > environ.dump; cp -r "$(dirname "$SSL_CERT_FILE")" rundir.copy',
        `echo other=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $NPM_TOKEN" https://${OTHER}:${otherPort}/leak)`,
        `echo put=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $NPM_TOKEN" -d x https://${REGISTRY}:${regPort}/pkg-a)`,
        `echo post=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $NPM_TOKEN" -d x https://${REGISTRY}:${regPort}/-/npm/v1/security/audits)`,
      ].join("\n");
      const result = await sandboxCli([
        "run",
        "--config",
        `${dir}/config.toml`,
        "--profile",
        "t",
        "--allow",
        REGISTRY,
        "--allow",
        OTHER,
        "--allow-local-binding",
        "--resolve",
        `${REGISTRY}=${REG_ADDR}`,
        "--resolve",
        `${OTHER}=${OTHER_ADDR}`,
        "--ca-dir",
        caDir,
        "--secret",
        `NPM_TOKEN=${REGISTRY}`,
        "--json",
        "--",
        "sh",
        "-c",
        script,
      ], { env, cwd: app, timeoutMs: 180_000 });
      const npmOut = await Deno.readTextFile(`${app}/npm.out`).catch(() => "");
      const out = result.stdout;
      assert.match(out, /^npm=0$/m, `${out}\n${result.stderr}\n${npmOut}`);
      assert.match(out, /^pkg=42$/m);
      const token = /^token=(.*)$/m.exec(out)?.[1] ?? "";
      assert.ok(token.startsWith("npm_") && token.length === REAL.length, token);
      assert.notEqual(token, REAL);
      const grep = await new Deno.Command("grep", {
        args: ["-rl", REAL, `${app}/environ.dump`, `${app}/rundir.copy`, `${app}/node_modules`],
      }).output();
      assert.equal(grep.code, 1, `found in: ${new TextDecoder().decode(grep.stdout)}`);
      assert.ok((await Deno.stat(`${app}/environ.dump`)).size > 0);
      assert.match(out, /^other=403$/m);
      assert.match(out, /^put=403$/m);
      assert.match(out, /^post=403$/m);
      assert.deepEqual(otherSeen, [], "the other host saw nothing");
      // npm ci with a lockfile fetches the tarball only; with the real token.
      assert.ok(
        registrySeen.includes("GET /pkg-a/-/pkg-a-1.0.0.tgz real"),
        registrySeen.join("\n"),
      );
      assert.ok(registrySeen.every((line) => line.startsWith("GET ") && line.endsWith(" real")));
      // The real value is in no output, report or error the launcher wrote.
      assert.ok(!result.stdout.includes(REAL) && !result.stderr.includes(REAL));
      assert.ok(!npmOut.includes(REAL));
      assert.match(result.stderr + result.stdout, /secret_wrong_host/);
      assert.match(result.stderr + result.stdout, /mitm_hook_denied/);
    } finally {
      await registry.shutdown();
      await other.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

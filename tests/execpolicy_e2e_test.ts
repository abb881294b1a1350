/**
 * End to end: execpolicy decisions through a real `sandbox run` under
 * Bubblewrap, with a loopback HTTP server behind `--resolve allowed.test=…`.
 * `allow` runs with no network at all, `allow-network` through the proxy,
 * `deny` never starts, and the shims stop a denied program started by a
 * nested call (a make recipe).
 */
import assert from "node:assert/strict";
import { type CliResult, exists, onPath, sandboxCli } from "./cli_helpers.ts";

const HOST = "allowed.test";
const ADDR = "127.0.0.6";

const missing = ["curl", "bwrap", "make"].filter((name) => !onPath(name));
if (missing.length > 0) {
  console.warn(`execpolicy_e2e_test: skipped, not installed: ${missing.join(", ")}`);
}

const TABLE = `
execpolicy_default = "allow"

[execpolicy]
"curl -sS --max-time 5 *" = "allow-network"
"curl -sS --max-time 5 */offline" = "allow"
"touch *" = { decision = "deny", justification = "Nothing may touch files here", match = ["touch x"] }
"make *" = "allow-network"
`;

const STRICT = `
[execpolicy]
"curl *" = { decision = "deny", justification = "Use the package mirror" }
"make *" = "allow-network"
`;

interface Fixture extends AsyncDisposable {
  readonly dir: string;
  readonly port: number;
  readonly requests: string[];
  run(config: string, command: string[]): Promise<CliResult>;
}

async function fixture(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "execpolicy_e2e_" });
  const requests: string[] = [];
  const server = Deno.serve({ hostname: ADDR, port: 0, onListen() {} }, (request) => {
    requests.push(new URL(request.url).pathname);
    return new Response("hello from allowed.test\n");
  });
  const port = server.addr.port;
  return {
    dir,
    port,
    requests,
    async run(config, command) {
      const path = `${dir}/sandbox-${crypto.randomUUID()}.toml`;
      await Deno.writeTextFile(path, config);
      return await sandboxCli([
        "run",
        "--config",
        path,
        "--allow",
        HOST,
        "--allow-local-binding",
        "--resolve",
        `${HOST}=${ADDR}`,
        "--",
        ...command,
      ], { cwd: dir, env: { HOME: dir }, timeoutMs: 90_000 });
    },
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test({
  name: "sandbox run: allow has no network at all, allow-network reaches an allowed host",
  ignore: missing.length > 0,
  fn: async () => {
    await using fx = await fixture();
    const url = `http://${HOST}:${fx.port}`;

    const online = await fx.run(TABLE, ["curl", "-sS", "--max-time", "5", `${url}/online`]);
    assert.equal(online.code, 0, online.stderr);
    assert.equal(online.stdout, "hello from allowed.test\n");
    assert.deepEqual(fx.requests, ["/online"]);

    // Matches both curl rules: the stricter "allow" wins, so there is no proxy.
    const offline = await fx.run(TABLE, ["curl", "-sS", "--max-time", "5", `${url}/offline`]);
    assert.notEqual(offline.code, 0, "curl must fail without any network");
    assert.deepEqual(fx.requests, ["/online"], "the server must not see the offline request");

    // Nothing listens in the allow sandbox (no bridge, so not even the proxy is reachable)
    // and no proxy variable is set.
    const probe = await fx.run(TABLE, [
      "sh",
      "-c",
      'echo "proxy=[$HTTP_PROXY$http_proxy$HTTPS_PROXY$ALL_PROXY]"; tail -n +2 /proc/net/tcp | wc -l; ' +
      "tail -n +2 /proc/net/tcp6 | wc -l",
    ]);
    assert.equal(probe.code, 0, probe.stderr);
    assert.deepEqual(probe.stdout.trim().split(/\s+/), ["proxy=[]", "0", "0"]);
  },
});

Deno.test({
  name: "sandbox run: a denied command never starts and exits 126 naming the rule",
  ignore: missing.length > 0,
  fn: async () => {
    await using fx = await fixture();
    const mark = `${fx.dir}/touched`;
    const denied = await fx.run(TABLE, ["touch", mark]);
    assert.equal(denied.code, 126, denied.stderr);
    assert.match(denied.stderr, /^sandbox: Command denied by execpolicy: touch /m);
    assert.match(
      denied.stderr,
      /denied by rule "touch \*" from config:.*: Nothing may touch files here/,
    );
    assert.equal(await exists(mark), false, "the denied command must never have run");

    // The same command is fine without the rule: the file would have been created.
    const allowed = await fx.run("", ["touch", mark]);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(await exists(mark), true);
  },
});

Deno.test({
  name: "sandbox run: sh -c 'curl …' under a curl deny is refused before anything runs",
  ignore: missing.length > 0,
  fn: async () => {
    await using fx = await fixture();
    const mark = `${fx.dir}/started`;
    const result = await fx.run(STRICT, [
      "sh",
      "-c",
      `touch ${mark} && curl -sS http://${HOST}:${fx.port}/script`,
    ]);
    assert.equal(result.code, 126, result.stderr);
    assert.match(result.stderr, /curl -sS http:\S+\/script: denied by rule "curl \*"/);
    assert.equal(await exists(mark), false, "no part of the script may have run");
    assert.deepEqual(fx.requests, []);
  },
});

Deno.test({
  name: "sandbox run: a denied program started by a make recipe is stopped by the shim",
  ignore: missing.length > 0,
  fn: async () => {
    await using fx = await fixture();
    await Deno.writeTextFile(
      `${fx.dir}/Makefile`,
      `fetch:\n\tcurl -sS http://${HOST}:${fx.port}/nested\n`,
    );
    const result = await fx.run(STRICT, ["make", "fetch"]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /sandbox: Command denied by execpolicy: curl -sS http:\S+\/nested/);
    assert.match(result.stderr, /denied by rule "curl \*" from config:.*: Use the package mirror/);
    assert.match(result.stderr, /Error 126/, "make reports the shim's exit code 126");
    assert.deepEqual(fx.requests, [], "curl never reached the server");
  },
});

Deno.test({
  name: "sandbox run: a conditional deny lets the allowed call of a nested program through",
  ignore: missing.length > 0,
  fn: async () => {
    await using fx = await fixture();
    const url = `http://${HOST}:${fx.port}`;
    await Deno.writeTextFile(
      `${fx.dir}/Makefile`,
      `fetch:\n\tcurl -sS ${url}/fine\n\tcurl -sS ${url}/blocked\n`,
    );
    const config = `
[execpolicy]
"curl -sS */blocked" = { decision = "deny", justification = "Not that path" }
"make *" = "allow-network"
`;
    const result = await fx.run(config, ["make", "-s", "fetch"]);
    assert.notEqual(result.code, 0);
    assert.equal(result.stdout, "hello from allowed.test\n", result.stderr);
    assert.match(
      result.stderr,
      /denied by rule "curl -sS \*\/blocked" from config:.*: Not that path/,
    );
    assert.deepEqual(fx.requests, ["/fine"]);
  },
});

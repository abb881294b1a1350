/**
 * End to end under the shared execpolicy table (the course page's example,
 * `testdata/conformance/execpolicy_table.json`), with real bwrap:
 *
 * - `bash -lc 'npm ci && npm test'` on a one-package project installs
 *   (the registry read at run time from `npm config get registry`; skipped
 *   when unreachable);
 * - `git -C repo push` to a bare repository behind a loopback smart-HTTP
 *   server (`git http-backend` run as CGI by this test) gets network, and
 *   `git -c alias.p=push p` is decided as a push;
 * - the exact-curl exception works at the top level and through the nested
 *   shim (a make recipe), while other curl calls are refused.
 */
import assert from "node:assert/strict";
import { exists, onPath, sandboxCli } from "./cli_helpers.ts";
import { npmRegistry } from "./npm_helpers.ts";

const missing = ["bwrap", "git", "curl", "make", "bash"].filter((name) => !onPath(name));
if (missing.length > 0) {
  console.warn(`execpolicy_agent_e2e_test: skipped, not installed: ${missing.join(", ")}`);
}

interface Vectors {
  readonly table: readonly [string, string][];
}

const SHARED: Vectors = JSON.parse(
  await Deno.readTextFile(
    new URL("../testdata/conformance/execpolicy_table.json", import.meta.url),
  ),
);

function sharedTable(extra: readonly [string, string][] = []): string {
  return `[execpolicy]\n${
    [...SHARED.table, ...extra].map(([p, d]) => `${JSON.stringify(p)} = ${JSON.stringify(d)}`)
      .join("\n")
  }\n`;
}

async function hostGit(args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command("git", {
    args,
    cwd,
    env: {
      GIT_AUTHOR_NAME: "t",
      GIT_AUTHOR_EMAIL: "t@example.invalid",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@example.invalid",
      GIT_CONFIG_NOSYSTEM: "1",
      HOME: cwd,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  assert.ok(out.success, `git ${args.join(" ")}: ${text.decode(out.stderr)}`);
  return text.decode(out.stdout);
}

/** A smart-HTTP git server on loopback: each request runs `git http-backend` as CGI. */
function gitHttpServer(root: string, hostname: string) {
  const server = Deno.serve({ hostname, port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    const env: Record<string, string> = {
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: "1",
      GIT_CONFIG_NOSYSTEM: "1",
      HOME: root,
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      REQUEST_METHOD: request.method,
      REMOTE_ADDR: "127.0.0.1",
      REMOTE_USER: "tester", // push over http needs an authenticated user
      GATEWAY_INTERFACE: "CGI/1.1",
      SERVER_PROTOCOL: "HTTP/1.1",
    };
    for (const [name, value] of request.headers) {
      env[`HTTP_${name.toUpperCase().replaceAll("-", "_")}`] = value;
    }
    const type = request.headers.get("content-type");
    if (type !== null) env.CONTENT_TYPE = type;
    const body = new Uint8Array(await request.arrayBuffer());
    if (body.length > 0) env.CONTENT_LENGTH = String(body.length);
    const child = new Deno.Command("git", {
      args: ["http-backend"],
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(body);
    await writer.close();
    const out = await child.output();
    const bytes = out.stdout;
    // CGI output: headers, a blank line, the body.
    let split = -1;
    for (let i = 0; i + 1 < bytes.length; i++) {
      if (bytes[i] === 10 && bytes[i + 1] === 10) {
        split = i;
        break;
      }
      if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
        split = i + 2;
        break;
      }
    }
    if (split === -1) return new Response(new TextDecoder().decode(out.stderr), { status: 500 });
    const head = new TextDecoder().decode(bytes.subarray(0, split));
    const start = bytes[split] === 10 ? split + 1 : split + 2;
    const headers = new Headers();
    let status = 200;
    for (const line of head.split(/\r?\n/)) {
      const at = line.indexOf(":");
      if (at === -1) continue;
      const name = line.slice(0, at).trim();
      const value = line.slice(at + 1).trim();
      if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
      else headers.append(name, value);
    }
    return new Response(bytes.subarray(start), { status, headers });
  });
  return server;
}

Deno.test({
  name:
    "sandbox run (shared table): git -C repo push and git -c alias.p=push p reach a loopback git server",
  ignore: missing.length > 0,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "execpolicy_git_" });
    const HOST = "githost.test";
    const ADDR = "127.0.0.7";
    const server = gitHttpServer(`${dir}/srv`, ADDR);
    try {
      await Deno.mkdir(`${dir}/srv`);
      await hostGit(["init", "-q", "--bare", "bare.git"], `${dir}/srv`);
      await hostGit(["config", "http.receivepack", "true"], `${dir}/srv/bare.git`);
      await Deno.mkdir(`${dir}/work/repo`, { recursive: true });
      const repo = `${dir}/work/repo`;
      await hostGit(["init", "-q", "-b", "main"], repo);
      await Deno.writeTextFile(`${repo}/a.txt`, "a\n");
      await hostGit(["add", "a.txt"], repo);
      await hostGit(["commit", "-q", "-m", "first"], repo);
      const remote = `http://${HOST}:${server.addr.port}/bare.git`;
      await hostGit(["remote", "add", "origin", remote], repo);
      const config = `${dir}/table.toml`;
      await Deno.writeTextFile(config, sharedTable());
      const run = (argv: string[]) =>
        sandboxCli([
          "run",
          "--config",
          config,
          "--allow",
          HOST,
          "--allow-local-binding",
          "--resolve",
          `${HOST}=${ADDR}`,
          "--",
          ...argv,
        ], {
          cwd: `${dir}/work`,
          env: { HOME: `${dir}/work`, GIT_CONFIG_NOSYSTEM: "1" },
          timeoutMs: 120_000,
        });

      const pushed = await run(["git", "-C", "repo", "push", "origin", "main"]);
      assert.equal(pushed.code, 0, pushed.stderr);
      const refs = await hostGit(["for-each-ref", "--format=%(refname)"], `${dir}/srv/bare.git`);
      assert.match(refs, /^refs\/heads\/main$/m);

      // Without the global options the catch-all would have decided ("git *" = allow: no network).
      const plain = await run(["git", "-C", "repo", "ls-remote", "origin"]);
      assert.notEqual(plain.code, 0, "git ls-remote is a local op by the table: no network");

      const aliased = await run([
        "git",
        "-C",
        "repo",
        "-c",
        "alias.p=push",
        "p",
        "origin",
        "main:via-alias",
      ]);
      assert.equal(aliased.code, 0, aliased.stderr);
      const after = await hostGit(["for-each-ref", "--format=%(refname)"], `${dir}/srv/bare.git`);
      assert.match(after, /^refs\/heads\/via-alias$/m);
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "sandbox run (shared table): the exact curl exception works at the top level and in a nested shim",
  ignore: missing.length > 0,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "execpolicy_curl_" });
    const HOST = "mirror.test";
    const ADDR = "127.0.0.8";
    const requests: string[] = [];
    const server = Deno.serve({ hostname: ADDR, port: 0, onListen() {} }, (request) => {
      requests.push(new URL(request.url).pathname);
      return new Response("setup\n");
    });
    try {
      const exact = `http://${HOST}:${server.addr.port}/setup.sh`;
      const config = `${dir}/table.toml`;
      await Deno.writeTextFile(
        config,
        sharedTable([[`curl -fsS ${exact}`, "allow-network"], ["make *", "allow-network"]]),
      );
      const run = (argv: string[]) =>
        sandboxCli([
          "run",
          "--config",
          config,
          "--allow",
          HOST,
          "--allow-local-binding",
          "--resolve",
          `${HOST}=${ADDR}`,
          "--",
          ...argv,
        ], { cwd: dir, env: { HOME: dir }, timeoutMs: 90_000 });

      const top = await run(["curl", "-fsS", exact]);
      assert.equal(top.code, 0, top.stderr);
      assert.equal(top.stdout, "setup\n");
      const other = await run(["curl", "-fsS", `http://${HOST}:${server.addr.port}/other`]);
      assert.equal(other.code, 126, other.stderr);
      assert.match(other.stderr, /denied by rule "curl \*"/);
      assert.deepEqual(requests, ["/setup.sh"]);

      await Deno.writeTextFile(
        `${dir}/Makefile`,
        `fetch:\n\tcurl -fsS ${exact}\n\tcurl -fsS http://${HOST}:${server.addr.port}/nested\n`,
      );
      const nested = await run(["make", "-s", "fetch"]);
      assert.notEqual(nested.code, 0);
      assert.equal(nested.stdout, "setup\n", nested.stderr);
      assert.match(nested.stderr, /Command denied by execpolicy: curl -fsS http:\S+\/nested/);
      assert.deepEqual(requests, ["/setup.sh", "/setup.sh"], "the nested other call never left");
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const REGISTRY = missing.length > 0 ? null : await npmRegistry("execpolicy_agent_e2e_test");

Deno.test({
  name:
    "sandbox run (shared table): bash -lc 'npm ci && npm test' installs and tests a one-package project",
  ignore: REGISTRY === null,
  fn: async () => {
    const registry = REGISTRY!;
    const dir = await Deno.makeTempDir({ prefix: "execpolicy_npm_" });
    try {
      await Deno.writeTextFile(
        `${dir}/package.json`,
        JSON.stringify({
          name: "agent-e2e",
          version: "1.0.0",
          scripts: { test: `node -e "process.exit(require('is-number')(5) ? 0 : 1)"` },
          dependencies: { "is-number": "7.0.0" },
        }),
      );
      const lock = await new Deno.Command("npm", {
        args: ["install", "--package-lock-only", "--ignore-scripts", "--cache", `${dir}/.hc`],
        cwd: dir,
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(lock.code, 0, new TextDecoder().decode(lock.stderr));
      await Deno.remove(`${dir}/.hc`, { recursive: true });
      const config = `${dir}/table.toml`;
      await Deno.writeTextFile(config, sharedTable());
      const result = await sandboxCli([
        "run",
        "--config",
        config,
        "--allow",
        registry.hostname,
        "--",
        "bash",
        "-lc",
        "npm ci && npm test",
      ], {
        cwd: dir,
        env: {
          HOME: dir,
          npm_config_cache: `${dir}/.npm-cache`,
          npm_config_audit: "false",
          npm_config_fund: "false",
        },
        timeoutMs: 180_000,
      });
      assert.equal(result.code, 0, result.stderr);
      assert.ok(await exists(`${dir}/node_modules/is-number/package.json`));
      assert.match(result.stdout, /agent-e2e@1\.0\.0 test/, "npm test ran");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "sandbox run: a rule's hosts narrow the proxy to them, within the profile's rules",
  ignore: missing.length > 0,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "execpolicy_hosts_" });
    const ADDR = "127.0.0.9";
    const requests: string[] = [];
    const server = Deno.serve({ hostname: ADDR, port: 0, onListen() {} }, (request) => {
      requests.push(`${new URL(request.url).hostname}${new URL(request.url).pathname}`);
      return new Response("ok\n");
    });
    try {
      const port = server.addr.port;
      const run = async (hosts: string, url: string) => {
        const config = `${dir}/c-${crypto.randomUUID()}.toml`;
        await Deno.writeTextFile(
          config,
          `[execpolicy]\n"curl -fsS *" = { decision = "allow-network", hosts = ${hosts} }\n`,
        );
        return await sandboxCli([
          "run",
          "--config",
          config,
          "--allow",
          "bound.test",
          "--allow",
          "other.test",
          "--allow-local-binding",
          "--resolve",
          `bound.test=${ADDR}`,
          "--resolve",
          `other.test=${ADDR}`,
          "--",
          "curl",
          "-fsS",
          url,
        ], { cwd: dir, env: { HOME: dir }, timeoutMs: 90_000 });
      };
      const inside = await run(`["bound.test"]`, `http://bound.test:${port}/a`);
      assert.equal(inside.code, 0, inside.stderr);
      const outside = await run(`["bound.test"]`, `http://other.test:${port}/b`);
      assert.notEqual(outside.code, 0, "other.test is allowed by the profile but not bound");
      // A bound host the profile does not allow stays refused (intersection).
      const notInProfile = await run(`["third.test"]`, `http://bound.test:${port}/c`);
      assert.notEqual(notInProfile.code, 0);
      assert.deepEqual(requests, ["bound.test/a"]);
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

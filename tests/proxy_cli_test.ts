import assert from "node:assert/strict";
import { sandboxArgv, sandboxCli, tempDir } from "./cli_helpers.ts";
import { exchange, fakeServer, parseResponse, respondWith } from "./proxy_helpers.ts";

interface ProxyProcess extends AsyncDisposable {
  ready: Record<string, string>;
  child: Deno.ChildProcess;
  stderr(): string;
  stop(signal: Deno.Signal): Promise<{ code: number; stdout: string }>;
}

/** Starts `sandbox proxy ARGS` and waits (with a timeout) for its ready line. */
async function startCli(args: string[]): Promise<ProxyProcess> {
  const [cmd, ...rest] = sandboxArgv(["proxy", ...args]);
  const child = new Deno.Command(cmd, {
    args: rest,
    stdout: "piped",
    stderr: "piped",
    env: { HOME: "/nonexistent-home-for-tests", NO_COLOR: "1" },
    clearEnv: true,
  }).spawn();
  const decoder = new TextDecoder();
  let stdout = "";
  let stderr = "";
  const stdoutDone = (async () => {
    for await (const chunk of child.stdout) stdout += decoder.decode(chunk);
  })();
  const stderrDone = (async () => {
    for await (const chunk of child.stderr) stderr += decoder.decode(chunk);
  })();
  let stopped: Promise<{ code: number; stdout: string }> | null = null;
  const stop = (signal: Deno.Signal) =>
    stopped ??= (async () => {
      try {
        child.kill(signal);
      } catch {
        // Already exited.
      }
      const status = await child.status;
      await Promise.all([stdoutDone, stderrDone]);
      return { code: status.code, stdout };
    })();
  const deadline = Date.now() + 30_000;
  while (!stdout.includes("\n")) {
    if (Date.now() > deadline) {
      await stop("SIGKILL");
      throw new Error(`No ready line; stderr: ${stderr}`);
    }
    const exited = await Promise.race([
      child.status.then(() => true),
      new Promise((r) => setTimeout(r, 50, false)),
    ]);
    if (exited === true && !stdout.includes("\n")) {
      await stop("SIGKILL");
      throw new Error(`Exited before the ready line; stderr: ${stderr}`);
    }
  }
  return {
    ready: JSON.parse(stdout.split("\n")[0]),
    child,
    stderr: () => stderr,
    stop,
    [Symbol.asyncDispose]: async () => {
      await stop("SIGKILL");
    },
  };
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("Timed out waiting");
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("sandbox proxy prints one ready line, serves, and exits 0 on SIGTERM", async () => {
  await using upstream = fakeServer("127.0.0.2", respondWith("ok"));
  await using tmp = await tempDir();
  const dir = tmp.path;
  await using proxy = await startCli([
    "--allow",
    "allowed.test",
    "--resolve",
    "allowed.test=127.0.0.2",
    "--listen-unix",
    `${dir}/p.sock`,
    "--log",
    `${dir}/log.jsonl`,
  ]);
  assert.deepEqual(Object.keys(proxy.ready), ["http", "socks5", "unix"]);
  assert.match(proxy.ready.http, /^127\.0\.0\.1:\d+$/);
  assert.match(proxy.ready.socks5, /^127\.0\.0\.1:\d+$/);
  assert.equal(proxy.ready.unix, `${dir}/p.sock`);
  const port = Number(proxy.ready.http.split(":")[1]);
  const p = upstream.port;
  const response = parseResponse(
    await exchange(
      port,
      `GET http://allowed.test:${p}/ HTTP/1.1\r\nHost: allowed.test:${p}\r\nConnection: close\r\n\r\n`,
    ),
  );
  assert.equal(response.status, 200);
  const { code, stdout } = await proxy.stop("SIGTERM");
  assert.equal(code, 0, proxy.stderr());
  assert.equal(stdout.trim().split("\n").length, 1, "exactly one line on stdout");
  const log = (await Deno.readTextFile(`${dir}/log.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.equal(log.length, 1);
  assert.equal(log[0].host, "allowed.test");
  await assert.rejects(Deno.stat(`${dir}/p.sock`), Deno.errors.NotFound);
});

Deno.test("sandbox proxy honours --http-port and refuses a bad port with exit 2", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const free = probe.addr.port;
  probe.close();
  await using proxy = await startCli(["--http-port", String(free), "--allow", "a.test"]);
  assert.equal(proxy.ready.http, `127.0.0.1:${free}`);
  assert.equal((await proxy.stop("SIGINT")).code, 0);
  const bad = await sandboxCli(["proxy", "--http-port", "70000"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Invalid --http-port "70000"/);
});

Deno.test("sandbox proxy reloads the policy when its config file changes, and keeps it when broken", async () => {
  await using upstream = fakeServer("127.0.0.3", respondWith("ok"));
  const dir = await Deno.makeTempDir();
  const file = `${dir}/sandbox.toml`;
  const write = (domains: string) =>
    Deno.writeTextFile(
      file,
      `default_permissions = "dev"\n[permissions.dev.network]\nenabled = true\n[permissions.dev.network.domains]\n${domains}\n`,
    );
  try {
    await write(`"allowed.test" = "allow"`);
    await using proxy = await startCli([
      "--config",
      file,
      "--resolve",
      "other.test=127.0.0.3",
    ]);
    const port = Number(proxy.ready.http.split(":")[1]);
    const p = upstream.port;
    const status = async () =>
      parseResponse(
        await exchange(
          port,
          `GET http://other.test:${p}/ HTTP/1.1\r\nHost: other.test:${p}\r\nConnection: close\r\n\r\n`,
        ),
      ).status;
    assert.equal(await status(), 403);
    await write(`"allowed.test" = "allow"\n"other.test" = "allow"`);
    await waitFor(async () => (await status()) === 200);
    await write(`"other.test" = "allow"\n"*" = "deny"\nthis is not toml`);
    await waitFor(() =>
      proxy.stderr().includes("Config reload failed, keeping the previous policy")
    );
    assert.equal(await status(), 200);
    // SIGHUP reloads too: restore a policy without other.test, then signal.
    await write(`"allowed.test" = "allow"`);
    await waitFor(async () => (await status()) === 403);
    proxy.child.kill("SIGHUP");
    await waitFor(() => (proxy.stderr().match(/Config reloaded/g) ?? []).length >= 3);
    assert.equal((await proxy.stop("SIGTERM")).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

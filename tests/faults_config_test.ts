/**
 * Fault test: the config file of a running `sandbox proxy` (a real
 * subprocess) is replaced by garbage. The reload must keep the old policy
 * and say why on stderr; a later valid file is picked up again. Afterwards
 * the process exits 0 on SIGTERM and its temp dir is removed.
 */
import assert from "node:assert/strict";
import { exchange, fakeServer, parseResponse, respondWith } from "./proxy_helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

/** Collects a stream's text while the test runs. */
function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const done = (async () => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  })();
  return { text: () => text, done };
}

async function waitFor(what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

Deno.test("fault: a config file replaced by garbage mid-run keeps the old policy and says why", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sandbox-fault-config-" });
  await using upstream = fakeServer("127.0.0.2", respondWith("ok"));
  const config = `${dir}/config.toml`;
  const allowing = 'default_permissions = "t"\n[permissions.t.network]\nenabled = true\n' +
    '[permissions.t.network.domains]\n"allowed.test" = "allow"\n';
  await Deno.writeTextFile(config, allowing);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "proxy",
      "--config",
      config,
      "--resolve",
      "allowed.test=127.0.0.2",
      "--http-port",
      "0",
    ],
    env: { XDG_CONFIG_HOME: dir, SANDBOX_MANAGED_CONFIG: "" },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  let status: Deno.CommandStatus | null = null;
  try {
    await waitFor("the proxy to listen", () => out.text().includes("\n"), 30_000);
    const port = Number(JSON.parse(out.text().split("\n")[0]).http.split(":").pop());
    const get = async () =>
      parseResponse(
        await exchange(
          port,
          `GET http://allowed.test:${upstream.port}/ HTTP/1.1\r\nHost: allowed.test:${upstream.port}\r\nConnection: close\r\n\r\n`,
        ),
      ).status;
    assert.equal(await get(), 200);

    // Garbage, written in place (the way a crashing editor or a bad deploy would leave it).
    await Deno.writeTextFile(config, "[[[ this is \u0000 not TOML =\n");
    await waitFor("the reload failure", () => err.text().includes("Config reload failed"));
    assert.match(err.text(), /Config reload failed, keeping the previous policy: .*config\.toml/);
    assert.equal(await get(), 200, "the old policy must still allow allowed.test");

    // Replaced by a valid file that no longer allows it (rename over, like most editors).
    await Deno.writeTextFile(`${dir}/next.toml`, allowing.replace('"allow"', '"deny"'));
    await Deno.rename(`${dir}/next.toml`, config);
    await waitFor("the reload", () => err.text().includes("Config reloaded"));
    assert.equal(await get(), 403);
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    status = await child.status;
    await Promise.all([out.done, err.done]);
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(status.code, 0, err.text());
  // Nothing of the process is left: its pid is gone.
  assert.equal(await Deno.stat(`/proc/${child.pid}`).then(() => true, () => false), false);
});

/**
 * Regression probes through a real `sandbox run` (Linux, bwrap): a command
 * that tries to go around the proxy. NO_PROXY set by the caller must not make
 * the command connect directly, and a direct connection must not reach the
 * host anyway (the sandbox has its own network namespace); a unix socket on
 * the host that is not allowlisted must be unreachable, by path and through
 * /proc/PID/root of a host process.
 */
import assert from "node:assert/strict";
import { fakeServer, respondWith } from "./proxy_helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

function onPath(name: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((dir) => {
    try {
      return Deno.statSync(`${dir}/${name}`).isFile;
    } catch {
      return false;
    }
  });
}

const READY = Deno.build.os === "linux" && onPath("bwrap") && onPath("curl");

async function sandboxRun(args: string[], env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "run", ...args],
    env: { XDG_CONFIG_HOME: "/nonexistent-sandbox-probe-config", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test({
  name:
    "NO_PROXY bypass: the caller's NO_PROXY does not reach the command, and a direct connection reaches nothing",
  ignore: !READY,
  async fn() {
    await using upstream = fakeServer("127.0.0.2", respondWith("ok"));
    const p = upstream.port;
    const script = [
      'echo "no_proxy=[$NO_PROXY$no_proxy]"',
      // Through the proxy (allowed): works.
      `echo "proxied:$(curl -s --max-time 5 http://allowed.test:${p}/)"`,
      // Around it: curl honours NO_PROXY, and --noproxy forces a direct attempt.
      `curl -s --max-time 5 --noproxy '*' http://127.0.0.2:${p}/; echo "direct:$?"`,
      `NO_PROXY='*' curl -s --max-time 5 http://127.0.0.2:${p}/; echo "env-direct:$?"`,
    ].join("; ");
    const before = upstream.accepted;
    const r = await sandboxRun(
      ["--allow", "allowed.test", "--resolve", "allowed.test=127.0.0.2", "--", "sh", "-c", script],
      { NO_PROXY: "*", no_proxy: "*,allowed.test" },
    );
    assert.equal(r.code, 0, r.stderr);
    // Only loopback (the sandbox's own) is left out of the proxy; the caller's "*" is gone.
    assert.match(
      r.stdout,
      /^no_proxy=\[localhost,\.localhost,127\.0\.0\.1,127\.0\.0\.0\/8,::1localhost,\.localhost,127\.0\.0\.1,127\.0\.0\.0\/8,::1\]$/m,
    );
    assert.match(r.stdout, /^proxied:ok$/m);
    // 7: could not connect (nothing listens on 127.0.0.2 inside the sandbox's own netns).
    assert.match(r.stdout, /^direct:7$/m);
    assert.match(r.stdout, /^env-direct:7$/m);
    assert.equal(upstream.accepted - before, 1, "only the proxied request reached the host");
  },
});

Deno.test({
  name:
    "unix socket escape: a host socket that is not allowlisted cannot be reached from the command",
  ignore: !READY,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "sandbox-probe-sock-" });
    const path = `${dir}/host.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    let accepted = 0;
    const loop = (async () => {
      for await (const conn of listener) {
        accepted++;
        // Read the request before answering: closing a socket with unread bytes resets it, and
        // curl may then drop the answer it already received (this made the test flaky).
        let seen = "";
        const buf = new Uint8Array(4096);
        while (!seen.includes("\r\n\r\n")) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) break;
          seen += new TextDecoder().decode(buf.subarray(0, n));
        }
        await conn.write(
          new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nleak"),
        )
          .catch(() => {});
        conn.close();
      }
    })();
    try {
      const viaRoot = `/proc/${Deno.pid}/root${path}`;
      const script = [
        `curl -s --max-time 5 --unix-socket ${path} http://x/; echo "path:$?"`,
        `curl -s --max-time 5 --unix-socket ${viaRoot} http://x/; echo "proc-root:$?"`,
        `ls -la ${dir} 2>&1 | head -3; echo "listed"`,
      ].join("; ");
      const denied = await sandboxRun(["--", "sh", "-c", script]);
      assert.equal(denied.code, 0, denied.stderr);
      assert.doesNotMatch(denied.stdout, /leak/);
      assert.match(denied.stdout, /^path:7$/m);
      assert.match(denied.stdout, /^proc-root:7$/m);
      assert.equal(accepted, 0);

      // The same socket, allowlisted, is reachable: the probe above can tell the difference.
      const allowed = await sandboxRun([
        "--allow-unix-socket",
        path,
        "--",
        "sh",
        "-c",
        `curl -s --max-time 5 --unix-socket ${path} http://x/`,
      ]);
      assert.equal(allowed.stdout, "leak", allowed.stderr);
      assert.equal(accepted, 1);
    } finally {
      listener.close();
      await loop;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * `sandbox run` end to end, `x-unix-socket`: from inside the sandbox,
 * `curl -H 'x-unix-socket: PATH' http://anything/` reaches an allowlisted
 * host socket through the bridge and the proxy; a socket that is not
 * allowlisted, and a symlink to the allowlisted one planted in the working
 * directory, get 403 and are never connected; both decisions are in the
 * `--log` file.
 */
import assert from "node:assert/strict";
import { readDecisionLog } from "../proxy/decision_log.ts";
import { serveConnections } from "./proxy_helpers.ts";
import { hasProgram, parseLines, sandboxCli } from "./run_helpers.ts";

const ignore = !hasProgram("/usr/bin/bwrap") || !hasProgram("/usr/bin/curl");

/** A unix-socket HTTP server that answers each request with what it saw, and counts accepts. */
function unixHttpServer(path: string) {
  const serve = async (conn: Deno.Conn) => {
    let head = "";
    const buf = new Uint8Array(16384);
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buf);
      if (n === null) return;
      head += new TextDecoder().decode(buf.subarray(0, n));
    }
    const sawHeader = /\r\nx-unix-socket:/i.test(head) ? "yes" : "no";
    const body = `${head.split("\r\n")[0]} header=${sawHeader}`;
    const bytes = new TextEncoder().encode(
      `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
  };
  const served = serveConnections(Deno.listen({ transport: "unix", path }), serve);
  let closing: Promise<void> | null = null;
  return {
    path,
    get accepted() {
      return served.accepted();
    },
    close: () => closing ??= served.close(),
  };
}

Deno.test({
  name:
    "sandbox run: curl -H 'x-unix-socket: …' reaches an allowlisted host socket via the proxy; others get 403",
  ignore,
  async fn() {
    const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "run-unix-fwd-" }));
    const cwd = await Deno.realPath(await Deno.makeTempDir({ prefix: "run-unix-fwd-cwd-" }));
    const allowed = unixHttpServer(`${dir}/api.sock`);
    const other = unixHttpServer(`${dir}/other.sock`);
    try {
      await Deno.symlink(allowed.path, `${cwd}/link.sock`);
      const log = `${dir}/decisions.jsonl`;
      const curl = (name: string, socket: string, extra = "") =>
        `echo "${name}=$(curl -s -m 10 ${extra} -H 'x-unix-socket: ${socket}' http://anything.invalid/${name})"`;
      const script = [
        curl("allowed", allowed.path),
        curl("other", other.path, "-o /dev/null -w '%{http_code}'"),
        curl("link", `${cwd}/link.sock`, "-o /dev/null -w '%{http_code}'"),
      ].join("\n");
      const result = await sandboxCli([
        "run",
        "--allow-unix-socket",
        allowed.path,
        "--log",
        log,
        "--",
        "sh",
        "-c",
        script,
      ], { cwd });
      assert.equal(result.code, 0, result.stderr);
      const out = parseLines(result.stdout);
      assert.equal(out.get("allowed"), "GET /allowed HTTP/1.1 header=no", result.stdout);
      assert.equal(out.get("other"), "403", result.stdout);
      assert.equal(out.get("link"), "403", result.stdout);
      assert.equal(allowed.accepted, 1, "only the allowed request reached the socket");

      // Never connected: a probe is the first connection the other socket ever sees.
      const probe = await Deno.connect({ transport: "unix", path: other.path });
      try {
        const until = Date.now() + 5000;
        while (other.accepted === 0 && Date.now() < until) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        assert.equal(other.accepted, 1);
      } finally {
        probe.close();
      }

      const decisions = (await readDecisionLog(log)).map((e) => [e.host, e.port, e.decision]);
      assert.deepEqual(decisions, [
        [`unix:${allowed.path}`, 0, "allow"],
        [`unix:${other.path}`, 0, "deny"],
        [`unix:${cwd}/link.sock`, 0, "deny"],
      ]);
    } finally {
      await allowed.close();
      await other.close();
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(cwd, { recursive: true });
    }
  },
});

/**
 * `sandbox run` end to end, unix sockets: servers the test binds in /tmp,
 * the working directory and $HOME are unreachable unless allowlisted; a
 * datagram socketpair cannot deliver to a host datagram socket; the
 * launcher's own proxy socket cannot be reached or replaced from inside.
 */
import assert from "node:assert/strict";
import {
  hasProgram,
  parseLines,
  runDirs,
  sandboxCli,
  startHttpServer,
  startUnixServer,
} from "./run_helpers.ts";

const PY = "/usr/bin/python3";
const ignore = !hasProgram("/usr/bin/bwrap") || !hasProgram(PY);
const HOME = Deno.env.get("HOME") ?? "/root";

const CONNECT_PROBE = `
import socket, sys
for i, path in enumerate(sys.argv[1:]):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(path)
        print(f"s{i}=" + s.recv(10).decode())
    except OSError as e:
        print(f"s{i}=error:{e.__class__.__name__}")
    finally:
        s.close()
`;

async function withSockets(
  fn: (paths: string[], cwd: string) => Promise<void>,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "run-unix-" });
  const cwd = await Deno.makeTempDir({ dir: HOME, prefix: ".sandbox-e2e-cwd-" });
  const paths = [
    `${tmp}/in-tmp.sock`,
    `${cwd}/in-cwd.sock`,
    `${HOME}/.sandbox-e2e-${crypto.randomUUID()}.sock`,
  ];
  const servers = paths.map((path) => startUnixServer(path));
  try {
    await fn(paths, cwd);
  } finally {
    for (const server of servers) await server.close();
    await Deno.remove(paths[2]).catch(() => {});
    await Deno.remove(tmp, { recursive: true });
    await Deno.remove(cwd, { recursive: true });
  }
}

Deno.test({
  name:
    "sandbox run: unix sockets in /tmp, the working dir and $HOME are unreachable unless allowlisted",
  ignore,
  async fn() {
    await withSockets(async (paths, cwd) => {
      // Reachable from the host: what fails inside fails because of the sandbox.
      const probe = await new Deno.Command(PY, { args: ["-c", CONNECT_PROBE, ...paths] }).output();
      assert.deepEqual(
        [...parseLines(new TextDecoder().decode(probe.stdout)).values()],
        ["pong", "pong", "pong"],
      );
      const denied = await sandboxCli(["run", "--", PY, "-c", CONNECT_PROBE, ...paths], { cwd });
      assert.equal(denied.code, 0, denied.stderr);
      const out = parseLines(denied.stdout);
      for (const key of ["s0", "s1", "s2"]) assert.match(out.get(key) ?? "", /^error:/, key);

      // The ones outside the working dir can be allowlisted; the one inside it cannot (the
      // command could swap it for a symlink to another socket before the next run).
      const outside = [paths[0], paths[2]];
      const allowed = await sandboxCli([
        "run",
        ...outside.flatMap((path) => ["--allow-unix-socket", path]),
        "--",
        PY,
        "-c",
        CONNECT_PROBE,
        ...outside,
      ], { cwd });
      assert.equal(allowed.code, 0, allowed.stderr);
      assert.deepEqual([...parseLines(allowed.stdout).values()], ["pong", "pong"]);
      const inCwd = await sandboxCli(
        ["run", "--allow-unix-socket", paths[1], "--", PY, "-c", CONNECT_PROBE, paths[1]],
        { cwd },
      );
      assert.equal(inCwd.code, 126, inCwd.stdout);
      assert.match(
        inCwd.stderr,
        /Cannot allow the unix socket .*which the sandboxed command can write/,
      );
    });
  },
});

Deno.test({
  name: "sandbox run: a datagram socketpair cannot deliver to a host datagram socket",
  ignore,
  async fn() {
    const paths = [
      `${HOME}/.sandbox-e2e-${crypto.randomUUID()}.dgram`,
      `/tmp/sandbox-e2e-${crypto.randomUUID()}.dgram`,
    ];
    const receivers = paths.map((path) =>
      new Deno.Command(PY, {
        args: [
          "-c",
          `import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); print("ready", flush=True)
sys.stdin.read()
s.setblocking(False)
try:
    print("got=" + s.recv(100).decode())
except BlockingIOError:
    print("got=nothing")`,
          path,
        ],
        stdin: "piped",
        stdout: "piped",
      }).spawn()
    );
    try {
      for (const receiver of receivers) {
        const reader = receiver.stdout.getReader();
        const { value } = await reader.read();
        reader.releaseLock();
        assert.match(new TextDecoder().decode(value), /ready/);
      }
      const result = await sandboxCli([
        "run",
        "--",
        PY,
        "-c",
        `import socket, sys
for i, path in enumerate(sys.argv[1:]):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        a.sendto(b"leak", path); print(f"pair{i}=sent")
    except OSError as e:
        print(f"pair{i}=error:{e.__class__.__name__}")
    c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        c.sendto(b"leak", path); print(f"plain{i}=sent")
    except OSError as e:
        print(f"plain{i}=error:{e.__class__.__name__}")`,
        ...paths,
      ]);
      assert.equal(result.code, 0, result.stderr);
      const out = parseLines(result.stdout);
      for (const key of ["pair0", "plain0", "pair1", "plain1"]) {
        assert.match(out.get(key) ?? "", /^error:/, key);
      }
    } finally {
      for (const receiver of receivers) {
        await receiver.stdin.close();
        const got = new TextDecoder().decode((await receiver.output()).stdout);
        assert.match(got, /got=nothing/);
      }
      for (const path of paths) await Deno.remove(path).catch(() => {});
    }
  },
});

Deno.test({
  name: "sandbox run: the proxy's run dir is out of reach and cannot be replaced from inside",
  ignore: ignore || !hasProgram("/usr/bin/curl"),
  async fn() {
    const before = runDirs();
    await using server = startHttpServer("still-proxied");
    const script = `
echo "tmp=[$(ls -A /tmp)]"
for d in /tmp/sandbox-run-*; do rm -rf "$d" 2>/dev/null; done
mkdir -p /tmp/sandbox-run-fake && ${PY} -c 'import socket; s = socket.socket(socket.AF_UNIX); s.bind("/tmp/sandbox-run-fake/proxy.sock")'
[ -S /tmp/sandbox-run-fake/proxy.sock ] && echo "fake=made"
echo "unix_listed=$(grep -c ' /' /proc/net/unix)"
echo "after=$(curl -s -m 10 http://allowed.test:${server.port}/)"
`;
    const result = await sandboxCli([
      "run",
      "--resolve",
      "allowed.test=127.0.0.1",
      "--allow",
      "allowed.test",
      "--",
      "sh",
      "-c",
      script,
    ]);
    assert.equal(result.code, 0, result.stderr);
    const out = parseLines(result.stdout);
    // The sandbox's /tmp is fresh: it holds only the way to the working directory when that
    // lies under /tmp (a checkout there, as in CI), and nothing of the run dir.
    const cwd = Deno.cwd();
    assert.equal(out.get("tmp"), cwd.startsWith("/tmp/") ? `[${cwd.split("/")[2]}]` : "[]");
    // The fake went into the sandbox's own /tmp; the host's sockets are not even listed.
    assert.equal(out.get("fake"), "made");
    assert.equal(out.get("unix_listed"), "0");
    assert.equal(out.get("after"), "still-proxied");
    // Nothing of this run's is left (other launchers on the machine may add or sweep their own).
    assert.deepEqual(runDirs().filter((dir) => !before.includes(dir)), []);
  },
});

/**
 * The seccomp filter in real runs (Linux, bwrap): every rule refuses its
 * call inside `sandbox run`, in both postures (allow-network: proxy and
 * bridge; allow: no network), with EPERM (clone3: ENOSYS), while the calls
 * the sandbox needs still work and Node, Python, git and curl do their job.
 *
 * Each probe also runs in a bare bwrap with the same namespaces and no
 * filter (the control): a rule whose call the control sees answered
 * differently is proven to be the filter's doing, so removing the rule
 * fails the test. Calls the kernel already refuses with EPERM for want of
 * a capability (pivot_root, move_mount, fsopen, fsmount, fspick, AF_PACKET)
 * are checked all the same; their rules are pinned by the decoder test
 * (`sandbox/seccomp_test.ts`).
 */
import assert from "node:assert/strict";
import { hasProgram, parseLines, startHttpServer } from "./run_helpers.ts";
import { runCommand, sandboxCli, tempDir } from "./cli_helpers.ts";
import { prepareNobody, unprivilegedBwrapWorks } from "./nobody_helpers.ts";

const PROBE = new URL("../testdata/seccomp/probe.py", import.meta.url);
const READY = Deno.build.os === "linux" && hasProgram("/usr/bin/bwrap") &&
  (Deno.build.arch === "x86_64" || Deno.build.arch === "aarch64");
const PYTHON = findPython();
const TIMEOUT_MS = 120_000;

function findPython(): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir !== "" && hasProgram(`${dir}/python3`)) return `${dir}/python3`;
  }
  return null;
}

/** What each probe must see inside the sandbox. */
const EXPECTED: Readonly<Record<string, string>> = {
  socket_vsock: "EPERM",
  socket_vsock_dgram: "EPERM",
  socketpair_vsock: "EPERM",
  socket_packet: "EPERM",
  socket_alg: "EPERM",
  socket_netlink_generic: "EPERM",
  socket_netlink_route: "ok",
  socket_netlink_sock_diag: "ok",
  socket_unix: "ok",
  socketpair_unix: "ok",
  socket_inet: "ok",
  socket_inet6: "ok",
  io_uring_setup: "EPERM",
  io_uring_enter: "EPERM",
  io_uring_register: "EPERM",
  keyctl: "EPERM",
  add_key: "EPERM",
  request_key: "EPERM",
  bpf: "EPERM",
  perf_event_open: "EPERM",
  userfaultfd: "EPERM",
  mount: "EPERM",
  umount2: "EPERM",
  pivot_root: "EPERM",
  open_tree: "EPERM",
  open_tree_attr: "EPERM",
  move_mount: "EPERM",
  fsopen: "EPERM",
  fsconfig: "EPERM",
  fsmount: "EPERM",
  fspick: "EPERM",
  mount_setattr: "EPERM",
  clone_newuser: "EPERM",
  setns: "EPERM",
  unshare_user: "EPERM",
  unshare_net: "EPERM",
  unshare_files: "ok",
  clone3: "ENOSYS",
  fork: "ok",
  native_getpid: "ok",
  ...(Deno.build.arch === "x86_64" ? { x32_getpid: "EPERM", i386_getpid: "EPERM" } : {}),
};

/** Probes whose control (no filter) must answer differently: the filter alone refuses them. */
const FILTER_ONLY = [
  "socket_vsock",
  "socket_netlink_generic",
  "io_uring_setup",
  "io_uring_enter",
  "io_uring_register",
  "keyctl",
  "add_key",
  "request_key",
  "bpf",
  "perf_event_open",
  "userfaultfd",
  "mount",
  "umount2",
  "open_tree",
  "open_tree_attr",
  "fsconfig",
  "mount_setattr",
  "clone_newuser",
  "setns",
  "unshare_user",
  "unshare_net",
  "clone3",
  ...(Deno.build.arch === "x86_64" ? ["x32_getpid", "i386_getpid"] : []),
];

async function writeProbe(dir: string): Promise<void> {
  await Deno.writeTextFile(`${dir}/probe.py`, await Deno.readTextFile(PROBE));
}

/** The probe in a bare bwrap: the same namespaces and dropped capabilities, no filter. */
async function controlRun(dir: string): Promise<Map<string, string>> {
  const r = await runCommand([
    "/usr/bin/bwrap",
    "--unshare-user",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-net",
    "--unshare-uts",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--chdir",
    dir,
    "--",
    PYTHON!,
    "probe.py",
  ], { timeoutMs: TIMEOUT_MS });
  assert.equal(r.code, 0, r.stderr);
  return parseLines(r.stdout);
}

function assertProbes(inside: Map<string, string>, control: Map<string, string>): void {
  for (const [name, expected] of Object.entries(EXPECTED)) {
    assert.equal(inside.get(name), expected, `${name} inside the sandbox`);
  }
  for (const name of FILTER_ONLY) {
    assert.notEqual(
      control.get(name),
      EXPECTED[name],
      `${name} without the filter (control) answered like the filter: the probe proves nothing`,
    );
    assert.ok(control.has(name), `${name} missing from the control run`);
  }
}

Deno.test({
  name: "seccomp filter: every rule refuses its call inside `sandbox run` with network (proxy)",
  ignore: !READY || PYTHON === null,
  async fn() {
    await using dir = await tempDir("seccomp-net-");
    await writeProbe(dir.path);
    const control = await controlRun(dir.path);
    const r = await sandboxCli(["run", "--", PYTHON!, "probe.py"], {
      cwd: dir.path,
      timeoutMs: TIMEOUT_MS,
    });
    assert.equal(r.code, 0, r.stderr);
    assertProbes(parseLines(r.stdout), control);
  },
});

Deno.test({
  name: "seccomp filter: every rule refuses its call inside `sandbox run` without network (allow)",
  ignore: !READY || PYTHON === null,
  async fn() {
    await using dir = await tempDir("seccomp-allow-");
    await writeProbe(dir.path);
    const config = `${dir.path}/allow.toml`;
    await Deno.writeTextFile(config, `[execpolicy]\n"sh" = "allow"\n`);
    const control = await controlRun(dir.path);
    const r = await sandboxCli(
      ["run", "--config", config, "--", "sh", "-c", `${PYTHON} probe.py; echo "proxy=$HTTP_PROXY"`],
      { cwd: dir.path, timeoutMs: TIMEOUT_MS },
    );
    assert.equal(r.code, 0, r.stderr);
    const inside = parseLines(r.stdout);
    assert.equal(inside.get("proxy"), "", "the allow posture has no proxy");
    assertProbes(inside, control);
  },
});

const TOOLS_SCRIPT = (port: number) =>
  [
    "set -e",
    // Node: threads, child processes (socketpair), fs, a loopback server and a client.
    `node -e '
      const net = require("net"), cp = require("child_process"), fs = require("fs");
      fs.writeFileSync("n.txt", "x");
      const out = cp.execFileSync("sh", ["-c", "echo child"]).toString().trim();
      const srv = net.createServer((c) => c.end("pong")).listen(0, "127.0.0.1", () => {
        net.connect(srv.address().port, "127.0.0.1").on("data", (d) => {
          console.log("node=" + out + "," + d + "," + fs.readFileSync("n.txt"));
          srv.close();
        });
      });'`,
    // Python: threads, a process pool, subprocess, getaddrinfo on loopback.
    `python3 -c '
import concurrent.futures, multiprocessing, socket, subprocess, threading
t = threading.Thread(target=lambda: None); t.start(); t.join()
with multiprocessing.Pool(2) as pool: squares = pool.map(abs, [-1, -2])
sub = subprocess.run(["echo", "sub"], capture_output=True, text=True).stdout.strip()
addr = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)[0][4][0]
print("python=%s,%s,%s" % (squares, sub, addr))'`,
    // git: a repository, a commit, a log.
    "git init -q repo && cd repo && git -c user.email=a@b -c user.name=a commit -q --allow-empty -m first",
    'echo "git=$(git log --format=%s)"',
    "cd ..",
    // curl through the proxy to a loopback server the test started.
    `echo "curl=$(curl -s --max-time 20 http://allowed.test:${port}/)"`,
  ].join("\n");

Deno.test({
  name: "seccomp filter: Node, Python, git and curl still work inside `sandbox run`",
  ignore: !READY || !hasProgram("/usr/bin/curl") || !hasProgram("/usr/bin/git"),
  async fn() {
    await using dir = await tempDir("seccomp-tools-");
    await using server = startHttpServer("hello-through-proxy");
    const r = await sandboxCli(
      [
        "run",
        "--allow",
        "allowed.test",
        "--resolve",
        "allowed.test=127.0.0.1",
        "--",
        "sh",
        "-c",
        TOOLS_SCRIPT(server.port),
      ],
      { cwd: dir.path, timeoutMs: TIMEOUT_MS },
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const lines = parseLines(r.stdout);
    assert.equal(lines.get("node"), "child,pong,x");
    assert.equal(lines.get("python"), "[1, 2],sub,127.0.0.1");
    assert.equal(lines.get("git"), "first");
    assert.equal(lines.get("curl"), "hello-through-proxy");
  },
});

Deno.test({
  name: "seccomp filter: the same rules hold for an unprivileged user (setpriv, nobody)",
  ignore: !READY || !hasProgram("/usr/bin/python3") || !unprivilegedBwrapWorks(),
  async fn() {
    await using nobody = await prepareNobody();
    const work = `${nobody.dir}/work`;
    await Deno.mkdir(work);
    await writeProbe(work);
    await nobody.chown(work);
    const r = await runCommand(
      nobody.argv(["run", "--", "/usr/bin/python3", "probe.py"]),
      {
        cwd: work,
        clearEnv: true,
        env: { PATH: "/usr/bin:/bin", HOME: work, ...nobody.denoEnv },
        timeoutMs: TIMEOUT_MS,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const inside = parseLines(r.stdout);
    for (const [name, expected] of Object.entries(EXPECTED)) {
      assert.equal(inside.get(name), expected, `${name} inside the sandbox, as nobody`);
    }
  },
});

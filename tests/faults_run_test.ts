/**
 * Fault tests for `sandbox run` as a real subprocess on Linux with bwrap:
 *
 * - /tmp unwritable (the launcher's run dir lives in /tmp by design; TMPDIR is
 *   not used for it): a clear error, exit 126, nothing started. /tmp is made
 *   read-only only inside a private mount namespace (`unshare --mount`, root).
 * - TMPDIR pointing at a read-only directory: the launcher does not depend on it.
 * - bwrap exits early: PATH puts a fake `bwrap` first that prints a message and
 *   exits 1. This is an injected fault (the launcher meets a bwrap that fails
 *   at once, as with a bad bind path), not a stand-in for bwrap under test.
 * - The proxy is in-process with the launcher, so "the proxy dies while CMD
 *   runs" is tested two ways: the bridge process (the only separate hop
 *   between CMD and the proxy, unprivileged runs only: as root the launcher
 *   listens inside the sandbox itself, and there is no bridge process, which
 *   is checked too) is killed, and the launcher itself (with its proxy) is
 *   killed with SIGKILL.
 *
 * After each: no process of the run is left (found by markers in
 * /proc/PID/cmdline) and no run directory of the run remains in /tmp (the
 * SIGKILL case: the next run sweeps it).
 */
import assert from "node:assert/strict";
import { fakeServer, respondWith } from "./proxy_helpers.ts";
import { runDirBase } from "../sandbox/run_dir.ts";
import { NOBODY, type Nobody, prepareNobody, unprivilegedBwrapWorks } from "./nobody_helpers.ts";
import { type ChildProcessInfo, childrenOf, eventually } from "./run_helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

function which(name: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // Not here.
    }
  }
  return null;
}

const LINUX = Deno.build.os === "linux" && which("bwrap") !== null;
const ROOT = LINUX && Deno.uid() === 0 && which("unshare") !== null;

/** Processes whose command line contains `marker` (never this test process). */
function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      if (cmdline.includes(marker)) found.push(Number(entry.name));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** Run dirs in /tmp owned by `pid` (a launcher running as `uid`). */
function runDirsOf(pid: number, uid = Deno.uid() ?? 0): string[] {
  const out: string[] = [];
  const base = runDirBase(Deno.env.toObject(), uid);
  for (const entry of Deno.readDirSync(base)) {
    if (!entry.name.startsWith("sandbox-run-")) continue;
    try {
      const owner = Deno.readTextFileSync(`${base}/${entry.name}/owner`);
      if (owner === String(pid) || owner.startsWith(`${pid} `)) out.push(`${base}/${entry.name}`);
    } catch {
      // Not ours to read, or gone.
    }
  }
  return out;
}

/** Streams a child's output into a string as it comes. */
function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const done = (async () => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  })();
  return { text: () => text, done };
}

function sandboxRun(
  args: string[],
  options: {
    env?: Record<string, string>;
    stdin?: "piped" | "null";
    prefix?: string[];
    detached?: boolean;
    /** Runs the launcher as nobody (its argv and environment). */
    nobody?: Nobody;
    /** More `deno run` flags. */
    denoFlags?: string[];
  } = {},
) {
  const prefix = options.prefix ?? [];
  const argv = options.nobody !== undefined
    ? options.nobody.argv(["run", ...args])
    : [...prefix, Deno.execPath(), "run", "-A", ...(options.denoFlags ?? []), MAIN, "run", ...args];
  return new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: {
      XDG_CONFIG_HOME: "/nonexistent-sandbox-fault-config",
      ...options.nobody?.denoEnv,
      ...options.env,
    },
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
    detached: options.detached ?? false,
  });
}

Deno.test({
  name: "fault: /tmp unwritable => a clear error, exit 126, nothing started",
  ignore: !ROOT,
  async fn() {
    const marker = `fault-ro-tmp-${crypto.randomUUID()}`;
    const output = await sandboxRun(["--allow", "allowed.test", "--", "echo", marker], {
      prefix: [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        // Read-only in place (not a fresh tmpfs), so a checkout that lives under /tmp stays visible.
        'mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp && exec "$@"',
        "sh",
      ],
    }).output();
    const stderr = decoder.decode(output.stderr);
    assert.equal(output.code, 126, stderr);
    assert.match(
      stderr,
      /^sandbox: Cannot create the run directory in "\/tmp\/sandbox-0": Read-only file system.*needs a private, writable "\/tmp\/sandbox-0"/m,
    );
    assert.doesNotMatch(stderr, /Internal error|\n\s+at /);
    assert.ok(!decoder.decode(output.stdout).includes(marker), "the command ran");
    assert.deepEqual(processesWith(marker), []);
  },
});

Deno.test({
  name: "fault: TMPDIR pointing at a read-only directory does not stop the launcher",
  ignore: !LINUX,
  async fn() {
    const output = await sandboxRun(["--", "sh", "-c", "echo ran"], {
      env: { TMPDIR: "/proc/self" },
    }).output();
    assert.equal(output.code, 0, decoder.decode(output.stderr));
    assert.equal(decoder.decode(output.stdout), "ran\n");
  },
});

Deno.test({
  name: "fault: bwrap exits early => a clear error, exit 126, proxy and run dir gone",
  ignore: !LINUX,
  async fn() {
    const fake = await Deno.makeTempDir({ prefix: "sandbox-fake-bwrap-" });
    try {
      await Deno.writeTextFile(
        `${fake}/bwrap`,
        '#!/bin/sh\necho "bwrap: Can\'t find source path /nonexistent: No such file or directory" >&2\nexit 1\n',
        { mode: 0o755 },
      );
      const child = sandboxRun(["--allow", "allowed.test", "--", "true"], {
        env: { SANDBOX_BWRAP: `${fake}/bwrap` },
      }).spawn();
      const err = collect(child.stderr);
      const out = collect(child.stdout);
      const status = await child.status;
      await Promise.all([err.done, out.done]);
      assert.equal(status.code, 126, err.text());
      assert.match(err.text(), /bwrap: Can't find source path/);
      assert.match(
        err.text(),
        /sandbox: Bubblewrap could not set up the sandbox \(exit code 1\): see its message above/,
      );
      assert.deepEqual(
        runDirsOf(child.pid),
        [],
        "the run dir (and the proxy socket in it) is left",
      );
      assert.deepEqual(processesWith(fake), []);
    } finally {
      await Deno.remove(fake, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "fault (unprivileged): the bridge to the proxy is killed while CMD runs => one clear line on stderr at once, CMD's next connection fails at once, CMD's own exit code (0) is kept, nothing is left",
  ignore: !LINUX || !unprivilegedBwrapWorks(),
  async fn() {
    await using nobody = await prepareNobody();
    const home = `${nobody.dir}/home`;
    await Deno.mkdir(home);
    await nobody.chown(home);
    await using upstream = fakeServer("127.0.0.2", respondWith("ok"));
    const url = `http://allowed.test:${upstream.port}/`;
    const curl = `curl -s -o /dev/null --max-time 5 -w '%{http_code}' ${url}`;
    const child = sandboxRun(
      [
        "--allow",
        "allowed.test",
        "--resolve",
        "allowed.test=127.0.0.2",
        "--",
        "sh",
        "-c",
        // Exits 0 whatever curl says: the launcher keeps CMD's code even after the bridge died.
        `echo "first:$(${curl})"; read go; ${curl}; code=$?; echo "second:$code"; exit 0`,
      ],
      { stdin: "piped", nobody, env: { HOME: home } },
    ).spawn();
    const out = collect(child.stdout);
    const err = collect(child.stderr);
    const stdin = child.stdin.getWriter();
    let status: Deno.CommandStatus;
    let runDirs: string[] = [];
    try {
      await eventually("the first request", () => out.text().includes("first:"), 30_000)
        .catch((error) => {
          throw new Error(`${error.message}: ${err.text()}`);
        });
      assert.match(out.text(), /first:200/);
      assert.doesNotMatch(err.text(), /network bridge/);
      runDirs = runDirsOf(child.pid, NOBODY);
      assert.equal(runDirs.length, 1);
      const bridges = childrenOf(child.pid).filter((p) => p.cmdline.includes("__bridge"));
      assert.equal(bridges.length, 1, JSON.stringify(childrenOf(child.pid)));
      Deno.kill(bridges[0].pid, "SIGKILL");
      // bwrap's argv names the run dir too (the sandbox's resolv.conf comes from there).
      await eventually(
        "the bridge to exit",
        () => processesWith(runDirs[0]).every((pid) => pid !== bridges[0].pid),
      );
      // Said while CMD still runs (it is waiting on stdin), not only at the end.
      await eventually("the launcher to notice", () => /network bridge stopped/.test(err.text()));
      const started = Date.now();
      await stdin.write(new TextEncoder().encode("go\n"));
      await stdin.close();
      status = await child.status;
      // curl gets "connection refused" at once rather than waiting out --max-time.
      assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`);
    } finally {
      await stdin.close().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      status = await child.status;
      await Promise.all([out.done, err.done]);
    }
    assert.match(out.text(), /second:7\b/, out.text());
    assert.equal(status.code, 0, err.text());
    const lines = err.text().split("\n").filter((line) => line.includes("network bridge"));
    assert.deepEqual(lines, [
      "sandbox: The network bridge stopped (killed by SIGKILL): connections from the command fail from now on",
    ]);
    assert.deepEqual(runDirsOf(child.pid, NOBODY), []);
    for (const dir of runDirs) assert.deepEqual(processesWith(dir), []);
  },
});

/**
 * A root run whose command makes one proxied and one captured request to a loopback fixture and
 * then waits; `whileRunning` looks at the launcher's children meanwhile. Both requests must arrive.
 */
async function proxiedAndCaptured(
  denoFlags: string[],
  whileRunning: (children: ChildProcessInfo[]) => void,
): Promise<void> {
  await using upstream = fakeServer("127.0.0.2", respondWith("ok"));
  const url = `http://allowed.test:${upstream.port}/`;
  const child = sandboxRun(
    [
      "--allow",
      `allowed.test:${upstream.port}`,
      "--resolve",
      "allowed.test=127.0.0.2",
      "--",
      "sh",
      "-c",
      `echo "proxied:$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' ${url})"; ` +
      `echo "captured:$(curl -s -o /dev/null --noproxy '*' --max-time 5 -w '%{http_code}' ${url})"; ` +
      "read go",
    ],
    { stdin: "piped", denoFlags },
  ).spawn();
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  const stdin = child.stdin.getWriter();
  try {
    await eventually("both requests", () => out.text().includes("captured:"), 30_000);
    whileRunning(childrenOf(child.pid));
    await stdin.write(new TextEncoder().encode("go\n"));
    await stdin.close();
  } finally {
    await stdin.close().catch(() => {});
    await child.status;
    await Promise.all([out.done, err.done]);
  }
  assert.match(out.text(), /proxied:200/);
  assert.match(out.text(), /captured:200/, err.text());
  assert.equal(upstream.accepted, 2);
}

Deno.test({
  name:
    "sandbox run as root without --unstable-net (no UDP for the DNS stub in the launcher): the bridge process, started before bwrap, serves the proxy ports and capture",
  ignore: !LINUX || Deno.uid() !== 0,
  async fn() {
    // --no-config: deno.json's "unstable" list (which enables --unstable-net) is not read.
    await proxiedAndCaptured(["--no-config"], (children) => {
      const bridges = children.filter((p) => p.cmdline.includes("__bridge"));
      assert.equal(bridges.length, 1, JSON.stringify(children));
      assert.match(bridges[0].cmdline, /--netns-from-stdin 1/);
    });
  },
});

Deno.test({
  name:
    "sandbox run as root: no bridge process; the launcher itself listens inside the sandbox and serves the proxy ports and capture there",
  ignore: !LINUX || Deno.uid() !== 0,
  async fn() {
    await proxiedAndCaptured([], (children) => {
      assert.deepEqual(children.filter((p) => p.cmdline.includes("__bridge")), []);
      assert.ok(children.some((p) => p.cmdline.includes("bwrap")), JSON.stringify(children));
    });
  },
});

Deno.test({
  name:
    "fault: a terminal's Ctrl-C (SIGINT to the launcher's process group) leaves the bridge relaying while CMD handles it, and no bridge message",
  ignore: !LINUX,
  async fn() {
    await using upstream = fakeServer("127.0.0.2", respondWith("ok"));
    const url = `http://allowed.test:${upstream.port}/`;
    const curl = `curl -s -o /dev/null --max-time 5 -w '%{http_code}' ${url}`;
    // `detached`: a process group (and session) of its own, like a shell's foreground job,
    // so that a SIGINT to the group is what a terminal's Ctrl-C does.
    const child = sandboxRun(
      [
        "--allow",
        "allowed.test",
        "--resolve",
        "allowed.test=127.0.0.2",
        "--",
        "sh",
        "-c",
        // CMD ignores SIGINT (as a tool finishing its work would) and then uses the network.
        `trap '' INT; echo ready; read go; echo "after:$(${curl})"`,
      ],
      { stdin: "piped", detached: true },
    ).spawn();
    const out = collect(child.stdout);
    const err = collect(child.stderr);
    const stdin = child.stdin.getWriter();
    let status: Deno.CommandStatus;
    try {
      await eventually("the command to start", () => out.text().includes("ready"), 30_000);
      Deno.kill(-child.pid, "SIGINT");
      await new Promise((resolve) => setTimeout(resolve, 300));
      await stdin.write(new TextEncoder().encode("go\n"));
      await stdin.close();
      status = await child.status;
    } finally {
      await stdin.close().catch(() => {});
      try {
        Deno.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
      status = await child.status;
      await Promise.all([out.done, err.done]);
    }
    assert.match(out.text(), /after:200/, out.text() + err.text());
    assert.doesNotMatch(err.text(), /network bridge/);
    assert.equal(status.code, 0, err.text());
  },
});

Deno.test({
  name:
    "fault: the launcher (and its in-process proxy) is killed while CMD runs => CMD and the bridge die, the next run sweeps the run dir",
  ignore: !LINUX,
  async fn() {
    const marker = `29.${Math.floor(Math.random() * 1e6)}`;
    const child = sandboxRun([
      "--allow",
      "allowed.test",
      "--",
      "sh",
      "-c",
      `echo started; exec sleep ${marker}`,
    ]).spawn();
    const out = collect(child.stdout);
    const err = collect(child.stderr);
    let runDirs: string[] = [];
    try {
      await eventually("the command to start", () => out.text().includes("started"), 30_000);
      await eventually("the sleep", () => processesWith(`sleep ${marker}`).length > 0);
      runDirs = runDirsOf(child.pid);
      assert.equal(runDirs.length, 1);
      assert.ok(processesWith(runDirs[0]).length > 0, "no bridge found");
      child.kill("SIGKILL");
      const status = await child.status;
      assert.equal(status.signal, "SIGKILL");
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      await Promise.all([out.done, err.done]);
    }
    // bwrap's --die-with-parent ends CMD; the bridge ends when its stdin (from the launcher) closes.
    await eventually("CMD to die", () => processesWith(`sleep ${marker}`).length === 0);
    await eventually("the bridge to die", () => processesWith(runDirs[0]).length === 0);
    // The run dir outlives a SIGKILLed launcher; the next run removes it.
    assert.ok(await Deno.stat(runDirs[0]).then(() => true, () => false));
    const next = await sandboxRun(["--", "true"]).output();
    assert.equal(next.code, 0, decoder.decode(next.stderr));
    assert.equal(await Deno.stat(runDirs[0]).then(() => true, () => false), false);
  },
});

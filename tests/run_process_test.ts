/**
 * `sandbox run` end to end, processes: exit codes, signals, inherited
 * descriptors, nothing left behind (also when the launcher is SIGKILLed),
 * and the unprivileged path (the launcher as `nobody`).
 */
import assert from "node:assert/strict";
import { prepareNobody, unprivilegedBwrapWorks } from "./nobody_helpers.ts";
import {
  descendants,
  hasProgram,
  parseLines,
  runDirs,
  sandboxArgv,
  sandboxCli,
  startHttpServer,
} from "./run_helpers.ts";

const ignore = !hasProgram("/usr/bin/bwrap");

Deno.test({
  name: "sandbox run: passes exit codes on (own code, 128+signal, 127 not found, 126 denied)",
  ignore,
  async fn() {
    assert.equal((await sandboxCli(["run", "--", "sh", "-c", "exit 42"])).code, 42);
    assert.equal((await sandboxCli(["run", "--", "sh", "-c", "kill -TERM $$"])).code, 143);
    const missing = await sandboxCli(["run", "--", "no-such-command-e2e"]);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /^sandbox: Command not found: "no-such-command-e2e"/m);
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/c.toml`, `[execpolicy]\n"touch *" = "deny"\n`);
      const denied = await sandboxCli([
        "run",
        "--config",
        `${dir}/c.toml`,
        "--",
        "touch",
        `${dir}/made`,
      ], { cwd: dir });
      assert.equal(denied.code, 126);
      assert.match(denied.stderr, /Command denied by execpolicy/);
      assert.throws(() => Deno.statSync(`${dir}/made`));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "sandbox run: only fds 0, 1 and 2 reach the command",
  ignore,
  async fn() {
    // The launcher itself gets fds 7 and 8 (not close-on-exec), like a CI runner's pipes.
    const out = await new Deno.Command("/bin/sh", {
      args: [
        "-c",
        'exec 7</dev/null 8>/dev/null; exec "$@"',
        "sh",
        ...sandboxArgv([
          "run",
          "--",
          "sh",
          "-c",
          "ls /proc/$$/fd",
        ]),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.deepEqual(text.trim().split("\n"), ["0", "1", "2"]);
  },
});

/** Starts `sandbox run ARGS` and resolves once its stdout printed `ready`. */
async function startUntilReady(args: string[]) {
  const [cmd, ...rest] = sandboxArgv(args);
  const child = new Deno.Command(cmd, { args: rest, stdout: "piped", stderr: "piped" }).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    while (!text.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
  } finally {
    clearTimeout(timer);
  }
  assert.match(text, /ready/);
  const rest$ = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    return text;
  })();
  return {
    child,
    async finish() {
      const [status, stdout, stderr] = await Promise.all([
        child.status,
        rest$,
        new Response(child.stderr).text(),
      ]);
      return { status, stdout, stderr };
    },
  };
}

Deno.test({
  name: "sandbox run: SIGTERM and SIGINT to the launcher reach the command",
  ignore,
  async fn() {
    const term = await startUntilReady([
      "run",
      "--",
      "sh",
      "-c",
      'trap "echo got-term; exit 5" TERM; echo ready; while :; do sleep 0.05; done',
    ]);
    term.child.kill("SIGTERM");
    const termEnd = await term.finish();
    assert.equal(termEnd.status.code, 5, termEnd.stderr);
    assert.match(termEnd.stdout, /got-term/);

    const int = await startUntilReady(["run", "--", "sh", "-c", "echo ready; exec sleep 30"]);
    int.child.kill("SIGINT");
    const intEnd = await int.finish();
    assert.equal(intEnd.status.code, 130, intEnd.stderr);
  },
});

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "sandbox run: a SIGKILLed launcher leaves no process behind, and the next run removes its run dir",
  ignore: ignore || !hasProgram("/usr/bin/nsenter"),
  async fn() {
    const before = runDirs();
    const run = await startUntilReady([
      "run",
      "--allow",
      "allowed.test",
      "--",
      "sh",
      "-c",
      "echo ready; exec sleep 30",
    ]);
    const tree = descendants(run.child.pid);
    // bwrap, its sandbox init and the command at least (as root the launcher listens inside
    // the sandbox itself; unprivileged, the bridge process is one more).
    assert.ok(tree.length >= 3, `descendants: ${tree.join(" ")}`);
    const stale = runDirs().filter((dir) => !before.includes(dir));
    assert.equal(stale.length, 1);
    run.child.kill("SIGKILL");
    await run.finish();
    const deadline = Date.now() + 10_000;
    while (tree.some(alive) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(tree.filter(alive), []);
    assert.ok(Deno.statSync(stale[0]).isDirectory);
    const next = await sandboxCli(["run", "--", "true"]);
    assert.equal(next.code, 0, next.stderr);
    assert.throws(() => Deno.statSync(stale[0]));
    // Nothing of this run's is left (other launchers on the machine may add or sweep their own).
    assert.deepEqual(runDirs().filter((dir) => !before.includes(dir)), []);
  },
});

Deno.test({
  name: "sandbox run as an unprivileged user: user namespace, bridge and proxy work",
  ignore: ignore || !hasProgram("/usr/bin/curl") || !unprivilegedBwrapWorks(),
  async fn() {
    // nobody cannot read root's Deno or its cache: it gets its own copies.
    await using nobody = await prepareNobody();
    await using server = startHttpServer("hello-nobody");
    const work = `${nobody.dir}/work`;
    await Deno.mkdir(work);
    await nobody.chown(work);
    {
      const [program, ...args] = nobody.argv([
        "run",
        "--resolve",
        "allowed.test=127.0.0.1",
        "--allow",
        "allowed.test",
        "--",
        "sh",
        "-c",
        `echo "uid=$(id -u)"; echo "body=$(curl -s -m 10 http://allowed.test:${server.port}/)"; touch made && echo wrote=yes`,
      ]);
      const out = await new Deno.Command(program, {
        args,
        cwd: work,
        clearEnv: true,
        env: { PATH: "/usr/bin:/bin", HOME: work, ...nobody.denoEnv },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      const lines = parseLines(stdout);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.equal(lines.get("uid"), "65534");
      assert.equal(lines.get("body"), "hello-nobody");
      assert.equal(lines.get("wrote"), "yes");
    }
  },
});

/**
 * The seams between runs (issue 14): what a sandboxed command can leave
 * behind must not steer the launcher on the next run. Each test is the
 * attack: a first run (or the test, standing in for an earlier run) plants
 * something where the command can write, a second run goes ahead, and the
 * test checks the secure outcome. Real `sandbox run` under real bwrap, as
 * root and, where it differs, as an unprivileged user (setpriv).
 */
import assert from "node:assert/strict";
import { type CliResult, MAIN, onPath, sandboxCli, type TempDir } from "./cli_helpers.ts";
import { hasProgram } from "./run_helpers.ts";
import { type Nobody, prepareNobody, unprivilegedBwrapWorks } from "./nobody_helpers.ts";

const READY = Deno.build.os === "linux" && onPath("bwrap");

const NO_CONFIG = {
  XDG_CONFIG_HOME: "/nonexistent-sandbox-seams-config",
  SANDBOX_MANAGED_CONFIG: "",
};

/** A temp dir outside /tmp (which is empty inside the sandbox), readable by everyone. */
async function visibleTempDir(prefix: string): Promise<TempDir> {
  const path = await Deno.makeTempDir({ dir: "/var/tmp", prefix });
  await Deno.chmod(path, 0o755);
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

const UNPRIVILEGED = READY && unprivilegedBwrapWorks();

/** One copy of Deno and its npm cache for every unprivileged run of this file (root's are not readable to nobody). */
let shared: Promise<Nobody> | null = null;
function sharedNobody(): Promise<Nobody> {
  shared ??= prepareNobody().then((nobody) => {
    addEventListener("unload", () => Deno.removeSync(nobody.dir, { recursive: true }));
    return nobody;
  });
  return shared;
}

interface SeamRunOptions {
  readonly cwd: string;
  /** The whole environment of the launcher (PATH, HOME set by the caller). */
  readonly env: Record<string, string>;
  /** Run as uid/gid 65534 through setpriv. */
  readonly nobody?: boolean;
  readonly timeoutMs?: number;
}

/** `sandbox ARGS…` with exactly `env`, as root or as nobody. */
async function seamRun(args: readonly string[], options: SeamRunOptions): Promise<CliResult> {
  if (options.nobody !== true) {
    return await sandboxCli(args, {
      cwd: options.cwd,
      env: { ...NO_CONFIG, ...options.env },
      clearEnv: true,
      timeoutMs: options.timeoutMs ?? 60_000,
    });
  }
  const nobody = await sharedNobody();
  const [program, ...rest] = nobody.argv(args);
  const child = new Deno.Command(program, {
    args: rest,
    cwd: options.cwd,
    clearEnv: true,
    env: { ...NO_CONFIG, ...nobody.denoEnv, ...options.env },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 90_000),
  });
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Gives a directory tree to nobody (for the unprivileged variants). */
async function giveToNobody(path: string): Promise<void> {
  await (await sharedNobody()).chown(path);
}

for (const nobody of [false, true]) {
  const who = nobody ? "unprivileged" : "root";

  Deno.test({
    name:
      `helpers (${who}): a setsid, bwrap, nsenter or unshare planted in a PATH directory the command can write never runs`,
    ignore: !READY || (nobody && !UNPRIVILEGED),
    async fn() {
      await using root = await visibleTempDir("sandbox-seams-path-");
      const cwd = `${root.path}/work`;
      await Deno.mkdir(cwd);
      if (nobody) await giveToNobody(cwd);
      // The marker lies in the working dir, which the planted program (running outside, as the
      // user) can write; the command itself only plants, it never writes the marker.
      const marker = `${cwd}/PWNED`;
      const plant = ["node_modules/.bin", "bin"].flatMap((dir) =>
        ["setsid", "bwrap", "nsenter", "unshare"].map((name) =>
          `mkdir -p ${dir} && printf '#!/bin/sh\\necho ran-${name} >> ${marker}.$$\\nmv ${marker}.$$ ${marker}\\n' > ${dir}/${name} && chmod +x ${dir}/${name}`
        )
      ).join(" && ");
      const env = {
        // Relative entries first, like npm scripts' node_modules/.bin.
        PATH: "node_modules/.bin:bin::/usr/bin:/bin",
        HOME: cwd,
      };
      const first = await seamRun(["run", "--", "sh", "-c", `${plant} && echo planted`], {
        cwd,
        env,
        nobody,
      });
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /planted/);
      // Again without and with network (nsenter and unshare start the bridge only with network).
      const second = await seamRun(["run", "--", "sh", "-c", "echo second"], {
        cwd,
        env,
        nobody,
      });
      const third = await seamRun(
        ["run", "--allow", "example.test", "--", "sh", "-c", "echo third"],
        { cwd, env, nobody },
      );
      assert.equal(await exists(marker), false, "a planted helper ran outside the sandbox");
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stdout, /second/);
      assert.equal(third.code, 0, third.stderr);
      assert.match(third.stdout, /third/);
    },
  });
}

for (const nobody of [false, true]) {
  const who = nobody ? "unprivileged" : "root";

  Deno.test({
    name:
      `run dirs (${who}): a FIFO planted from cwd /tmp as a run dir's owner file does not hold up the next run`,
    ignore: !READY || (nobody && !UNPRIVILEGED),
    async fn() {
      const uid = nobody ? 65534 : (Deno.uid() ?? 0);
      // Everywhere a run dir could be looked for: the old shared place, and this user's base.
      const plant = [
        "/tmp/sandbox-run-seams-fake",
        `/tmp/sandbox-${uid}/sandbox-run-seams-fake`,
      ].map((dir) => `mkdir -p ${dir} && mkfifo ${dir}/owner`).join("; ");
      await using home = await visibleTempDir("sandbox-seams-home-");
      if (nobody) await giveToNobody(home.path);
      const env = { PATH: "/usr/bin:/bin", HOME: home.path };
      try {
        const first = await seamRun(["run", "--", "sh", "-c", `${plant}; echo planted`], {
          cwd: "/tmp",
          env,
          nobody,
        });
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stdout, /planted/);
        // The runner's timeout fails the test if the sweep opened the FIFO and blocked.
        const second = await seamRun(["run", "--", "sh", "-c", "echo second"], {
          cwd: "/tmp",
          env,
          nobody,
          timeoutMs: 60_000,
        });
        assert.equal(second.code, 0, second.stderr);
        assert.match(second.stdout, /second/);
        // The per-user base stayed private: nothing the command made reached it.
        const base = `/tmp/sandbox-${uid}`;
        const info = await Deno.lstat(base);
        assert.ok(info.isDirectory && info.uid === uid && (info.mode! & 0o077) === 0);
        assert.equal(await exists(`${base}/sandbox-run-seams-fake`), false);
      } finally {
        await Deno.remove("/tmp/sandbox-run-seams-fake", { recursive: true }).catch(() => {});
      }
    },
  });
}

Deno.test({
  name: "run dirs: a per-user base another user made first is refused, not used",
  ignore: !READY || !UNPRIVILEGED,
  async fn() {
    // uid 65533 has no base yet; root plants one for it (as another local user could in /tmp).
    const base = "/tmp/sandbox-65533";
    await Deno.remove(base, { recursive: true }).catch(() => {});
    await Deno.mkdir(base, { mode: 0o777 });
    await Deno.chmod(base, 0o777);
    await using cwd = await visibleTempDir("sandbox-seams-base-");
    await new Deno.Command("/bin/chown", { args: ["65533:65533", cwd.path] }).output();
    try {
      const nobody = await sharedNobody();
      const out = await new Deno.Command("/usr/bin/setpriv", {
        args: ["--reuid=65533", "--regid=65533", "--clear-groups", `${nobody.dir}/deno`, "run"]
          .concat(["-A", "--quiet", MAIN, "run", "--", "sh", "-c", "echo ran"]),
        cwd: cwd.path,
        clearEnv: true,
        env: { ...NO_CONFIG, PATH: "/usr/bin:/bin", HOME: cwd.path, ...nobody.denoEnv },
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(90_000),
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 126, stderr);
      assert.doesNotMatch(new TextDecoder().decode(out.stdout), /ran/);
      assert.match(
        stderr,
        /Cannot use "\/tmp\/sandbox-65533" for the run directory: it belongs to uid 0/,
      );
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "system dirs: cwd / is refused with exit 2 naming the flag; with it, /proc and /tmp stay the sandbox's own",
  ignore: !READY,
  async fn() {
    await using probe = await visibleTempDir("sandbox-seams-root-");
    const env = { PATH: "/usr/bin:/bin", HOME: probe.path };
    const hostTmp = `/tmp/sandbox-seams-hosttmp-${crypto.randomUUID()}`;
    await Deno.writeTextFile(hostTmp, "host");
    try {
      const script =
        `echo ran; ls /tmp/${hostTmp.slice(5)} 2>/dev/null && echo host-tmp-visible; ` +
        `[ -e /proc/${Deno.pid} ] && echo host-proc-visible; echo x > ${probe.path}/made`;
      const refused = await seamRun(["run", "--", "sh", "-c", script], { cwd: "/", env });
      assert.equal(refused.code, 2, refused.stdout + refused.stderr);
      assert.doesNotMatch(refused.stdout, /ran/);
      assert.match(
        refused.stderr,
        /^sandbox: Cannot use "\/" as the working directory: it contains "\/proc".*--dangerously-allow-system-dirs/m,
      );
      assert.equal(await exists(`${probe.path}/made`), false);
      const allowed = await seamRun(
        ["run", "--dangerously-allow-system-dirs", "--", "sh", "-c", script],
        { cwd: "/", env },
      );
      assert.equal(allowed.code, 0, allowed.stderr);
      assert.match(allowed.stdout, /ran/);
      assert.doesNotMatch(allowed.stdout, /host-tmp-visible|host-proc-visible/);
    } finally {
      await Deno.remove(hostTmp);
    }
  },
});

/** A python3 one-liner that asks the bridge's SOCKS5 port for `host:80` and prints the reply code. */
function socksProbe(host: string): string {
  const py = [
    "import socket,sys",
    "s=socket.create_connection(('127.0.0.1',1080),5)",
    "s.sendall(b'\\x05\\x01\\x00'); s.recv(2)",
    // Built from its bytes, so that the name is not in the command line (which is logged as is).
    `h=bytes([${[...new TextEncoder().encode(host)].join(",")}])`,
    "s.sendall(b'\\x05\\x01\\x00\\x03'+bytes([len(h)])+h+b'\\x00\\x50')",
    "r=s.recv(10); print('socks-reply=%d' % r[1])",
  ].join("\n");
  return `python3 -c '${py.replaceAll("'", "'\\''")}'`;
}

for (const nobody of [false, true]) {
  const who = nobody ? "unprivileged" : "root";

  Deno.test({
    name:
      `decision log (${who}): the command cannot swap the log for a symlink, a planted one is refused, and a shell-ish host is never logged raw`,
    ignore: !READY || !hasProgram("/usr/bin/python3") || (nobody && !UNPRIVILEGED),
    async fn() {
      await using root = await visibleTempDir("sandbox-seams-log-");
      const cwd = `${root.path}/work`;
      const victimDir = `${root.path}/home`;
      const victim = `${victimDir}/.bashrc`;
      await Deno.mkdir(cwd);
      await Deno.mkdir(victimDir);
      await Deno.writeTextFile(victim, "# bashrc\n");
      if (nobody) await giveToNobody(root.path);
      const env = { PATH: "/usr/bin:/bin", HOME: victimDir };
      const run = (args: string[], script: string) =>
        seamRun(["run", ...args, "--", "sh", "-c", script], { cwd, env, nobody });
      const logged = ["--allow", "allowed.test", "--log", "decisions.jsonl"];
      // Run 1: a decision with a shell-ish name, then an attempt to swap the log for a symlink.
      const first = await run(
        logged,
        `${socksProbe("$(sh<x)")}; rm -f decisions.jsonl; ln -sf ${victim} decisions.jsonl; ` +
          `echo "swap:$?"; echo junk >> decisions.jsonl; echo "append:$?"`,
      );
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /socks-reply=2/); // refused: "not allowed by ruleset"
      assert.doesNotMatch(first.stdout, /swap:0/);
      assert.doesNotMatch(first.stdout, /append:0/);
      const info = await Deno.lstat(`${cwd}/decisions.jsonl`);
      assert.ok(info.isFile && !info.isSymlink);
      const log = await Deno.readTextFile(`${cwd}/decisions.jsonl`);
      const lines = log.trim().split("\n");
      assert.ok(!lines.includes("junk"), log);
      const hosts = lines.map((line) => JSON.parse(line).host);
      assert.deepEqual(hosts, ["%24%28sh%3Cx%29"]);
      assert.doesNotMatch(first.stderr, /\$\(sh<x\)/);
      // Run 2 (without --log): plant a symlink where a later run's log goes, and a symlinked dir.
      const second = await run(
        [],
        `ln -s ${victim} planted.jsonl && ln -s ${victimDir} logs && echo planted`,
      );
      assert.match(second.stdout, /planted/);
      // Runs 3 and 4: the launcher refuses to write through either.
      const third = await run(["--allow", "a.test", "--log", "planted.jsonl"], "echo third");
      assert.equal(third.code, 126, third.stdout + third.stderr);
      assert.match(third.stderr, /planted\.jsonl" is a symlink/);
      const fourth = await run(["--allow", "a.test", "--log", "logs/d.jsonl"], "echo fourth");
      assert.equal(fourth.code, 126, fourth.stdout + fourth.stderr);
      assert.match(
        fourth.stderr,
        /"[^"]*\/logs" is a symlink inside a directory the sandbox can write/,
      );
      assert.doesNotMatch(third.stdout + fourth.stdout, /third|fourth/);
      assert.equal(await Deno.readTextFile(victim), "# bashrc\n");
      assert.equal(await exists(`${victimDir}/d.jsonl`), false);
    },
  });

  Deno.test({
    name:
      `config (${who}): a profile in the working dir is read-only inside, so the command cannot widen the next run`,
    ignore: !READY || (nobody && !UNPRIVILEGED),
    async fn() {
      await using cwd = await visibleTempDir("sandbox-seams-config-");
      const profile = `${cwd.path}/sandbox.toml`;
      const text =
        'default_permissions = "t"\n[permissions.t.network.domains]\n"a.test" = "allow"\n';
      await Deno.mkdir(`${cwd.path}/conf`);
      const nested = `${cwd.path}/conf/extra.toml`;
      await Deno.writeTextFile(profile, text);
      await Deno.writeTextFile(nested, "");
      if (nobody) await giveToNobody(cwd.path);
      const env = { PATH: "/usr/bin:/bin", HOME: cwd.path };
      const result = await seamRun(
        [
          "run",
          "--config",
          "sandbox.toml",
          "--config",
          nested,
          "--",
          "sh",
          "-c",
          `printf '"*" = "allow"\\n' >> sandbox.toml; echo "append:$?"; ` +
          `mv conf conf2 2>/dev/null; echo "mv:$?"; printf 'x=1\\n' >> conf/extra.toml; ` +
          `rm -f sandbox.toml 2>/dev/null; echo "rm:$?"; touch other && echo cwd-writable`,
        ],
        { cwd: cwd.path, env, nobody },
      );
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /append:[1-9]/);
      assert.match(result.stdout, /mv:[1-9]/);
      assert.match(result.stdout, /rm:[1-9]/);
      assert.match(result.stdout, /cwd-writable/);
      assert.equal(await Deno.readTextFile(profile), text);
      assert.equal(await Deno.readTextFile(nested), "");
    },
  });

  Deno.test({
    name:
      `CA (${who}): the MITM CA's key cannot be read inside a --mitm run, in its directory or given by --ca-dir`,
    ignore: !READY || (nobody && !UNPRIVILEGED),
    async fn() {
      await using root = await visibleTempDir("sandbox-seams-ca-");
      const cwd = `${root.path}/work`;
      const home = `${root.path}/home`;
      await Deno.mkdir(cwd);
      await Deno.mkdir(home);
      if (nobody) await giveToNobody(root.path);
      // The default place (HOME/.config/sandbox/ca) and one inside the working dir.
      const env = { PATH: "/usr/bin:/bin", HOME: home, XDG_CONFIG_HOME: "" };
      for (const args of [["init"], ["init", "--ca-dir", `${cwd}/ca`]]) {
        const made = await seamRun(args, { cwd, env, nobody });
        assert.equal(made.code, 0, made.stderr);
      }
      const defaultKey = `${home}/.config/sandbox/ca/ca-key.pem`;
      assert.match(await Deno.readTextFile(defaultKey), /PRIVATE KEY/);
      for (const caDir of [null, `${cwd}/ca`]) {
        const key = caDir === null ? defaultKey : `${caDir}/ca-key.pem`;
        const script = `cat ${key} 2>&1; ls ${key.slice(0, key.lastIndexOf("/"))}; ` +
          `cat "$SSL_CERT_FILE" >/dev/null && echo bundle-readable`;
        const result = await seamRun(
          [
            "run",
            "--mode",
            "limited",
            "--mitm",
            "--allow",
            "a.test",
            ...(caDir === null ? [] : ["--ca-dir", caDir]),
            "--",
            "sh",
            "-c",
            script,
          ],
          { cwd, env, nobody },
        );
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, /bundle-readable/);
        assert.doesNotMatch(result.stdout, /PRIVATE KEY/);
      }
    },
  });
}

Deno.test({
  name:
    "installation: run from the launcher's own checkout, the command cannot write it (deno task sandbox run)",
  ignore: !READY,
  async fn() {
    const checkout = MAIN.slice(0, MAIN.lastIndexOf("/"));
    const probe = `${checkout}/.seams-probe-${crypto.randomUUID()}`;
    await using home = await visibleTempDir("sandbox-seams-home-");
    try {
      const result = await seamRun(
        [
          "run",
          "--",
          "sh",
          "-c",
          `touch ${probe}; echo "touch:$?"; echo x >> main.ts; echo "main:$?"`,
        ],
        { cwd: checkout, env: { PATH: "/usr/bin:/bin", HOME: home.path } },
      );
      assert.equal(result.code, 0, result.stderr);
      assert.doesNotMatch(result.stdout, /touch:0|main:0/);
      assert.equal(await exists(probe), false);
      assert.doesNotMatch(await Deno.readTextFile(MAIN), /\nx\n$/);
    } finally {
      await Deno.remove(probe).catch(() => {});
    }
  },
});

for (const nobody of [false, true]) {
  const who = nobody ? "unprivileged" : "root";

  Deno.test({
    name:
      `CI runner (${who}): GITHUB_ENV and the other runner files are read-only inside, runner tokens absent unless named`,
    ignore: !READY || (nobody && !UNPRIVILEGED),
    async fn() {
      await using cwd = await visibleTempDir("sandbox-seams-runner-");
      const runnerDir = `${cwd.path}/_temp/_runner_file_commands`;
      await Deno.mkdir(runnerDir, { recursive: true });
      const files: Record<string, string> = {};
      for (const name of ["GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_STATE"]) {
        files[name] = `${runnerDir}/${name.toLowerCase()}`;
        await Deno.writeTextFile(files[name], "");
      }
      files.GITHUB_STEP_SUMMARY = `${runnerDir}/step_summary`;
      await Deno.writeTextFile(files.GITHUB_STEP_SUMMARY, "");
      await Deno.writeTextFile(
        `${cwd.path}/allow-cache.toml`,
        'default_permissions = "t"\n[permissions.t.env]\nallow = ["PATH", "HOME", "ACTIONS_CACHE_URL"]\n',
      );
      if (nobody) await giveToNobody(cwd.path);
      const env = {
        PATH: "/usr/bin:/bin",
        HOME: cwd.path,
        GITHUB_ACTIONS: "true",
        ACTIONS_RUNTIME_TOKEN: "runtime-secret",
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: "oidc-secret",
        ACTIONS_ID_TOKEN_REQUEST_URL: "https://oidc.invalid/",
        ACTIONS_CACHE_URL: "https://cache.invalid/",
        ACTIONS_RESULTS_URL: "https://results.invalid/",
        ...files,
      };
      const script = Object.keys(files).map((name) =>
        // PW""NED: the launcher's own step summary quotes the command line.
        `echo PW""NED=1 >> "$${name}"; echo "${name}:$?"`
      ).join("; ") + "; env | grep '^ACTIONS_' | sort";
      const result = await seamRun(["run", "--", "sh", "-c", script], {
        cwd: cwd.path,
        env,
        nobody,
      });
      assert.equal(result.code, 0, result.stderr);
      for (const name of Object.keys(files)) {
        assert.doesNotMatch(result.stdout, new RegExp(`^${name}:0$`, "m"));
        assert.doesNotMatch(await Deno.readTextFile(files[name]), /PWNED/, name);
      }
      assert.doesNotMatch(result.stdout, /secret|invalid/);
      // The profile lets one through by name; the others stay out.
      const named = await seamRun(
        ["run", "--config", "allow-cache.toml", "--", "sh", "-c", "env | grep '^ACTIONS_' | sort"],
        { cwd: cwd.path, env, nobody },
      );
      assert.equal(named.code, 0, named.stderr);
      assert.equal(named.stdout, "ACTIONS_CACHE_URL=https://cache.invalid/\n");
    },
  });
}

Deno.test("system dirs: with cwd / allowed, the pins of a protected file under /tmp never bind the host's /tmp over the sandbox's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sandbox-seams-pin-" });
  try {
    await Deno.writeTextFile(`${dir}/c.toml`, "");
    const run = await sandboxCli(
      [
        "run",
        "--dangerously-allow-system-dirs",
        "--config",
        `${dir}/c.toml`,
        "--dry-run",
        "--json",
        "--",
        "true",
      ],
      { cwd: "/", timeoutMs: 60_000 },
    );
    assert.equal(run.code, 0, run.stderr);
    const argv: string[] = JSON.parse(run.stdout).argv;
    assert.ok(Array.isArray(argv), run.stdout.slice(0, 200));
    const binds = argv.flatMap((a, i) => a === "--bind-try" || a === "--bind" ? [argv[i + 1]] : []);
    const tmpfs = argv.indexOf("/tmp", argv.indexOf("--tmpfs"));
    assert.ok(tmpfs > 0, "the sandbox has its own /tmp");
    for (const source of binds) {
      assert.ok(
        source !== "/tmp" && !source.startsWith("/tmp/sandbox-seams-pin-"),
        `binds ${source}`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * `sandbox run --dry-run` prints the plan the real run uses: both come from
 * `prepareRun()`. This test runs both with execpolicy shims (`"curl *"` is
 * denied) and MITM on, reads the argv and environment of the real run's
 * bwrap from /proc while the command waits, and compares them with the dry
 * run's, the run dir's random name and the monitoring fds aside.
 */
import assert from "node:assert/strict";
import { MAIN, onPath, sandboxArgv, sandboxCli, tempDir } from "./cli_helpers.ts";
import { runDirBase } from "../sandbox/run_dir.ts";
import { childrenOf, eventually } from "./run_helpers.ts";

const LINUX = Deno.build.os === "linux" && onPath("bwrap") && onPath("curl");

const CONFIG = `
execpolicy_default = "allow-network"

[execpolicy]
"curl *" = { decision = "deny", justification = "Use the package mirror" }
`;

/** A child of `pid` whose argv runs bwrap (setsid -w execs it in place), with its environment. */
function bwrapOf(pid: number): { argv: string[]; env: Record<string, string> } | null {
  for (const child of childrenOf(pid)) {
    if (!/(^|\/)bwrap$/.test(child.argv[0] ?? "")) continue;
    try {
      const env: Record<string, string> = {};
      for (const line of Deno.readTextFileSync(`/proc/${child.pid}/environ`).split("\0")) {
        const eq = line.indexOf("=");
        if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
      }
      return { argv: [...child.argv], env };
    } catch {
      // Gone meanwhile.
    }
  }
  return null;
}

/** Drops bwrap's monitoring and seccomp fds (a real run has them, a plain argv does not). */
function withoutFds(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--json-status-fd" || argv[i] === "--block-fd" || argv[i] === "--seccomp") {
      i++;
      continue;
    }
    out.push(argv[i]);
  }
  return out;
}

Deno.test({
  name: "sandbox run: the dry run's bwrap argv is the argv the real run used (shims and MITM on)",
  ignore: !LINUX,
  async fn() {
    await using tmp = await tempDir();
    const configFile = `${tmp.path}/sandbox.toml`;
    await Deno.writeTextFile(configFile, CONFIG);
    const caDir = `${tmp.path}/ca`;
    const init = await sandboxCli(["init", "--ca-dir", caDir], { timeoutMs: 90_000 });
    assert.equal(init.code, 0, init.stderr);
    const flags = [
      "--config",
      configFile,
      "--mode",
      "limited",
      "--mitm",
      "--ca-dir",
      caDir,
      "--allow",
      "allowed.test",
    ];
    const command = ["sh", "-c", "echo started; read go"];
    const env = { HOME: tmp.path, XDG_CONFIG_HOME: `${tmp.path}/config` };

    const dry = await sandboxCli(["run", "--dry-run", "--json", ...flags, "--", ...command], {
      env,
      cwd: tmp.path,
    });
    assert.equal(dry.code, 0, dry.stderr);
    const planned = JSON.parse(dry.stdout) as {
      argv: string[];
      env: { set: Record<string, string>; inherited: string[] };
    };

    const [cmd, ...args] = sandboxArgv(["run", ...flags, "--", ...command]);
    assert.ok(cmd === Deno.execPath() && args.includes(MAIN));
    const child = new Deno.Command(cmd, {
      args,
      env,
      cwd: tmp.path,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdin = child.stdin.getWriter();
    let real: { argv: string[]; env: Record<string, string> } | null = null;
    let output: Deno.CommandOutput;
    try {
      real = await eventually("the bwrap of the real run", () => bwrapOf(child.pid), 60_000);
    } finally {
      await stdin.write(new TextEncoder().encode("go\n")).catch(() => {});
      await stdin.close().catch(() => {});
      output = await child.output();
    }
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));

    const runDir = /\/sandbox-run-[^/]+/.exec(real.argv.join("\n"))?.[0];
    assert.ok(runDir !== undefined, "the real argv names its run dir");
    const normalized = withoutFds(real.argv).map((arg, i) =>
      i === 0 ? "bwrap" : arg.replaceAll(runDir, "/sandbox-run-XXXXXX")
    );
    assert.ok(real.argv.includes("--seccomp"), "the real run hands bwrap the seccomp filter");
    assert.ok(
      withoutFds(real.argv).length < real.argv.length,
      "the real run passes bwrap its status fd",
    );
    // What the comparison is about: the shims and the CA bundle are in both.
    const binds = planned.argv.filter((_, i) => planned.argv[i - 1] === "--ro-bind");
    assert.ok(binds.some((a) => a.includes("/execpolicy/shims/")), "a shim bind in the dry run");
    assert.ok(binds.some((a) => a.endsWith("/mitm-ca-bundle.pem")), "the CA bundle in the dry run");
    assert.deepEqual(normalized, planned.argv);

    // The environment: the same names, and the values the launcher set are the same.
    const realEnv = Object.fromEntries(
      Object.entries(real.env).map((
        [k, v],
      ) => [k, v.replaceAll(runDir, "/sandbox-run-XXXXXX")]),
    );
    assert.deepEqual(
      Object.keys(realEnv).sort(),
      [...Object.keys(planned.env.set), ...planned.env.inherited].sort(),
    );
    for (const [name, value] of Object.entries(planned.env.set)) {
      assert.equal(realEnv[name], value, name);
    }
    assert.equal(
      realEnv.SSL_CERT_FILE,
      `${runDirBase(Deno.env.toObject(), Deno.uid() ?? 0)}/sandbox-run-XXXXXX/mitm-ca-bundle.pem`,
    );
  },
});

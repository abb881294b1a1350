import assert from "node:assert/strict";
import { SandboxError } from "../errors.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { buildSandboxPlan, collectHostFacts, type HostFacts } from "./build_plan.ts";
import { buildBwrapArgs } from "./bwrap_args.ts";
import type { SandboxPlan } from "./plan.ts";

/** A plan written by hand, as the macOS tests do: no `linux` field. */
function handBuilt(changes: Partial<SandboxPlan> = {}): SandboxPlan {
  return {
    argv: ["cat", "/home/u/.ssh/id_ed25519"],
    cwd: "/work/proj",
    env: { PATH: "/usr/bin:/bin" },
    network: { kind: "none" },
    unixSockets: { kind: "allowlist", paths: [] },
    writable: [],
    denyRead: ["/home/u/.ssh"],
    extraBinds: [],
    runDir: "/tmp/run-1",
    ...changes,
  };
}

const DEFAULT_CONFIG = await loadEffectiveConfig({}, { env: { HOME: "/nonexistent" }, cwd: "/" });

const HOST: HostFacts = {
  uid: 1000,
  socketPaths: ["/home/u/agent.sock", "/home/u/other.sock"],
  pathKinds: new Map([["/tmp", "dir"], ["/run", "dir"], ["/tmp/run-1", "dir"], [
    "/home/u/.ssh",
    "dir",
  ]]),
  allowedSockets: new Map([["/home/u/agent.sock", "/home/u/agent.sock"]]),
};

/** The same posture, built the way `sandbox run` builds it. */
function built(writable: string[] = []): SandboxPlan {
  return buildSandboxPlan(
    {
      ...DEFAULT_CONFIG,
      network: {
        ...DEFAULT_CONFIG.network,
        unixSockets: [{ path: "/home/u/agent.sock", action: "allow", source: "t" }],
      },
      filesystem: { writable, denyRead: ["/home/u/.ssh"] },
      env: { allow: null, deny: [] },
    },
    ["cat", "/home/u/.ssh/id_ed25519"],
    {
      cwd: "/work/proj",
      env: { PATH: "/usr/bin:/bin" },
      runDir: "/tmp/run-1",
      network: null,
      host: HOST,
    },
  );
}

function pairs(args: string[], flag: string): [string, string][] {
  return args.flatMap((
    a,
    i,
  ) => (a === flag ? [[args[i + 1], args[i + 2]] as [string, string]] : []));
}

Deno.test("buildBwrapArgs() refuses a hand-built plan without plan.linux instead of running it with looser defaults", () => {
  // The same posture with host facts hides ~/.ssh and masks the unlisted socket.
  const args = buildBwrapArgs(built());
  assert.ok(pairs(args, "--tmpfs").some(([dir]) => dir === "/home/u/.ssh"));
  assert.ok(
    pairs(args, "--ro-bind").some(([s, t]) => s === "/dev/null" && t === "/home/u/other.sock"),
  );
  // Without them there is nothing to hide ~/.ssh or mask sockets with: refused, never defaults.
  const plan = handBuilt();
  assert.throws(
    () => buildBwrapArgs(plan),
    (error: unknown) =>
      error instanceof SandboxError && error.code === "sandbox_failed" &&
      /plan\.linux/.test(error.message) && /buildSandboxPlan\(\)/.test(error.message),
  );
  assert.throws(() => buildBwrapArgs(handBuilt({ denyRead: [] })), SandboxError);
});

Deno.test("buildBwrapArgs() refuses plan.linux.socketBinds that bind a socket plan.unixSockets does not allow", () => {
  const plan = built();
  const linux = plan.linux!;
  // A hand-edited bind of an unlisted socket is refused...
  const looser = {
    ...plan,
    linux: {
      ...linux,
      socketBinds: [...linux.socketBinds, {
        source: "/home/u/other.sock",
        target: "/home/u/other.sock",
      }],
    },
  };
  assert.throws(
    () => buildBwrapArgs(looser),
    (error: unknown) =>
      error instanceof SandboxError && /plan\.linux\.socketBinds/.test(error.message) &&
      error.message.includes('"/home/u/other.sock"'),
  );
  // ...also when it is dressed up as the target of an allowlisted path.
  assert.throws(
    () =>
      buildBwrapArgs({
        ...plan,
        linux: {
          ...linux,
          socketBinds: [{ source: "/home/u/other.sock", target: "/x/other.sock" }],
        },
      }),
    SandboxError,
  );
  // An allowlisted symlink bound at its path and at its canonical path is what buildSandboxPlan writes.
  const canonical = {
    ...plan,
    unixSockets: { kind: "allowlist" as const, paths: ["/home/u/link.sock"] },
    linux: {
      ...linux,
      socketBinds: [
        { source: "/srv/real.sock", target: "/home/u/link.sock" },
        { source: "/srv/real.sock", target: "/srv/real.sock" },
      ],
    },
  };
  assert.deepEqual(pairs(buildBwrapArgs(canonical), "--bind").slice(1), [
    ["/srv/real.sock", "/home/u/link.sock"],
    ["/srv/real.sock", "/srv/real.sock"],
  ]);
  // With every socket allowed, any bind is fine.
  assert.ok(buildBwrapArgs({ ...looser, unixSockets: { kind: "all" } }).length > 0);
});

Deno.test("buildBwrapArgs() hides the run dir when a writable path would expose it", () => {
  const hidden = (plan: SandboxPlan) => pairs(buildBwrapArgs(plan), "--tmpfs").map(([dir]) => dir);
  // Under the emptied /tmp the run dir is already out of sight: no extra mount.
  assert.deepEqual(hidden(built()), ["/tmp", "/run", "/dev/shm", "/home/u/.ssh"]);
  // writable = ["/tmp"] binds the host's /tmp back, run dir included: it gets a tmpfs after the binds.
  const args = buildBwrapArgs(built(["/tmp"]));
  assert.deepEqual(pairs(args, "--tmpfs").map(([dir]) => dir), [
    "/tmp",
    "/run",
    "/dev/shm",
    "/home/u/.ssh",
    "/tmp/run-1",
  ]);
  assert.ok(args.indexOf("/tmp/run-1") > args.lastIndexOf("--bind-try"));
});

Deno.test({
  name: "buildBwrapArgs() under real bwrap: writable /tmp does not expose the run dir",
  ignore: (() => {
    try {
      return !Deno.statSync("/usr/bin/bwrap").isFile;
    } catch {
      return true;
    }
  })(),
  async fn() {
    const runDir = await Deno.makeTempDir({ dir: "/tmp", prefix: "bwrap-args-run-" });
    const cwd = await Deno.makeTempDir({ dir: "/tmp", prefix: "bwrap-args-cwd-" });
    try {
      await Deno.writeTextFile(`${runDir}/secret`, "launcher-only");
      const config = {
        ...DEFAULT_CONFIG,
        filesystem: { writable: ["/tmp"], denyRead: [] },
        env: { allow: null, deny: [] },
      };
      const env = { PATH: "/usr/bin:/bin" };
      const host = await collectHostFacts(config, { env, runDir });
      const script = `cat ${runDir}/secret 2>/dev/null || echo hidden; ` +
        `echo probe > ${runDir}/planted 2>/dev/null && echo wrote || echo no-write; ` +
        `test -d ${cwd} && echo cwd-visible`;
      const plan = buildSandboxPlan(config, ["sh", "-c", script], {
        cwd,
        env,
        runDir,
        network: null,
        host,
      });
      const out = await new Deno.Command("/usr/bin/bwrap", {
        args: buildBwrapArgs(plan),
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.match(text, /^hidden$/m);
      assert.match(text, /^cwd-visible$/m);
      // Whatever the command wrote there went to a tmpfs, not the launcher's run dir.
      assert.deepEqual([...Deno.readDirSync(runDir)].map((e) => e.name), ["secret"]);
    } finally {
      await Deno.remove(runDir, { recursive: true });
      await Deno.remove(cwd, { recursive: true });
    }
  },
});

Deno.test("buildBwrapArgs() hands bwrap the seccomp filter's descriptor before the command", () => {
  const args = buildBwrapArgs(built(), { fds: { jsonStatusFd: 5, blockFd: 6, seccompFd: 7 } });
  const at = args.indexOf("--seccomp");
  assert.ok(at > 0, "--seccomp is there");
  assert.equal(args[at + 1], "7");
  assert.ok(at < args.indexOf("--"), "before the command");
  const without = buildBwrapArgs(built(), { fds: { jsonStatusFd: 5, blockFd: null } });
  assert.ok(!without.includes("--seccomp"));
});

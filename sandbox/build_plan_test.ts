import assert from "node:assert/strict";
import type { EffectiveConfig } from "../profiles/types.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { buildSandboxPlan, type HostFacts, systemDirProblem } from "./build_plan.ts";
import { buildBwrapArgs } from "./bwrap_args.ts";

const DEFAULT_CONFIG = await loadEffectiveConfig({}, { env: { HOME: "/nonexistent" }, cwd: "/" });

function config(overrides: {
  unixSockets?: string[];
  allUnix?: boolean;
  writable?: string[];
  denyRead?: string[];
} = {}): EffectiveConfig {
  return {
    ...DEFAULT_CONFIG,
    network: {
      ...DEFAULT_CONFIG.network,
      dangerouslyAllowAllUnixSockets: overrides.allUnix ?? false,
      unixSockets: (overrides.unixSockets ?? []).map((path) => ({
        path,
        action: "allow",
        source: "test",
      })),
    },
    filesystem: { writable: overrides.writable ?? [], denyRead: overrides.denyRead ?? [] },
    env: { allow: null, deny: [] },
  };
}

const HOST: HostFacts = {
  uid: 1000,
  socketPaths: [
    "/run/dbus/system_bus_socket",
    "/tmp/.X11-unix/X0",
    "/home/u/.agent.sock",
    "/work/proj/dev.sock",
    "/tmp/run-1/proxy.sock",
    "/home/u/allowed.sock",
  ],
  pathKinds: new Map([
    ["/tmp", "dir"],
    ["/run", "dir"],
    ["/var/run", "symlink"],
    ["/tmp/run-1", "dir"],
    ["/run/user/1000", "dir"],
    ["/home/u/.ssh", "dir"],
    ["/home/u/.netrc", "file"],
  ]),
  allowedSockets: new Map([["/home/u/allowed.sock", "/home/u/allowed.sock"]]),
};

const BASE = {
  cwd: "/work/proj",
  env: { PATH: "/usr/bin", XDG_RUNTIME_DIR: "/run/user/1000", HOME: "/home/u" },
  runDir: "/tmp/run-1",
  host: HOST,
};

Deno.test("buildSandboxPlan() empties runtime dirs, masks visible sockets, binds allowlisted ones back", () => {
  const plan = buildSandboxPlan(config({ unixSockets: ["/home/u/allowed.sock"] }), ["curl", "x"], {
    ...BASE,
    network: { httpPort: 3128, socksPort: 1080, proxySocket: "/tmp/run-1/proxy.sock" },
  });
  assert.deepEqual(plan.linux, {
    unshareUser: true,
    emptyDirs: ["/tmp", "/run", "/dev/shm"],
    hiddenDirs: [],
    maskedFiles: ["/home/u/.agent.sock", "/work/proj/dev.sock"],
    socketBinds: [{ source: "/home/u/allowed.sock", target: "/home/u/allowed.sock" }],
  });
  assert.deepEqual(plan.network, {
    kind: "proxy",
    httpPort: 3128,
    socksPort: 1080,
    proxySocket: "/tmp/run-1/proxy.sock",
  });
  assert.equal(plan.env.HTTPS_PROXY, "http://127.0.0.1:3128");
  assert.deepEqual(plan.unixSockets, { kind: "allowlist", paths: ["/home/u/allowed.sock"] });
});

Deno.test("buildSandboxPlan() masks a socket under /tmp when a writable bind re-exposes it", () => {
  const plan = buildSandboxPlan(config(), ["true"], {
    ...BASE,
    cwd: "/tmp/.X11-unix",
    network: null,
  });
  assert.ok(plan.linux?.maskedFiles.includes("/tmp/.X11-unix/X0"));
  assert.ok(!plan.linux?.maskedFiles.includes("/tmp/run-1/proxy.sock"));
  assert.deepEqual(plan.network, { kind: "none" });
  assert.equal(plan.env.HTTP_PROXY, undefined);
});

Deno.test("buildSandboxPlan() hides denyRead dirs and files, and a run dir outside the emptied dirs", () => {
  const plan = buildSandboxPlan(
    config({ denyRead: ["/home/u/.ssh", "/home/u/.netrc", "/home/u/missing"] }),
    ["true"],
    { ...BASE, runDir: "/var/lib/run-1", network: null },
  );
  assert.deepEqual(plan.linux?.hiddenDirs, ["/home/u/.ssh", "/var/lib/run-1"]);
  assert.deepEqual(plan.linux?.maskedFiles.slice(0, 1), ["/home/u/.netrc"]);
});

Deno.test("buildSandboxPlan() with dangerously_allow_all_unix_sockets binds hidden sockets back and masks none", () => {
  const plan = buildSandboxPlan(config({ allUnix: true }), ["true"], { ...BASE, network: null });
  assert.deepEqual(plan.unixSockets, { kind: "all" });
  assert.deepEqual(plan.linux?.maskedFiles, []);
  assert.deepEqual(plan.linux?.socketBinds, [
    { source: "/run/dbus/system_bus_socket", target: "/run/dbus/system_bus_socket" },
    { source: "/tmp/.X11-unix/X0", target: "/tmp/.X11-unix/X0" },
  ]);
});

Deno.test("buildBwrapArgs() pins the exact argv for a plan", () => {
  const plan = buildSandboxPlan(
    config({ unixSockets: ["/home/u/allowed.sock"], writable: ["/cache"] }),
    [
      "npm",
      "ci",
    ],
    {
      ...BASE,
      network: { httpPort: 3128, socksPort: 1080, proxySocket: "/tmp/run-1/proxy.sock" },
      extraBinds: [{ source: "/tmp/run-1/shims/git", target: "/usr/bin/git" }],
    },
  );
  assert.deepEqual(buildBwrapArgs(plan, { fds: { jsonStatusFd: 3, blockFd: 4 } }), [
    "--unshare-user",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-net",
    "--unshare-uts",
    "--unshare-cgroup-try",
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
    "--tmpfs",
    "/tmp",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/dev/shm",
    "--bind",
    "/work/proj",
    "/work/proj",
    "--bind-try",
    "/cache",
    "/cache",
    "--ro-bind",
    "/dev/null",
    "/home/u/.agent.sock",
    "--ro-bind",
    "/dev/null",
    "/work/proj/dev.sock",
    "--bind",
    "/home/u/allowed.sock",
    "/home/u/allowed.sock",
    "--ro-bind",
    "/tmp/run-1/shims/git",
    "/usr/bin/git",
    "--json-status-fd",
    "3",
    "--block-fd",
    "4",
    "--chdir",
    "/work/proj",
    "--",
    "npm",
    "ci",
  ]);
});

Deno.test("buildBwrapArgs() keeps an argument that looks like an option after --", () => {
  const plan = buildSandboxPlan(config(), ["--help", "--ro-bind"], { ...BASE, network: null });
  const args = buildBwrapArgs(plan);
  assert.deepEqual(args.slice(args.indexOf("--")), ["--", "--help", "--ro-bind"]);
  assert.ok(!args.includes("--json-status-fd"));
});

Deno.test("buildSandboxPlan() hides the whole per-user run-dir base when the working dir shows it", () => {
  const plan = buildSandboxPlan(config({}), ["true"], {
    ...BASE,
    cwd: "/tmp",
    runDir: "/tmp/sandbox-1000/sandbox-run-abc",
    network: null,
  });
  assert.ok(plan.linux?.hiddenDirs.includes("/tmp/sandbox-1000"));
});

Deno.test("systemDirProblem() refuses / and parents of the sandbox's own mounts, not projects", () => {
  assert.equal(systemDirProblem("/"), 'it contains "/proc"');
  assert.equal(systemDirProblem("/var"), 'it contains "/var/run"');
  assert.equal(systemDirProblem("/etc"), 'it is "/etc"');
  assert.equal(systemDirProblem("/proc/self"), 'it lies in "/proc"');
  for (const ok of ["/tmp", "/tmp/x", "/usr/src/app", "/home/u/project", "/run/user/1000/x"]) {
    assert.equal(systemDirProblem(ok), null, ok);
  }
});

Deno.test("buildSandboxPlan() refuses cwd / unless dangerously allowed, then keeps its own mounts on top", () => {
  assert.throws(
    () => buildSandboxPlan(config({}), ["true"], { ...BASE, cwd: "/", network: null }),
    (error: Error & { code?: string }) =>
      error.code === "usage" &&
      error.message.startsWith('Cannot use "/" as the working directory: it contains "/proc"') &&
      error.message.includes("--dangerously-allow-system-dirs"),
  );
  assert.throws(
    () => buildSandboxPlan(config({ writable: ["/var"] }), ["true"], { ...BASE, network: null }),
    /Cannot use "\/var" as the writable path: it contains "\/var\/run"/,
  );
  const plan = buildSandboxPlan(config({}), ["true"], {
    ...BASE,
    cwd: "/",
    network: null,
    dangerouslyAllowSystemDirs: true,
  });
  const args = buildBwrapArgs(plan);
  const at = (...pair: string[]) =>
    args.findIndex((_a, i) => pair.every((p, j) => args[i + j] === p));
  assert.ok(at("--bind", "/", "/") !== -1);
  assert.ok(at("--bind", "/", "/") < at("--proc", "/proc"));
  assert.ok(at("--bind", "/", "/") < at("--dev", "/dev"));
  assert.ok(at("--bind", "/", "/") < at("--tmpfs", "/tmp"));
});

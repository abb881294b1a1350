/**
 * The Linux argv and the macOS profile come from the same plan object: one
 * `buildSandboxPlan()` result goes into both `buildBwrapArgs()` and
 * `renderSeatbeltProfile()` / `buildSandboxExecArgv()`, and changing one
 * field of the configuration (a writable path, an allowlisted socket, a
 * hidden path, the proxy ports) changes both outputs in the same way.
 *
 * Each output is reduced to a small "view" (which paths are writable, which
 * sockets reachable, which paths hidden, which proxy ports usable) read back
 * from the argv or the profile text and its parameters, and the two views
 * are compared.
 */
import assert from "node:assert/strict";
import type { EffectiveConfig } from "../profiles/types.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { buildSandboxPlan, type HostFacts, type PlanNetwork } from "../sandbox/build_plan.ts";
import { buildBwrapArgs } from "../sandbox/bwrap_args.ts";
import { buildSandboxExecArgv } from "../sandbox/macos.ts";
import type { SandboxPlan } from "../sandbox/plan.ts";
import { renderSeatbeltProfile } from "../sandbox/seatbelt.ts";
import { checkSeatbeltProfile } from "../sandbox/seatbelt_check.ts";

const DEFAULT_CONFIG = await loadEffectiveConfig({}, { env: { HOME: "/nonexistent" }, cwd: "/" });

interface Change {
  writable?: string[];
  denyRead?: string[];
  sockets?: string[];
  allUnix?: boolean;
  network?: PlanNetwork | null;
}

const HOST_SOCKETS = ["/home/u/.docker.sock", "/home/u/agent.sock"];

/** One plan, built the way `sandbox run` builds it, from a config and fixed host facts. */
function planFor(change: Change = {}): SandboxPlan {
  const config: EffectiveConfig = {
    ...DEFAULT_CONFIG,
    network: {
      ...DEFAULT_CONFIG.network,
      dangerouslyAllowAllUnixSockets: change.allUnix ?? false,
      unixSockets: (change.sockets ?? []).map((path) => ({ path, action: "allow", source: "t" })),
    },
    filesystem: { writable: change.writable ?? [], denyRead: change.denyRead ?? [] },
    env: { allow: null, deny: [] },
  };
  const host: HostFacts = {
    uid: 1000,
    socketPaths: HOST_SOCKETS,
    pathKinds: new Map([
      ["/tmp", "dir"],
      ["/run", "dir"],
      ["/tmp/run-1", "dir"],
      ["/home/u/.ssh", "dir"],
      ["/home/u/.aws", "dir"],
    ]),
    allowedSockets: new Map((change.sockets ?? []).map((path) => [path, path])),
  };
  return buildSandboxPlan(config, ["npm", "ci"], {
    cwd: "/work/proj",
    env: { PATH: "/usr/bin:/bin", HOME: "/home/u" },
    runDir: "/tmp/run-1",
    network: change.network === undefined
      ? { httpPort: 3128, socksPort: 1080, proxySocket: "/tmp/run-1/proxy.sock" }
      : change.network,
    host,
  });
}

interface View {
  writable: string[];
  sockets: string[] | "all";
  hidden: string[];
  ports: number[];
}

/** What the bwrap argv grants. Ports live in the plan's env (the bridge listens on them). */
function linuxView(plan: SandboxPlan): View {
  const args = buildBwrapArgs(plan);
  const pairs = (flag: string) =>
    args.flatMap((a, i) => (a === flag ? [[args[i + 1], args[i + 2]] as const] : []));
  const single = (flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]] : []));
  const proxy = plan.env.HTTP_PROXY;
  const all = proxy === undefined ? "" : `${proxy} ${plan.env.ALL_PROXY}`;
  // A host socket is cut off by a read-only /dev/null over it; an allowlisted one is bound back.
  const masked = new Set(
    pairs("--ro-bind").filter(([source]) => source === "/dev/null").map(([, target]) => target),
  );
  const bound = new Set(pairs("--bind").map(([, target]) => target));
  const reachable = HOST_SOCKETS.filter((s) => !masked.has(s));
  if (reachable.length < HOST_SOCKETS.length) {
    for (const s of reachable) assert.ok(bound.has(s), `${s} is bound back`);
  }
  const emptied = new Set(plan.linux?.emptyDirs ?? []);
  return {
    writable: pairs("--bind-try").map(([source]) => source),
    // Every host socket reachable (none of them masked) is the "all" posture.
    sockets: reachable.length === HOST_SOCKETS.length ? "all" : reachable,
    hidden: single("--tmpfs").filter((d) => !emptied.has(d) && d !== plan.runDir),
    ports: [...all.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1])),
  };
}

/** What the Seatbelt profile grants, read from its text and its parameters. */
function macosView(plan: SandboxPlan): View {
  const { profile, params } = renderSeatbeltProfile(plan);
  assert.deepEqual(checkSeatbeltProfile(profile, params), []);
  const named = (prefix: string) =>
    Object.entries(params)
      .filter(([k]) => k.startsWith(prefix) && !k.endsWith("_ALIAS"))
      .map(([k, v]) => {
        assert.ok(profile.includes(`(param "${k}")`), `${k} is referenced`);
        return v;
      });
  return {
    writable: named("WRITABLE_"),
    sockets: profile.includes('(remote unix-socket (path-regex #"^/"))')
      ? "all"
      : named("UNIX_SOCKET_"),
    hidden: named("DENY_READ_"),
    ports: [...profile.matchAll(/\(remote ip "localhost:(\d+)"\)/g)].map((m) => Number(m[1])),
  };
}

function assertSameView(plan: SandboxPlan): View {
  const linux = linuxView(plan);
  const macos = macosView(plan);
  assert.deepEqual(macos, linux);
  return linux;
}

Deno.test("platform plan: one plan object drives both the bwrap argv and the Seatbelt profile", () => {
  const plan = planFor({
    writable: ["/home/u/.npm"],
    denyRead: ["/home/u/.ssh"],
    sockets: ["/home/u/agent.sock"],
  });
  const view = assertSameView(plan);
  assert.deepEqual(view, {
    writable: ["/home/u/.npm"],
    sockets: ["/home/u/agent.sock"],
    hidden: ["/home/u/.ssh"],
    ports: [3128, 1080],
  });
  // Both launch exactly the plan's argv, in the plan's cwd.
  const bwrap = buildBwrapArgs(plan);
  const seatbelt = buildSandboxExecArgv(plan);
  assert.deepEqual(bwrap.slice(bwrap.indexOf("--") + 1), [...plan.argv]);
  assert.deepEqual(seatbelt.slice(seatbelt.indexOf("--") + 1), [...plan.argv]);
  assert.equal(bwrap[bwrap.indexOf("--chdir") + 1], plan.cwd);
  assert.ok(seatbelt.includes(`-DCWD=${plan.cwd}`));
});

Deno.test("platform plan: adding a writable path changes both outputs the same way", () => {
  const before = assertSameView(planFor({ writable: ["/home/u/.npm"] }));
  const after = assertSameView(planFor({ writable: ["/home/u/.npm", "/data/cache dir"] }));
  assert.deepEqual(before.writable, ["/home/u/.npm"]);
  assert.deepEqual(after.writable, ["/home/u/.npm", "/data/cache dir"]);
});

Deno.test("platform plan: allowlisting a unix socket changes both outputs the same way", () => {
  const none = assertSameView(planFor());
  const one = assertSameView(planFor({ sockets: ["/home/u/.docker.sock"] }));
  const all = assertSameView(planFor({ allUnix: true }));
  assert.deepEqual(none.sockets, []);
  assert.deepEqual(one.sockets, ["/home/u/.docker.sock"]);
  assert.equal(all.sockets, "all");
});

Deno.test("platform plan: hiding a path changes both outputs the same way", () => {
  assert.deepEqual(assertSameView(planFor()).hidden, []);
  assert.deepEqual(assertSameView(planFor({ denyRead: ["/home/u/.aws"] })).hidden, [
    "/home/u/.aws",
  ]);
});

Deno.test("platform plan: the proxy ports, or no network, reach both outputs", () => {
  const ports = assertSameView(
    planFor({ network: { httpPort: 40001, socksPort: 40002, proxySocket: "/tmp/run-1/p.sock" } }),
  );
  assert.deepEqual(ports.ports, [40001, 40002]);
  const offline = planFor({ network: null });
  assert.deepEqual(assertSameView(offline).ports, []);
  assert.ok(buildBwrapArgs(offline).includes("--unshare-net"));
  assert.ok(!renderSeatbeltProfile(offline).profile.includes("(remote ip"));
});

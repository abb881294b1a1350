/**
 * `buildSandboxPlan()`: turns the effective config, the command and a few
 * facts about the host into the platform-neutral {@linkcode SandboxPlan}.
 * The facts are gathered first by {@linkcode collectHostFacts} (the only
 * I/O here), so the builder itself is pure and tested on exact values.
 *
 * @module
 */
import { SandboxError, UsageError } from "../errors.ts";
import type { EffectiveConfig } from "../profiles/types.ts";
import { buildChildEnv, filterEnv, type ProxyPorts } from "./env.ts";
import type { CapturePlan, LinuxPlanDetails, SandboxPlan } from "./plan.ts";
import { hostToolHomeFacts, planToolHomes, type ToolHome } from "./tool_homes.ts";
import { isUnder, listHostSocketPaths, resolveSocketPath } from "./unix_sockets.ts";
import { expandDenyGlobs } from "./glob_expand.ts";

/** What a path is on the host, for the paths the plan needs to know about. */
export type PathKind = "dir" | "file" | "symlink" | "missing";

/** Facts about the host the plan depends on. */
export interface HostFacts {
  /** The launcher's uid (0 = root). */
  readonly uid: number;
  /** Bound pathname sockets that are socket files in the launcher's view. */
  readonly socketPaths: readonly string[];
  /** Kind of each candidate runtime dir, `denyRead` path and the run dir (`lstat`, symlinks not followed). */
  readonly pathKinds: ReadonlyMap<string, PathKind>;
  /** Allowlisted socket path -> canonical path, for those that exist and are sockets now. */
  readonly allowedSockets: ReadonlyMap<string, string>;
  /**
   * `denyRead` paths that are symlinks -> their canonical path, with its kind
   * in `pathKinds` (bwrap cannot mount on a symlink; a mount on its target
   * hides both names).
   */
  readonly denyReadTargets?: ReadonlyMap<string, string>;
  /** The tool homes of the run (see `sandbox/tool_homes.ts`); none when absent. */
  readonly toolHomes?: readonly ToolHome[];
  /** Paths that matched a deny glob when the run started (their kinds are in `pathKinds`). */
  readonly globMatches?: readonly string[];
}

/** The file view the config asks for once the working directory is known. */
export interface ResolvedPaths {
  /** Whether the working directory is writable. */
  readonly cwdWritable: boolean;
  /** Writable paths besides the working directory. */
  readonly writable: readonly string[];
  /** Hidden paths (without glob matches). */
  readonly denyRead: readonly string[];
  /** Read-only carve-outs inside writable areas. */
  readonly readOnly: readonly string[];
  /** Absolute deny globs to expand. */
  readonly denyGlobs: readonly string[];
}

/**
 * Applies the workspace rules of `config.filesystem` (Codex's
 * `:workspace_roots` entries) to the working directory and each extra
 * workspace root. Pure.
 *
 * @example
 * ```ts
 * resolvePaths(config, "/work/app").denyGlobs; // ["/work/app/**\/*.env"] for "**\/*.env" = "deny"
 * ```
 */
export function resolvePaths(config: EffectiveConfig, cwd: string): ResolvedPaths {
  const fs = config.filesystem;
  const workspace = fs.workspace ?? { writable: true, roots: [], rules: [] };
  const writable = [...fs.writable];
  const denyRead = [...fs.denyRead];
  const readOnly = [...(fs.readOnly ?? [])];
  const denyGlobs = [...(fs.denyGlobs ?? [])];
  const add = (list: string[], path: string) => {
    if (!list.includes(path)) list.push(path);
  };
  const roots = [cwd, ...workspace.roots.filter((root) => root !== cwd)];
  for (const root of roots) {
    if (root !== cwd && workspace.writable) add(writable, root);
    for (const rule of workspace.rules) {
      const path = `${root.replace(/\/$/, "")}/${rule.subpath}`;
      if (rule.access === "deny") add(rule.glob ? denyGlobs : denyRead, path);
      else if (rule.access === "write") add(writable, path);
      else add(readOnly, path);
    }
  }
  return { cwdWritable: workspace.writable, writable, denyRead, readOnly, denyGlobs };
}

/** Options for {@linkcode collectHostFacts}. */
export interface CollectHostFactsOptions {
  /** The launcher's environment (for `XDG_RUNTIME_DIR`). */
  readonly env: Readonly<Record<string, string>>;
  /** The run's private dir. */
  readonly runDir: string;
  /** Where to read the socket table (default `/proc/net/unix`). */
  readonly procNetUnix?: string;
  /** The command's working directory (default `Deno.cwd()`): workspace rules apply under it. */
  readonly cwd?: string;
}

/**
 * System directories a working dir or writable path must not be, nor
 * contain: the sandbox mounts its own `/proc`, `/dev`, `/tmp` and `/run`
 * (a bind of `/` would cover them with the host's: host processes, the
 * host's /tmp), and the host's programs and configuration must not become
 * writable. `/proc`, `/dev` and `/sys` are refused below too; `/tmp` itself
 * (but not a parent of it) stays allowed, and so does a project under
 * `/usr` (`/usr/src/app`).
 */
export const SYSTEM_DIRS: readonly string[] = Object.freeze([
  "/proc",
  "/dev",
  "/sys",
  "/tmp",
  "/run",
  "/var/run",
  "/etc",
  "/usr",
  "/bin",
  "/sbin",
  "/lib",
  "/lib64",
  "/boot",
]);

/** The flag of `sandbox run` that lets a working dir or writable path cover a system directory. */
export const ALLOW_SYSTEM_DIRS_FLAG = "--dangerously-allow-system-dirs";

/**
 * Why `path` may not be the working dir or a writable path (see
 * {@linkcode SYSTEM_DIRS}), or null when it may.
 *
 * @example
 * ```ts
 * systemDirProblem("/"); // 'it contains "/proc"'
 * systemDirProblem("/usr/src/app"); // null
 * ```
 */
export function systemDirProblem(path: string): string | null {
  for (const dir of SYSTEM_DIRS) {
    const contains = path !== dir && isUnder(dir, path);
    if (contains) return `it contains "${dir}"`;
    if (path === dir && dir !== "/tmp") return `it is "${dir}"`;
    if (["/proc", "/dev", "/sys"].includes(dir) && isUnder(path, dir)) return `it lies in "${dir}"`;
  }
  return null;
}

/** Directories that hold sockets on a typical host and get an empty tmpfs in the sandbox. */
export const RUNTIME_DIRS: readonly string[] = Object.freeze(["/tmp", "/run", "/var/run"]);

/**
 * Reads what {@linkcode buildSandboxPlan} needs to know about the host:
 * which runtime dirs exist, which sockets are bound, which allowlisted
 * sockets resolve to what.
 *
 * @example
 * ```ts
 * const host = await collectHostFacts(config, { env: Deno.env.toObject(), runDir });
 * ```
 */
export async function collectHostFacts(
  config: EffectiveConfig,
  options: CollectHostFactsOptions,
): Promise<HostFacts> {
  const candidates = new Set<string>([...RUNTIME_DIRS, options.runDir]);
  const xdg = options.env.XDG_RUNTIME_DIR;
  if (xdg !== undefined && xdg.startsWith("/")) candidates.add(xdg);
  const paths = resolvePaths(config, options.cwd ?? Deno.cwd());
  const globMatches = expandDenyGlobs(paths.denyGlobs, {
    maxDepth: config.filesystem.globScanMaxDepth ?? null,
  });
  const denied = [...paths.denyRead, ...globMatches];
  for (const path of denied) candidates.add(path);
  const kinds = new Map<string, PathKind>();
  for (const path of candidates) kinds.set(path, pathKind(path));
  const targets = new Map<string, string>();
  for (const path of denied) {
    if (kinds.get(path) !== "symlink") continue;
    try {
      const canonical = Deno.realPathSync(path);
      targets.set(path, canonical);
      kinds.set(canonical, pathKind(canonical));
    } catch {
      // Dangling: nothing to hide (bwrap would fail on it, so leave it out).
      kinds.set(path, "missing");
    }
  }
  const allowed = new Map<string, string>();
  await Promise.all(
    allowedSocketRules(config).map(async (path) => {
      const resolved = await resolveSocketPath(path);
      if (resolved.kind === "socket") allowed.set(path, resolved.canonical);
    }),
  );
  return {
    uid: Deno.uid() ?? 0,
    socketPaths: await listHostSocketPaths({ procNetUnix: options.procNetUnix }),
    pathKinds: kinds,
    allowedSockets: allowed,
    denyReadTargets: targets,
    toolHomes: planToolHomes(options.env, {
      ...hostToolHomeFacts(filterEnv(options.env, config.env).PATH),
      writable: config.filesystem.writable,
    }),
    globMatches,
  };
}

/**
 * Refuses a run whose `filesystem.writable` path goes through a symlink in
 * a place an earlier sandboxed command could write (the working dir or
 * another writable path): bwrap follows it, so the command could have made
 * any directory writable for this run (`mv sub x; mkdir sub; ln -s ../../home
 * sub/cache`). A symlink outside those places is the user's own and is
 * followed.
 *
 * Also refuses an allowlisted unix socket that lies, as written or where its
 * symlinks lead, in such a place: the command could replace it, or a
 * directory on its way, with a symlink to another host socket, and the
 * next run would bind that one into its view (and the proxy's
 * `x-unix-socket` would reach it). An allowlisted socket must be opened by
 * a path whose directories the command cannot change.
 *
 * Throws {@linkcode SandboxError} (`sandbox_failed`).
 *
 * @example
 * ```ts
 * checkPlantedSymlinks(config, { cwd: Deno.cwd() });
 * ```
 */
export function checkPlantedSymlinks(
  config: EffectiveConfig,
  options: { readonly cwd: string },
): void {
  const areas = [options.cwd, ...config.filesystem.writable];
  for (const path of config.filesystem.writable) {
    const prefix = plantedSymlink(path, areas);
    if (prefix === null) continue;
    throw new SandboxError(
      "sandbox_failed",
      `Cannot make "${path}" writable: "${prefix}" is a symlink inside a directory the sandbox ` +
        "can write, so an earlier command may have planted it: remove it, or list the real " +
        "directory in filesystem.writable",
    );
  }
  if (config.network.dangerouslyAllowAllUnixSockets) return;
  for (const path of allowedSocketRules(config)) {
    let canonical: string | null = null;
    try {
      canonical = Deno.realPathSync(path);
    } catch {
      // Missing now: only the path as written can be checked (and a planted one would be found).
    }
    for (const candidate of canonical === null ? [path] : [path, canonical]) {
      const area = areas.find((dir) => isUnder(candidate, dir));
      if (area === undefined) continue;
      throw new SandboxError(
        "sandbox_failed",
        `Cannot allow the unix socket "${path}": ` +
          (candidate === path ? "it lies" : `it leads to "${candidate}", which lies`) +
          ` in "${area}", which the sandboxed command can write, so an earlier command may have ` +
          "replaced it (or a directory on its way) with a symlink to another socket: allowlist " +
          "a socket outside the working directory and the writable paths",
      );
    }
  }
}

/**
 * The first component of `path` (itself included) that is a symlink and
 * lies strictly inside one of `areas` (directories a sandboxed command can
 * write), or null. Such a symlink may have been planted by an earlier run.
 *
 * @example
 * ```ts
 * plantedSymlink("/w/logs/decisions.jsonl", ["/w"]); // "/w/logs" when /w/logs is a symlink
 * ```
 */
export function plantedSymlink(path: string, areas: readonly string[]): string | null {
  const parts = path.split("/").filter((part) => part !== "");
  for (let i = 1; i <= parts.length; i++) {
    const prefix = `/${parts.slice(0, i).join("/")}`;
    if (!areas.some((area) => prefix !== area && isUnder(prefix, area))) continue;
    if (pathKind(prefix) === "symlink") return prefix;
  }
  return null;
}

/** The allowlisted socket paths after merging the config's rules in order. */
export function allowedSocketRules(config: EffectiveConfig): string[] {
  const allowed = new Set<string>();
  for (const rule of config.network.unixSockets) {
    if (rule.action === "allow") allowed.add(rule.path);
    else allowed.delete(rule.path);
  }
  return [...allowed];
}

/** Network of the plan: null for none, or the bridge ports and the proxy's unix socket. */
export interface PlanNetwork extends ProxyPorts {
  /** The proxy's unix socket on the host. */
  readonly proxySocket: string;
  /** Transparent capture, or null/absent: off. */
  readonly capture?: CapturePlan | null;
}

/** Options for {@linkcode buildSandboxPlan}. */
export interface BuildSandboxPlanOptions {
  /** Working directory, absolute. */
  readonly cwd: string;
  /** The launcher's environment, before filtering. */
  readonly env: Readonly<Record<string, string>>;
  /** The run's private dir on the host. */
  readonly runDir: string;
  /** The bridge ports and proxy socket, or null when the command gets no network. */
  readonly network: PlanNetwork | null;
  /** Facts from {@linkcode collectHostFacts}. */
  readonly host: HostFacts;
  /** Read-only binds added on top (execpolicy shims). */
  readonly extraBinds?: readonly { readonly source: string; readonly target: string }[];
  /** Host paths kept readable under emptied dirs (see {@linkcode SandboxPlan.readOnly}). */
  readonly readOnly?: readonly string[];
  /** Variables added to the command's environment last (MITM trust, caller extras). */
  readonly extraEnv?: Readonly<Record<string, string>>;
  /**
   * Host paths the launcher reads for policy or writes (config files, the
   * decision log, CI runner files, its own installation): each one that a
   * writable area (the working dir, a writable path, a tool home) covers is
   * bound read-only onto itself (see {@linkcode SandboxPlan.protect}).
   * Absolute and canonical; missing ones are left out by the caller.
   */
  readonly protect?: readonly string[];
  /**
   * Let the working dir or a writable path be or contain a system directory
   * ({@linkcode SYSTEM_DIRS}); `--dangerously-allow-system-dirs`. The
   * sandbox's own /dev, /proc and emptied dirs are still mounted over it.
   */
  readonly dangerouslyAllowSystemDirs?: boolean;
}

/**
 * Builds the plan for one run. Pure: everything it needs comes in through
 * its arguments.
 *
 * @example
 * ```ts
 * const host = await collectHostFacts(config, { env, runDir });
 * const plan = buildSandboxPlan(config, ["npm", "ci"], { cwd, env, runDir, network: null, host });
 * const argv = ["bwrap", ...buildBwrapArgs(plan)];
 * ```
 */
export function buildSandboxPlan(
  config: EffectiveConfig,
  argv: readonly string[],
  options: BuildSandboxPlanOptions,
): SandboxPlan {
  const { host, cwd, runDir } = options;
  if (options.dangerouslyAllowSystemDirs !== true) checkSystemDirs(cwd, config.filesystem.writable);
  const isDir = (path: string) => host.pathKinds.get(path) === "dir";
  const allUnix = config.network.dangerouslyAllowAllUnixSockets;

  const emptyDirs: string[] = [];
  for (const dir of RUNTIME_DIRS) if (isDir(dir)) emptyDirs.push(dir);
  emptyDirs.push("/dev/shm");
  const xdg = options.env.XDG_RUNTIME_DIR;
  if (xdg !== undefined && isDir(xdg) && !emptyDirs.some((dir) => isUnder(xdg, dir))) {
    emptyDirs.push(xdg);
  }

  const paths = resolvePaths(config, cwd);
  const denyRead = [...paths.denyRead];
  for (const match of host.globMatches ?? []) if (!denyRead.includes(match)) denyRead.push(match);
  const hiddenDirs: string[] = [];
  const maskedFiles: string[] = [];
  for (const written of denyRead) {
    const path = host.denyReadTargets?.get(written) ?? written;
    const kind = host.pathKinds.get(path);
    if (kind === "dir") hiddenDirs.push(path);
    else if (kind === "file" || kind === "symlink") maskedFiles.push(path);
  }
  const exposedRunDir = [cwd, ...config.filesystem.writable].some((dir) => isUnder(runDir, dir));
  if (!emptyDirs.some((dir) => isUnder(runDir, dir)) || exposedRunDir) {
    // The whole per-user parent when it can go: the command then cannot plant anything among
    // the run dirs (a FIFO as an owner file, a fake run dir) that a later run's sweep meets.
    const base = runDir.slice(0, runDir.lastIndexOf("/"));
    const wholeBase = /\/sandbox(-[0-9]+)?$/.test(base) &&
      ![cwd, ...config.filesystem.writable].some((dir) => isUnder(dir, base));
    hiddenDirs.push(wholeBase ? base : runDir);
  }

  const writable = [...paths.writable];
  const freshDirs = ["/dev", "/proc"];
  const visible = (path: string) =>
    !freshDirs.some((dir) => isUnder(path, dir)) &&
    !hiddenDirs.some((dir) => isUnder(path, dir)) &&
    ([cwd, ...writable].some((dir) => isUnder(path, dir)) ||
      !emptyDirs.some((dir) => isUnder(path, dir)));

  const socketBinds: { source: string; target: string }[] = [];
  if (allUnix) {
    // Every socket stays reachable: those hidden by the emptied dirs come back by bind.
    for (const path of host.socketPaths) {
      if (isUnder(path, runDir) || visible(path)) continue;
      if (freshDirs.some((dir) => isUnder(path, dir))) continue;
      socketBinds.push({ source: path, target: path });
    }
  } else {
    const allowedTargets = new Set<string>();
    for (const [path, canonical] of host.allowedSockets) {
      socketBinds.push({ source: canonical, target: path });
      allowedTargets.add(path);
      if (canonical !== path) {
        socketBinds.push({ source: canonical, target: canonical });
        allowedTargets.add(canonical);
      }
    }
    for (const path of host.socketPaths) {
      if (allowedTargets.has(path) || !visible(path)) continue;
      maskedFiles.push(path);
    }
  }

  const linux: LinuxPlanDetails = {
    // Also as root: a user namespace keeps a setuid binary or a regained
    // capability inside the sandbox from reaching the host's mounts.
    unshareUser: true,
    emptyDirs,
    hiddenDirs,
    maskedFiles,
    socketBinds,
    ...(config.network.strictUnixSockets === true ? { strictUnixSockets: true } : {}),
  };
  const network = options.network;
  return {
    argv: [...argv],
    cwd,
    env: buildChildEnv(options.env, {
      rules: config.env,
      ports: network,
      extraEnv: options.extraEnv,
    }),
    network: network === null ? { kind: "none" } : {
      kind: "proxy",
      httpPort: network.httpPort,
      socksPort: network.socksPort,
      proxySocket: network.proxySocket,
      ...(network.capture ? { capture: network.capture } : {}),
    },
    unixSockets: allUnix
      ? { kind: "all" }
      : { kind: "allowlist", paths: [...host.allowedSockets.keys()] },
    writable,
    ...(paths.cwdWritable ? {} : { readOnlyCwd: true }),
    ...(config.filesystem.readRoots == null ? {} : {
      readRoots: [
        ...config.filesystem.readRoots,
        ...(config.filesystem.workspace?.roots ?? []),
      ],
    }),
    ...(paths.readOnly.length > 0 ? { readOnlyPaths: [...paths.readOnly] } : {}),
    denyRead,
    extraBinds: [...(options.extraBinds ?? [])],
    readOnly: [...(options.readOnly ?? [])],
    toolHomes: [...(host.toolHomes ?? [])],
    protect: protectedUnder(
      options.protect ?? [],
      [cwd, ...writable],
      (host.toolHomes ?? []).map((home) => home.target),
    ),
    runDir,
    linux,
  };
}

/**
 * The paths of `protect` that lie in a writable area (elsewhere the
 * read-only root covers them), except those a tool home replaces (the
 * command sees the sandbox home there, not the host's file).
 */
function protectedUnder(
  protect: readonly string[],
  areas: readonly string[],
  toolHomes: readonly string[],
): string[] {
  const out = new Set<string>();
  for (const path of protect) {
    if (toolHomes.some((home) => isUnder(path, home))) continue;
    if (areas.some((area) => isUnder(path, area))) out.add(path);
  }
  return [...out];
}

function checkSystemDirs(cwd: string, writable: readonly string[]): void {
  for (
    const [what, path] of [["working directory", cwd], ...writable.map((p) => ["writable path", p])]
  ) {
    const problem = systemDirProblem(path);
    if (problem === null) continue;
    throw new UsageError(
      `Cannot use "${path}" as the ${what}: ${problem}, which the sandbox mounts itself or must ` +
        "keep read-only: run from a project directory (or list a narrower writable path), or pass " +
        `${ALLOW_SYSTEM_DIRS_FLAG} to make it writable with the sandbox's own /proc, /dev and /tmp on top`,
      { command: "run" },
    );
  }
}

function pathKind(path: string): PathKind {
  try {
    const info = Deno.lstatSync(path); // synchronous: cheaper than a thread-pool round trip
    if (info.isSymlink) return "symlink";
    return info.isDirectory ? "dir" : "file";
  } catch {
    return "missing";
  }
}

/**
 * `buildBwrapArgs(plan)`: the Bubblewrap argument list for a plan. Pure: no
 * I/O, the same plan always gives the same argv, and the tests pin it.
 *
 * Fail closed: the Linux file view needs facts about the host (which socket
 * files are bound, whether a hidden path is a directory or a file) that a
 * pure function cannot find out, so a plan without `plan.linux` (what
 * `buildSandboxPlan()` records from those facts) is refused rather than
 * run with defaults that would ignore `denyRead` and `unixSockets`. What
 * can be derived from the platform-neutral fields is enforced on top of
 * `plan.linux`: a socket bound back must be on `plan.unixSockets`, and the
 * run dir is hidden whenever a writable bind would show it. Not checkable
 * here: a `denyRead` path that `plan.linux` neither hides nor masks is taken
 * to be missing on the host (as `buildSandboxPlan()` records it), and which
 * host sockets need masking.
 *
 * @module
 */
import { SandboxError } from "../errors.ts";
import type { LinuxPlanDetails, SandboxPlan } from "./plan.ts";
import { isUnder } from "./unix_sockets.ts";
import { SCRATCH_VIEW } from "./tool_homes.ts";

/** File descriptors the launcher hands to bwrap (see {@linkcode BwrapArgsOptions}). */
export interface BwrapFds {
  /** `--json-status-fd`: bwrap reports the child pid and, at the end, the exit code. */
  readonly jsonStatusFd: number;
  /** `--block-fd`: bwrap waits on it before it runs the command (until the bridge listens). */
  readonly blockFd: number | null;
  /**
   * `--seccomp`: a descriptor bwrap reads the seccomp filter from
   * (`buildSeccompFilter()`) and loads just before it runs the command.
   */
  readonly seccompFd?: number | null;
}

/** Options for {@linkcode buildBwrapArgs}. */
export interface BwrapArgsOptions {
  /** Monitoring fds; omit for a plain argv (e.g. `--dry-run`). */
  readonly fds?: BwrapFds;
}

/**
 * Returns bwrap's arguments (without the `bwrap` itself) that run
 * `plan.argv` in its own user, pid, ipc, uts, cgroup and network
 * namespaces, over a read-only view of `/` with the working directory and
 * `plan.writable` writable, fresh `/proc`, `/dev` and empty tmpfs dirs,
 * every non-allowlisted socket file covered by `/dev/null`, and the
 * allowlisted ones bound back.
 *
 * The order matters: later mounts cover earlier ones, so the root comes
 * first, then the emptied dirs, then the writable binds (which may lie under
 * an emptied dir such as `/tmp`), then everything that hides or adds single
 * paths on top.
 *
 * Throws {@linkcode SandboxError} (`sandbox_failed`) for a plan without
 * `plan.linux`, and for one whose `plan.linux.socketBinds` binds a socket
 * that `plan.unixSockets` does not allow.
 *
 * @example
 * ```ts
 * const argv = ["bwrap", ...buildBwrapArgs(plan)];
 * ```
 */
export function buildBwrapArgs(plan: SandboxPlan, options: BwrapArgsOptions = {}): string[] {
  const linux = plan.linux;
  if (linux === undefined) {
    throw new SandboxError(
      "sandbox_failed",
      'Cannot build the bwrap arguments: the plan has no "linux" field (plan.linux: which ' +
        "directories exist and which unix sockets are bound on the host): build the plan with " +
        "buildSandboxPlan()",
    );
  }
  checkSocketBinds(plan, linux);
  const args: string[] = [];
  if (linux.unshareUser) args.push("--unshare-user");
  args.push(
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-net",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--die-with-parent",
    "--new-session",
    // Root (uid 0) inside the sandbox's own user namespace would otherwise keep every capability
    // there, which owns the sandbox's mounts: remount / writable, unmount the masks.
    "--cap-drop",
    "ALL",
  );
  if (plan.readRoots === undefined) args.push("--ro-bind", "/", "/");
  else {
    // Restricted read: bwrap's own root is an empty tmpfs; only these are shown, read-only.
    for (const path of plan.readRoots) args.push("--ro-bind-try", path, path);
    args.push("--ro-bind", plan.cwd, plan.cwd);
  }
  const cwdWritable = plan.readOnlyCwd !== true;
  // A writable area that contains the sandbox's own mounts (only with
  // --dangerously-allow-system-dirs) goes first, so /dev, /proc and the emptied dirs stay on top.
  const own = ["/dev", "/proc", ...linux.emptyDirs];
  const covers = (area: string) => own.some((dir) => dir !== area && isUnder(dir, area));
  if (cwdWritable && covers(plan.cwd)) args.push("--bind", plan.cwd, plan.cwd);
  for (const path of plan.writable) if (covers(path)) args.push("--bind-try", path, path);
  args.push("--dev", "/dev");
  args.push("--proc", "/proc");
  for (const dir of linux.emptyDirs) args.push("--tmpfs", dir);
  // The launcher's own files (for the in-sandbox shim) may live under an emptied dir such as
  // /tmp; bound read-only here, before cwd and the writable paths, which may lie inside them.
  for (const path of plan.readOnly ?? []) args.push("--ro-bind-try", path, path);
  if (cwdWritable && !covers(plan.cwd)) args.push("--bind", plan.cwd, plan.cwd);
  for (const path of plan.writable) if (!covers(path)) args.push("--bind-try", path, path);
  // Before the tool homes: a pin binds the host's directory, which would cover a tool home in it.
  for (const dir of pinnedDirs(plan)) args.push("--bind-try", dir, dir);
  for (const home of plan.toolHomes ?? []) {
    if (home.scratch === undefined) {
      args.push("--bind", home.source, home.target);
      continue;
    }
    // A throwaway view: a fresh tmpfs, the host's directory read-only inside it (bwrap takes bind
    // sources from the host's tree, so the tmpfs does not hide it), one relative link per entry.
    args.push("--tmpfs", home.target, "--ro-bind", home.source, `${home.target}/${SCRATCH_VIEW}`);
    for (const name of home.scratch.entries) {
      args.push("--symlink", `${SCRATCH_VIEW}/${name}`, `${home.target}/${name}`);
    }
  }
  // The launcher's own files may live in a tool's default path (deno from `npx -y deno` sits
  // under ~/.npm): bound again on top of the tool home, read-only, so the shim still finds them.
  for (const path of plan.readOnly ?? []) {
    if ((plan.toolHomes ?? []).some((home) => isUnder(path, home.target))) {
      args.push("--ro-bind-try", path, path);
    }
  }
  // Read-only carve-outs come after the writable binds they lie in, and before what is hidden.
  for (const path of plan.readOnlyPaths ?? []) args.push("--ro-bind-try", path, path);
  // The launcher's own paths likewise, after the pins (a pin binds the host's dir and would
  // cover a mount made inside it earlier), before the hidden paths (which may lie inside them).
  for (const path of plan.protect ?? []) args.push("--ro-bind-try", path, path);
  for (const dir of hiddenDirs(plan, linux)) args.push("--tmpfs", dir);
  for (const path of linux.maskedFiles) args.push("--ro-bind", "/dev/null", path);
  for (const bind of linux.socketBinds) args.push("--bind", bind.source, bind.target);
  for (const bind of plan.extraBinds) args.push("--ro-bind", bind.source, bind.target);
  if (options.fds !== undefined) {
    args.push("--json-status-fd", String(options.fds.jsonStatusFd));
    if (options.fds.blockFd !== null) args.push("--block-fd", String(options.fds.blockFd));
    const seccompFd = options.fds.seccompFd ?? null;
    if (seccompFd !== null) args.push("--seccomp", String(seccompFd));
  }
  args.push("--chdir", plan.cwd);
  args.push("--", ...plan.argv);
  return args;
}

/**
 * With an allowlist, each socket bound back must be an allowlisted path, or
 * the canonical path of one (the source of a bind whose target is
 * allowlisted, bound at its own path too).
 */
function checkSocketBinds(plan: SandboxPlan, linux: LinuxPlanDetails): void {
  if (plan.unixSockets.kind === "all") return;
  const allowed = new Set(plan.unixSockets.paths);
  const canonical = new Set(
    linux.socketBinds.filter((bind) => allowed.has(bind.target)).map((bind) => bind.source),
  );
  for (const bind of linux.socketBinds) {
    if (allowed.has(bind.target)) continue;
    if (bind.source === bind.target && canonical.has(bind.target)) continue;
    throw new SandboxError(
      "sandbox_failed",
      `Cannot build the bwrap arguments: plan.linux.socketBinds binds "${bind.source}" to ` +
        `"${bind.target}", which plan.unixSockets does not allow: allowlist it or drop the bind`,
    );
  }
}

/** `plan.linux.hiddenDirs`, plus the run dir when the emptied dirs would not keep it out of sight. */
function hiddenDirs(plan: SandboxPlan, linux: LinuxPlanDetails): readonly string[] {
  if (linux.hiddenDirs.some((dir) => isUnder(plan.runDir, dir))) return linux.hiddenDirs;
  const emptied = linux.emptyDirs.some((dir) => isUnder(plan.runDir, dir));
  const exposed = [plan.cwd, ...plan.writable].some((dir) => isUnder(plan.runDir, dir));
  return emptied && !exposed ? linux.hiddenDirs : [...linux.hiddenDirs, plan.runDir];
}

/**
 * The directories between a writable area (the working dir, a writable path)
 * and each `denyRead` path below it, each bound onto itself: a mount point
 * cannot be renamed or removed, so the command cannot move a hidden file's
 * directory away (`mv secrets s2`) for the next run, which would find the
 * `denyRead` path missing and show `s2/…` unmasked.
 */
function deepest(paths: readonly string[]): string | null {
  let best: string | null = null;
  for (const path of paths) if (best === null || path.length > best.length) best = path;
  return best;
}

function pinnedDirs(plan: SandboxPlan): string[] {
  // Only areas the command can write: binding a directory of a read-only working dir onto
  // itself would make it writable.
  const areas = plan.readOnlyCwd === true ? [...plan.writable] : [plan.cwd, ...plan.writable];
  // The sandbox's own mounts: what the command sees under them is not the host's directory, so
  // a pin there would bind the host's one over it (with cwd "/", /tmp of the host over the
  // sandbox's empty /tmp), unless a writable area below the mount is what is seen there.
  const own = ["/dev", "/proc", ...(plan.linux?.emptyDirs ?? [])];
  const dirs = new Set<string>();
  for (const path of [...plan.denyRead, ...(plan.protect ?? [])]) {
    const parts = path.split("/").filter((part) => part !== "");
    for (let i = 1; i < parts.length; i++) {
      const dir = `/${parts.slice(0, i).join("/")}`;
      const area = deepest(areas.filter((a) => dir !== a && isUnder(dir, a)));
      if (area === null) continue;
      const mount = deepest(own.filter((m) => isUnder(dir, m)));
      if (mount !== null && !isUnder(area, mount)) continue;
      dirs.add(dir);
    }
  }
  return [...dirs];
}

/**
 * `buildBwrapArgs(plan)`: the Bubblewrap argument list for a plan. Pure: no
 * I/O, the same plan always gives the same argv, and the tests pin it.
 *
 * @module
 */
import type { LinuxPlanDetails, SandboxPlan } from "./plan.ts";

/** File descriptors the launcher hands to bwrap (see {@linkcode BwrapArgsOptions}). */
export interface BwrapFds {
  /** `--json-status-fd`: bwrap reports the child pid and, at the end, the exit code. */
  readonly jsonStatusFd: number;
  /** `--block-fd`: bwrap waits on it before it runs the command (until the bridge listens). */
  readonly blockFd: number | null;
}

/** Options for {@linkcode buildBwrapArgs}. */
export interface BwrapArgsOptions {
  /** Monitoring fds; omit for a plain argv (e.g. `--dry-run`). */
  readonly fds?: BwrapFds;
}

const DEFAULT_LINUX: LinuxPlanDetails = Object.freeze({
  unshareUser: true,
  emptyDirs: Object.freeze(["/tmp", "/dev/shm", "/run"]),
  hiddenDirs: Object.freeze([]),
  maskedFiles: Object.freeze([]),
  socketBinds: Object.freeze([]),
});

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
 * @example
 * ```ts
 * const argv = ["bwrap", ...buildBwrapArgs(plan)];
 * ```
 */
export function buildBwrapArgs(plan: SandboxPlan, options: BwrapArgsOptions = {}): string[] {
  const linux = plan.linux ?? DEFAULT_LINUX;
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
  );
  args.push("--ro-bind", "/", "/");
  args.push("--dev", "/dev");
  args.push("--proc", "/proc");
  for (const dir of linux.emptyDirs) args.push("--tmpfs", dir);
  args.push("--bind", plan.cwd, plan.cwd);
  for (const path of plan.writable) args.push("--bind-try", path, path);
  for (const dir of linux.hiddenDirs) args.push("--tmpfs", dir);
  for (const path of linux.maskedFiles) args.push("--ro-bind", "/dev/null", path);
  for (const bind of linux.socketBinds) args.push("--bind", bind.source, bind.target);
  for (const bind of plan.extraBinds) args.push("--ro-bind", bind.source, bind.target);
  if (options.fds !== undefined) {
    args.push("--json-status-fd", String(options.fds.jsonStatusFd));
    if (options.fds.blockFd !== null) args.push("--block-fd", String(options.fds.blockFd));
  }
  args.push("--chdir", plan.cwd);
  args.push("--", ...plan.argv);
  return args;
}

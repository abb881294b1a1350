/**
 * Checks before a Linux run, each failing with a message that says what is
 * wrong and how to fix it: Bubblewrap missing, user namespaces disabled,
 * the command not found. Also explains a sandbox that failed to start.
 *
 * @module
 */
import { SandboxError } from "../errors.ts";

/** Options for {@linkcode preflightLinux}. */
export interface PreflightOptions {
  /** The launcher's `PATH` (to find `bwrap`). */
  readonly path?: string;
  /** The launcher's uid (0 = root). */
  readonly uid: number;
  /** Root of the sysctl tree (default `/proc/sys`), for tests. */
  readonly procSys?: string;
}

/** What the preflight found. */
export interface PreflightResult {
  /** Absolute path of `bwrap`. */
  readonly bwrap: string;
  /** Absolute path of util-linux `setsid`, or null when it is not on PATH. */
  readonly setsid: string | null;
}

const INSTALL_BWRAP =
  'install it with "apt-get install -y bubblewrap" (Debian, Ubuntu), "dnf install -y bubblewrap" (Fedora, RHEL) or "apk add bubblewrap" (Alpine)';

/**
 * Finds `bwrap` (and `setsid`, which starts it in its own session more
 * cheaply than a fork of the launcher) and checks the sysctls that switch
 * user namespaces off.
 * Throws a {@linkcode SandboxError} (`bwrap_missing`, `userns_disabled`).
 *
 * @example
 * ```ts
 * const { bwrap } = await preflightLinux({ path: Deno.env.get("PATH"), uid: Deno.uid() ?? 0 });
 * ```
 */
export function preflightLinux(options: PreflightOptions): Promise<PreflightResult> {
  try {
    return Promise.resolve(preflightLinuxSync(options));
  } catch (error) {
    return Promise.reject(error);
  }
}

function preflightLinuxSync(options: PreflightOptions): PreflightResult {
  const found = resolveCommandSync("bwrap", { path: options.path, cwd: "/" });
  const setsid = resolveCommandSync("setsid", { path: options.path, cwd: "/" });
  const problem = userNamespaceProblemSync(options);
  if (found.kind !== "found") {
    throw new SandboxError(
      "bwrap_missing",
      `Bubblewrap ("bwrap") was not found on PATH: ${INSTALL_BWRAP}`,
    );
  }
  if (problem !== null) throw new SandboxError("userns_disabled", problem);
  return { bwrap: found.path, setsid: setsid.kind === "found" ? setsid.path : null };
}

/**
 * Returns why user namespaces cannot be created by this user, or null when
 * nothing says they cannot. Reads `user.max_user_namespaces`,
 * `kernel.unprivileged_userns_clone` (Debian's switch) and, when `strict`,
 * `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10+), which
 * blocks bwrap only when no AppArmor profile grants it `userns`, so it is
 * named only once bwrap has actually failed.
 *
 * @example
 * ```ts
 * const why = await userNamespaceProblem({ uid: 1000, strict: true });
 * ```
 */
export function userNamespaceProblem(
  options: { readonly uid: number; readonly procSys?: string; readonly strict?: boolean },
): Promise<string | null> {
  return Promise.resolve(userNamespaceProblemSync(options));
}

function userNamespaceProblemSync(
  options: { readonly uid: number; readonly procSys?: string; readonly strict?: boolean },
): string | null {
  const sys = options.procSys ?? "/proc/sys";
  const max = readSysctl(`${sys}/user/max_user_namespaces`);
  if (max === "0") {
    return 'User namespaces are disabled: sysctl "user.max_user_namespaces" is 0: run "sysctl -w user.max_user_namespaces=15000" (and set it in /etc/sysctl.d/ to keep it)';
  }
  if (options.uid === 0) return null;
  const clone = readSysctl(`${sys}/kernel/unprivileged_userns_clone`);
  if (clone === "0") {
    return 'Unprivileged user namespaces are disabled: sysctl "kernel.unprivileged_userns_clone" is 0: run "sysctl -w kernel.unprivileged_userns_clone=1" (and set it in /etc/sysctl.d/ to keep it)';
  }
  if (options.strict === true) {
    const apparmor = readSysctl(`${sys}/kernel/apparmor_restrict_unprivileged_userns`);
    if (apparmor === "1") {
      return 'Unprivileged user namespaces are restricted by AppArmor: sysctl "kernel.apparmor_restrict_unprivileged_userns" is 1 (Ubuntu 23.10 and later): give bwrap a profile that allows them, e.g. /etc/apparmor.d/bwrap with "abi <abi/4.0>, include <tunables/global> profile bwrap /usr/bin/bwrap flags=(unconfined) { userns, }" then "apparmor_parser -r /etc/apparmor.d/bwrap", or run "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"';
    }
  }
  return null;
}

/** The result of {@linkcode resolveCommand}. */
export type ResolvedCommand =
  | { readonly kind: "found"; readonly path: string }
  | { readonly kind: "not_found" }
  | { readonly kind: "not_executable"; readonly path: string };

/** Options for {@linkcode resolveCommand}. */
export interface ResolveCommandOptions {
  /** The `PATH` to search (default `/usr/local/bin:/usr/bin:/bin`, like `execvp`). */
  readonly path?: string;
  /** Directory a relative name with a slash is resolved against. */
  readonly cwd: string;
}

/**
 * Resolves a command name the way `execvp` does: a name with a `/` is a
 * path (relative to `cwd`); otherwise the first executable regular file in
 * `PATH` wins (an empty `PATH` entry means `cwd`).
 *
 * @example
 * ```ts
 * await resolveCommand("sh", { path: "/usr/bin:/bin", cwd: "/" }); // { kind: "found", path: "/usr/bin/sh" }
 * ```
 */
export function resolveCommand(
  name: string,
  options: ResolveCommandOptions,
): Promise<ResolvedCommand> {
  return Promise.resolve(resolveCommandSync(name, options));
}

function resolveCommandSync(name: string, options: ResolveCommandOptions): ResolvedCommand {
  if (name === "") return { kind: "not_found" };
  if (name.includes("/")) {
    const path = name.startsWith("/") ? name : `${options.cwd.replace(/\/$/, "")}/${name}`;
    const check = executable(path);
    if (check === "yes") return { kind: "found", path };
    return check === "no" ? { kind: "not_executable", path } : { kind: "not_found" };
  }
  let denied: string | null = null;
  for (const entry of (options.path ?? "/usr/local/bin:/usr/bin:/bin").split(":")) {
    const dir = entry === "" ? options.cwd : entry;
    const path = `${dir.replace(/\/$/, "")}/${name}`;
    const check = executable(path);
    if (check === "yes") return { kind: "found", path };
    if (check === "no") denied ??= path;
  }
  return denied === null ? { kind: "not_found" } : { kind: "not_executable", path: denied };
}

function executable(path: string): "yes" | "no" | "missing" {
  let info: Deno.FileInfo;
  try {
    // Synchronous: a few of these run before every sandbox starts, and each
    // asynchronous one costs a thread-pool round trip.
    info = Deno.statSync(path);
  } catch {
    return "missing";
  }
  if (!info.isFile) return "no";
  const mode = info.mode ?? 0;
  const uid = Deno.uid();
  // Root may run a file when any execute bit is set; others need theirs.
  if (uid === 0) return (mode & 0o111) !== 0 ? "yes" : "no";
  if (info.uid === uid) return (mode & 0o100) !== 0 ? "yes" : "no";
  const gid = Deno.gid();
  if (info.gid === gid) return (mode & 0o010) !== 0 ? "yes" : "no";
  return (mode & 0o001) !== 0 ? "yes" : "no";
}

function readSysctl(path: string): string | null {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return null;
  }
}

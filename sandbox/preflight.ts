/**
 * Checks before a Linux run, each failing with a message that says what is
 * wrong and how to fix it: Bubblewrap missing, user namespaces disabled,
 * the command not found. Also explains a sandbox that failed to start.
 *
 * @module
 */
import { SandboxError } from "../errors.ts";
import { isUnder } from "./unix_sockets.ts";

/** Options for {@linkcode preflightLinux}. */
export interface PreflightOptions {
  /** The launcher's environment: `SANDBOX_BWRAP`, `SANDBOX_SETSID`, `SANDBOX_NSENTER` name configured helpers. */
  readonly env?: Readonly<Record<string, string>>;
  /** The launcher's uid (0 = root). */
  readonly uid: number;
  /** Directories the command can write (the working dir, writable paths): a configured helper there is refused. */
  readonly writableAreas?: readonly string[];
  /** Directories searched for helpers (default {@linkcode SYSTEM_BIN_DIRS}), for tests. */
  readonly binDirs?: readonly string[];
  /** Root of the sysctl tree (default `/proc/sys`), for tests. */
  readonly procSys?: string;
}

/** What the preflight found. */
export interface PreflightResult {
  /** Absolute path of `bwrap`. */
  readonly bwrap: string;
  /** Absolute path of util-linux `setsid`, or null when there is none. */
  readonly setsid: string | null;
  /** Absolute path of util-linux `nsenter` (starts the bridge), or null when there is none. */
  readonly nsenter: string | null;
  /**
   * Absolute path of util-linux `unshare`, which lets an unprivileged
   * launcher start the bridge early, in a user namespace of its own (see
   * `runLinuxPlan`); null when there is none, or when AppArmor restricts
   * unprivileged user namespaces (Ubuntu 23.10+): there an unconfined
   * `unshare` gets a namespace without capabilities, so the bridge is
   * started late instead, through `nsenter`; null too for an `unshare`
   * older than util-linux 2.38 (no `--map-current-user`).
   */
  readonly unshare: string | null;
}

/**
 * Where the launcher takes the programs it runs outside the sandbox
 * (`bwrap`, `setsid`, `nsenter`, `unshare`) from, in order. Never `PATH`: a `PATH`
 * entry may be a directory the sandboxed command can write
 * (`node_modules/.bin`, a relative entry), and a program planted there would
 * run outside the sandbox on the next run. A directory counts only while it
 * is owned by root and writable by no one else (`/usr/local/bin` is skipped
 * on a machine where a user owns it). `SANDBOX_BWRAP`, `SANDBOX_SETSID`,
 * `SANDBOX_NSENTER` and `SANDBOX_UNSHARE` name another absolute path.
 */
export const SYSTEM_BIN_DIRS: readonly string[] = Object.freeze([
  "/usr/bin",
  "/bin",
  "/usr/sbin",
  "/sbin",
  "/usr/local/bin",
]);

/** The environment variable that names each helper's path. */
export const HELPER_ENV: Readonly<Record<"bwrap" | "setsid" | "nsenter" | "unshare", string>> =
  Object.freeze({
    bwrap: "SANDBOX_BWRAP",
    setsid: "SANDBOX_SETSID",
    nsenter: "SANDBOX_NSENTER",
    unshare: "SANDBOX_UNSHARE",
  });

const INSTALL_BWRAP =
  'install it with "apt-get install -y bubblewrap" (Debian, Ubuntu), "dnf install -y bubblewrap" (Fedora, RHEL) or "apk add bubblewrap" (Alpine)';

/**
 * Finds `bwrap`, `setsid` (which starts it in its own session more cheaply
 * than a fork of the launcher) and `nsenter` (which starts the bridge) in
 * {@linkcode SYSTEM_BIN_DIRS} or where `SANDBOX_BWRAP` and friends say, and
 * checks the sysctls that switch user namespaces off. Throws a
 * {@linkcode SandboxError} (`bwrap_missing`, `userns_disabled`,
 * `sandbox_failed` for a configured helper that is not absolute, not an
 * executable file, or lies where the command can write).
 *
 * @example
 * ```ts
 * const { bwrap } = await preflightLinux({ env: Deno.env.toObject(), uid: Deno.uid() ?? 0 });
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
  const bwrap = findHelper("bwrap", options);
  const setsid = findHelper("setsid", options);
  const nsenter = findHelper("nsenter", options);
  const restricted = options.uid !== 0 &&
    readSysctl(`${options.procSys ?? "/proc/sys"}/kernel/apparmor_restrict_unprivileged_userns`) ===
      "1";
  // Only an unprivileged launcher starts its bridge through unshare: root never reads it.
  const found = restricted || options.uid === 0 ? null : findHelper("unshare", options);
  const unshare = found !== null && unshareCanKeepCaps(found) ? found : null;
  const problem = userNamespaceProblemSync(options);
  if (bwrap === null) {
    const dirs = (options.binDirs ?? SYSTEM_BIN_DIRS).join(", ");
    throw new SandboxError(
      "bwrap_missing",
      `Bubblewrap ("bwrap") was not found in ${dirs} (PATH is not searched): ${INSTALL_BWRAP}, ` +
        `or set ${HELPER_ENV.bwrap} to its absolute path`,
    );
  }
  if (problem !== null) throw new SandboxError("userns_disabled", problem);
  return { bwrap, setsid, nsenter, unshare };
}

/**
 * Whether util-linux `unshare` at `path` knows `--map-current-user` (2.38,
 * 2022; Ubuntu 22.04 ships 2.37) and `--keep-caps`: its help text is in the
 * binary, so reading it (~80 KB) costs less than running `unshare --help`.
 */
function unshareCanKeepCaps(path: string): boolean {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch {
    return false;
  }
  const text = new TextDecoder("latin1").decode(bytes);
  return text.includes("--map-current-user") && text.includes("--keep-caps");
}

/**
 * A helper's absolute path: the configured one (checked), else the first
 * executable file of that name in a trusted system directory, else null.
 */
function findHelper(name: keyof typeof HELPER_ENV, options: PreflightOptions): string | null {
  const variable = HELPER_ENV[name];
  const configured = options.env?.[variable];
  if (configured !== undefined && configured !== "") {
    return checkConfiguredHelper(name, variable, configured, options.writableAreas ?? []);
  }
  for (const dir of options.binDirs ?? SYSTEM_BIN_DIRS) {
    if (!trustedDir(dir)) continue;
    const path = `${dir}/${name}`;
    if (executable(path) === "yes" && !writableByOthers(path)) return path;
  }
  return null;
}

function checkConfiguredHelper(
  name: string,
  variable: string,
  path: string,
  writableAreas: readonly string[],
): string {
  const refuse = (why: string) =>
    new SandboxError("sandbox_failed", `Cannot use ${variable}="${path}" as "${name}": ${why}`);
  if (!path.startsWith("/")) throw refuse("the path must be absolute");
  let real = path;
  try {
    real = Deno.realPathSync(path);
  } catch {
    // Checked below: missing.
  }
  for (const area of writableAreas) {
    if (isUnder(path, area) || isUnder(real, area)) {
      throw refuse(
        `it lies in "${area}", which the sandboxed command can write: install it outside ` +
          "the working directory and the writable paths",
      );
    }
  }
  const check = executable(path);
  if (check !== "yes") throw refuse("it is not an executable file");
  if (writableByOthers(real)) {
    throw refuse("it or its directory is writable by other users");
  }
  return path;
}

/** Owned by root and writable by no one else (symlinks such as /bin -> usr/bin followed). */
function trustedDir(dir: string): boolean {
  try {
    const info = Deno.statSync(dir);
    return info.isDirectory && info.uid === 0 && ((info.mode ?? 0o777) & 0o022) === 0;
  } catch {
    return false;
  }
}

/** The file, or its directory, can be changed by a user other than its owner (group or world write). */
function writableByOthers(path: string): boolean {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  for (const p of [path, dir]) {
    try {
      if (((Deno.statSync(p).mode ?? 0o777) & 0o022) !== 0) return true;
    } catch {
      return true;
    }
  }
  return false;
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

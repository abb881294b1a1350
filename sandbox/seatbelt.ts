/**
 * The macOS Seatbelt profile, rendered from the platform-neutral
 * {@linkcode SandboxPlan}. Pure: no I/O, the same plan always gives the same
 * text and parameters.
 *
 * Every path of the plan reaches `sandbox-exec` as a `-DNAME=VALUE`
 * parameter and is read in the profile with `(param "NAME")`; no path is ever
 * pasted into the profile text, so a directory named `a") (allow default` is
 * only ever a string. Parameter names are deterministic: `CWD`,
 * `WRITABLE_<i>`, `TMP_<i>`, `RUN_DIR`, `DENY_READ_<i>`, `UNIX_SOCKET_<i>`, each with an
 * `…_ALIAS` twin when the path has a second spelling (see
 * {@linkcode seatbeltPathForms}).
 *
 * Seatbelt checks a file's resolved path, so the plan's paths must already be
 * canonical (the macOS launcher resolves symlinks with `realpath` before
 * rendering, see `canonicalizePlanForMacos()` in sandbox/macos.ts). The one
 * symlink family every Mac has, `/tmp`, `/var` and `/etc` pointing into
 * `/private`, is covered here too: such paths get both spellings.
 *
 * @module
 */
import { SandboxError } from "../errors.ts";
import type { SandboxPlan } from "./plan.ts";

/** What {@linkcode renderSeatbeltProfile} returns. */
export interface SeatbeltProfile {
  /** The SBPL text for `sandbox-exec -p`. Contains no path of the plan. */
  readonly profile: string;
  /** Parameter name -> value, passed as `-DNAME=VALUE`; every `(param "NAME")` of the profile is here. */
  readonly params: Readonly<Record<string, string>>;
}

/** Options for {@linkcode renderSeatbeltProfile}. */
export interface RenderSeatbeltOptions {
  /**
   * A tag attached to every denial (`(deny default (with message "TAG"))`) so
   * the launcher can pick this run's violations out of the system log.
   * Letters, digits, `_` and `-` only, at most 64 characters. Omitted: no tag.
   */
  logTag?: string;
}

/**
 * Fixed system paths that the profile names literally. They are the same on
 * every Mac and never come from the plan; the checker refuses any other
 * absolute path written into a profile.
 */
export const SEATBELT_SYSTEM_LITERALS: readonly string[] = Object.freeze([
  "/dev/null",
  "/dev/zero",
  "/dev/tty",
  "/dev/ptmx",
  "/dev/stdout",
  "/dev/stderr",
]);

/** Fixed regular expressions the profile may contain (device names, and "any path" for all unix sockets). */
export const SEATBELT_SYSTEM_REGEXES: readonly string[] = Object.freeze([
  "^/dev/ttys[0-9]+$",
  "^/dev/fd/[0-9]+$",
  "^/",
]);

/** The system-wide temp dir, writable like on any Unix (its per-user sibling comes from `TMPDIR`). */
const SYSTEM_TMP = "/private/tmp";

/** Top-level directories that are symlinks into /private on macOS. */
const PRIVATE_LINKS = ["tmp", "var", "etc"];

const LOG_TAG = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The spellings under which Seatbelt may see `path`: the path itself, and on
 * macOS's `/tmp`, `/var` and `/etc` (symlinks to `/private/…`) the other
 * spelling too. The first element is always the path as given.
 *
 * @example
 * ```ts
 * seatbeltPathForms("/tmp/work"); // ["/tmp/work", "/private/tmp/work"]
 * seatbeltPathForms("/private/var/folders/x"); // ["/private/var/folders/x", "/var/folders/x"]
 * seatbeltPathForms("/Users/a"); // ["/Users/a"]
 * ```
 */
export function seatbeltPathForms(path: string): string[] {
  for (const top of PRIVATE_LINKS) {
    if (path === `/${top}` || path.startsWith(`/${top}/`)) return [path, `/private${path}`];
    const priv = `/private/${top}`;
    if (path === priv || path.startsWith(`${priv}/`)) return [path, path.slice("/private".length)];
  }
  return [path];
}

/**
 * Renders the Seatbelt profile of `plan`: `(deny default)`, then exactly what
 * the command needs. Each allowance carries a comment with its reason.
 *
 * - processes: exec and fork; signals and process info only within the sandbox;
 * - the sysctl reads, mach services, semaphores and pty access that Node,
 *   Python, Go, git and npm use;
 * - files: read everywhere except `plan.denyRead`; write only to `plan.cwd`,
 *   `plan.writable`, the system temp dir, `TMPDIR` and a few devices, never
 *   inside `plan.runDir` (the launcher's own files);
 * - network: outbound TCP only to `localhost` on the proxy's HTTP and SOCKS
 *   ports (nothing when `plan.network.kind` is `"none"`); unix sockets only at
 *   the allowlisted paths (connect and bind), or anywhere when
 *   `plan.unixSockets.kind` is `"all"`.
 *
 * Throws a {@linkcode SandboxError} (`sandbox_failed`) when the plan holds a
 * relative path, a `.`/`..` segment or a NUL byte, or a port outside 1-65535:
 * such a plan is a bug, and a profile that silently failed to match would
 * grant or deny the wrong thing.
 *
 * @example
 * ```ts
 * const { profile, params } = renderSeatbeltProfile(plan);
 * const argv = ["/usr/bin/sandbox-exec", "-p", profile,
 *   ...Object.entries(params).map(([k, v]) => `-D${k}=${v}`), "--", ...plan.argv];
 * ```
 */
export function renderSeatbeltProfile(
  plan: SandboxPlan,
  options: RenderSeatbeltOptions = {},
): SeatbeltProfile {
  const params = new ParamTable();
  const out: string[] = [];
  const add = (...lines: string[]) => out.push(...lines);

  if (options.logTag !== undefined && !LOG_TAG.test(options.logTag)) {
    throw renderError(`log tag ${JSON.stringify(options.logTag)} is not 1-64 of [A-Za-z0-9_-]`);
  }
  if (plan.readRoots !== undefined) {
    // Fail closed: this profile reads everything but what is denied; a limited read set would
    // need its own read rules, which are not written yet.
    throw renderError(
      'the plan limits reads to readRoots (a profile without ":root" = "read"), which the macOS profile does not support yet',
    );
  }

  add(
    "(version 1)",
    ";; Generated by sandbox from the run's plan. Every path of the plan is a",
    ';; -D parameter read with (param "NAME"); none is written into this text.',
    "",
    ";; Closed by default: whatever is not allowed below is denied.",
    options.logTag === undefined
      ? "(deny default)"
      : `(deny default (with message "${options.logTag}"))`,
    "",
    ";; Processes. The command starts programs and forks; children inherit this",
    ";; profile, so the whole process tree stays inside it.",
    "(allow process-exec)",
    "(allow process-fork)",
    ";; Signals and process inspection (ps, kill, a test runner reaping its",
    ";; workers) only within this sandbox: never the launcher or other programs.",
    "(allow signal (target same-sandbox))",
    "(allow process-info* (target same-sandbox))",
    "",
    ";; Read-only kernel facts that runtimes query at startup.",
    "(allow sysctl-read",
    ";; CPU count and topology: Node os.cpus() and libuv's thread pool, Python",
    ";; os.cpu_count(), Go's GOMAXPROCS, npm's worker count.",
    '  (sysctl-name "hw.ncpu")',
    '  (sysctl-name "hw.activecpu")',
    '  (sysctl-name "hw.logicalcpu")',
    '  (sysctl-name "hw.logicalcpu_max")',
    '  (sysctl-name "hw.physicalcpu")',
    '  (sysctl-name "hw.physicalcpu_max")',
    '  (sysctl-name "hw.packages")',
    '  (sysctl-name "hw.nperflevels")',
    '  (sysctl-name-prefix "hw.perflevel")',
    ";; CPU type and features: V8 and Go pick code paths by them; Python's",
    ";; platform.machine(); Rosetta detection (sysctl.proc_translated).",
    '  (sysctl-name "hw.machine")',
    '  (sysctl-name "hw.model")',
    '  (sysctl-name "hw.cputype")',
    '  (sysctl-name "hw.cpusubtype")',
    '  (sysctl-name "hw.cpufamily")',
    '  (sysctl-name "hw.byteorder")',
    '  (sysctl-name "hw.vectorunit")',
    '  (sysctl-name-prefix "hw.optional.")',
    '  (sysctl-name-prefix "machdep.cpu.")',
    '  (sysctl-name "sysctl.proc_cputype")',
    '  (sysctl-name "sysctl.proc_translated")',
    ";; Memory and cache sizes: os.totalmem(), allocators sizing their arenas.",
    '  (sysctl-name "hw.memsize")',
    '  (sysctl-name "hw.pagesize")',
    '  (sysctl-name "hw.pagesize_compat")',
    '  (sysctl-name "hw.cachelinesize")',
    '  (sysctl-name "hw.cachelinesize_compat")',
    '  (sysctl-name "hw.l1dcachesize")',
    '  (sysctl-name "hw.l1icachesize")',
    '  (sysctl-name "hw.l2cachesize")',
    '  (sysctl-name "hw.l3cachesize")',
    '  (sysctl-name "hw.cpufrequency")',
    '  (sysctl-name "hw.tbfrequency")',
    ";; uname() and friends: os.release(), platform.mac_ver(), runtime.GOOS checks,",
    ";; the user agent string npm and git send.",
    '  (sysctl-name "kern.ostype")',
    '  (sysctl-name "kern.osrelease")',
    '  (sysctl-name "kern.osversion")',
    '  (sysctl-name "kern.osproductversion")',
    '  (sysctl-name "kern.version")',
    '  (sysctl-name "kern.hostname")',
    ";; libSystem checks these while a process starts.",
    '  (sysctl-name "kern.osvariant_status")',
    '  (sysctl-name "kern.secure_kernel")',
    '  (sysctl-name "kern.usrstack64")',
    ";; Limits: exec argument size (Go exec package, xargs), open files (Go raises",
    ";; RLIMIT_NOFILE to kern.maxfilesperproc), process and group counts.",
    '  (sysctl-name "kern.argmax")',
    '  (sysctl-name "kern.maxfiles")',
    '  (sysctl-name "kern.maxfilesperproc")',
    '  (sysctl-name "kern.maxproc")',
    '  (sysctl-name "kern.ngroups")',
    ";; Uptime and load: os.uptime(), os.loadavg(), Python's time module.",
    '  (sysctl-name "kern.boottime")',
    '  (sysctl-name "vm.loadavg")',
    ";; Process table entries: ps, Node's process.title, Python psutil; the",
    ";; process-info rule above still limits what can be learnt to this sandbox.",
    '  (sysctl-name-prefix "kern.proc.pid.")',
    '  (sysctl-name-prefix "kern.proc.pgrp.")',
    ")",
    ";; Host statistics over mach: libuv's os.cpus() calls host_processor_info().",
    "(allow mach-host*)",
    "",
    ";; Mach services (each a daemon outside the sandbox; only these few).",
    "(allow mach-lookup",
    ";; User and group lookups (getpwuid, getgrouplist): git, npm, Python pwd and",
    ";; getpass, Go user package, and every shell prompt.",
    '  (global-name "com.apple.system.opendirectoryd.libinfo")',
    '  (global-name "com.apple.system.opendirectoryd.membership")',
    ";; Certificate trust evaluation: Go's x509 package verifies TLS chains through",
    ";; Security.framework, which asks trustd; without it Go's HTTPS fails.",
    '  (global-name "com.apple.trustd.agent")',
    ";; Preferences reads (CFPreferences): Foundation-based tools and Python's",
    ";; platform module; the preference files are readable anyway.",
    '  (global-name "com.apple.cfprefsd.daemon")',
    '  (global-name "com.apple.cfprefsd.agent")',
    ";; System notifications (notify_register_*): libSystem uses them for time",
    ";; zone and locale changes in every process.",
    '  (global-name "com.apple.system.notification_center")',
    ";; The per-user temp dir (confstr _CS_DARWIN_USER_TEMP_DIR) when TMPDIR is",
    ";; unset: Python tempfile, Node os.tmpdir().",
    '  (global-name "com.apple.bsd.dirhelper")',
    ";; Logging (os_log and asl) from system libraries; write-only.",
    '  (global-name "com.apple.logd")',
    '  (global-name "com.apple.system.logger")',
    ")",
    ";; Preferences are read through cfprefsd above.",
    "(allow user-preference-read)",
    ";; Named semaphores: Python multiprocessing's SemLock (Lock, Queue, Pool).",
    "(allow ipc-posix-sem)",
    ";; Creating unix-domain sockets and socket pairs (child process pipes in",
    ";; libuv, Python multiprocessing). Creating one reaches nothing; connect",
    ";; and bind are network operations, allowed only further below.",
    "(allow system-socket (socket-domain AF_UNIX))",
    "",
    ";; Terminals. openpty() for tools that start a shell or a pager on a pty.",
    "(allow pseudo-tty)",
    '(allow file-read* file-write* file-ioctl (literal "/dev/ptmx"))',
    ";; New ptys come with the pty extension; full access to those.",
    "(allow file-read* file-write* file-ioctl",
    '  (require-all (regex #"^/dev/ttys[0-9]+$") (extension "com.apple.sandbox.pty")))',
    ";; The terminal the command inherited has no extension: let it write and set",
    ";; modes (raw mode, window size) on it, as an interactive shell must.",
    "(allow file-write-data file-ioctl",
    '  (require-all (regex #"^/dev/ttys[0-9]+$") (vnode-type CHARACTER-DEVICE)))',
    ";; The controlling terminal under its generic name.",
    '(allow file-read* file-write-data file-ioctl (literal "/dev/tty"))',
    "",
    ";; Files: read everywhere (programs, libraries, the user's toolchain), except",
    ";; the denied paths at the end of this profile. Existence tests are reads too.",
    "(allow file-read* file-test-existence)",
    ";; Mapping files executable: dyld loading libraries, native addons in",
    ";; node_modules, Python extension modules. Any readable program may already",
    ";; be executed, so this reaches nothing new.",
    "(allow file-map-executable)",
  );

  // Writable places: the working directory, the plan's writable paths, and
  // the temp dirs.
  const writeFilters: string[] = [];
  if (plan.readOnlyCwd !== true) {
    for (const name of params.addPath("CWD", plan.cwd, "cwd")) {
      writeFilters.push(`  (subpath (param "${name}"))`);
    }
  }
  plan.writable.forEach((path, i) => {
    for (const name of params.addPath(`WRITABLE_${i}`, path, `writable[${i}]`)) {
      writeFilters.push(`  (subpath (param "${name}"))`);
    }
  });
  const tmpDirs = [SYSTEM_TMP];
  const envTmp = plan.env.TMPDIR;
  if (envTmp !== undefined && envTmp.startsWith("/")) tmpDirs.push(envTmp);
  tmpDirs.forEach((path, i) => {
    for (const name of params.addPath(`TMP_${i}`, path, "TMPDIR")) {
      writeFilters.push(`  (subpath (param "${name}"))`);
    }
  });
  add(
    ";; Writes: the working directory, the writable paths, the system temp dir",
    ";; and the user's TMPDIR. Nothing else on disk.",
    "(allow file-write*",
    ...writeFilters.map((line, i) => i === writeFilters.length - 1 ? `${line})` : line),
    ";; Devices every shell script writes to: the bit bucket, and the standard",
    ";; streams re-opened by name (only descriptors the process already has).",
    "(allow file-write-data",
    '  (require-all (literal "/dev/null") (vnode-type CHARACTER-DEVICE))',
    '  (require-all (literal "/dev/zero") (vnode-type CHARACTER-DEVICE))',
    '  (literal "/dev/stdout")',
    '  (literal "/dev/stderr")',
    '  (regex #"^/dev/fd/[0-9]+$"))',
    ";; ioctl on the bit bucket (isatty checks by shells and Python).",
    '(allow file-ioctl (literal "/dev/null"))',
  );

  // The run dir usually lies inside TMPDIR, which is writable; it holds the
  // launcher's own files (execpolicy shims, the CA bundle), so the command
  // may read them but never change them.
  const runDirRule: string[] = [];
  for (const name of params.addPath("RUN_DIR", plan.runDir, "runDir")) {
    runDirRule.push(`  (subpath (param "${name}"))`);
  }
  add(
    "",
    ";; The launcher's run dir (shims, trust bundle) may lie inside a writable",
    ";; temp dir: the command reads it but cannot change it.",
    "(deny file-write*",
    ...runDirRule.map((line, i) => i === runDirRule.length - 1 ? `${line})` : line),
  );

  // Read-only carve-outs inside writable places (Codex's ".git" = "read" under a writable root).
  const readOnlyRules: string[] = [];
  (plan.readOnlyPaths ?? []).forEach((path, i) => {
    for (const name of params.addPath(`READ_ONLY_${i}`, path, `readOnlyPaths[${i}]`)) {
      readOnlyRules.push(`  (subpath (param "${name}"))`);
    }
  });
  if (readOnlyRules.length > 0) {
    add(
      "",
      ";; Read-only places inside writable ones.",
      "(deny file-write*",
      ...readOnlyRules.map((line, i) => i === readOnlyRules.length - 1 ? `${line})` : line),
    );
  }

  // The launcher's own paths (config files, the decision log, CI runner files, its installation)
  // that lie where the command can write: never changed by it (see SandboxPlan.protect).
  const protectRules: string[] = [];
  (plan.protect ?? []).forEach((path, i) => {
    for (const name of params.addPath(`PROTECT_${i}`, path, `protect[${i}]`)) {
      protectRules.push(`  (subpath (param "${name}"))`);
    }
  });
  if (protectRules.length > 0) {
    add(
      "",
      ";; The launcher's own files inside writable places: read-only.",
      "(deny file-write*",
      ...protectRules.map((line, i) => i === protectRules.length - 1 ? `${line})` : line),
    );
  }

  // Denied paths come last among file rules: in SBPL the last matching rule
  // wins, so these beat the broad read allowance and any writable parent.
  const denyFilters: string[] = [];
  plan.denyRead.forEach((path, i) => {
    for (const name of params.addPath(`DENY_READ_${i}`, path, `denyRead[${i}]`)) {
      denyFilters.push(`  (subpath (param "${name}"))`);
    }
  });
  if (denyFilters.length > 0) {
    add(
      "",
      ";; Hidden paths: neither readable nor writable, even inside a writable one",
      ";; (the last matching rule wins, so this comes after the allowances).",
      "(deny file-read* file-test-existence file-map-executable file-write*",
      ...denyFilters.map((line, i) => i === denyFilters.length - 1 ? `${line})` : line),
    );
  }

  add("", ";; Network.");
  const network = plan.network;
  if (network.kind === "none") {
    add(";; No network: no TCP or UDP rule at all, so every connection is denied.");
  } else {
    const ports = [...new Set([network.httpPort, network.socksPort])];
    for (const port of ports) checkPort(port);
    add(
      ";; Only the launcher's proxy: outbound TCP to localhost on its HTTP and",
      ";; SOCKS5 ports. No other host, port or protocol, no DNS (the proxy",
      ";; resolves names), no inbound connections.",
      "(allow network-outbound",
      ...ports.map((port, i) =>
        `  (remote ip "localhost:${port}")${i === ports.length - 1 ? ")" : ""}`
      ),
    );
  }

  const sockets = plan.unixSockets;
  if (sockets.kind === "all") {
    add(
      ";; dangerously_allow_all_unix_sockets: every unix socket on the machine may",
      ";; be connected to and bound (this reaches every local daemon).",
      '(allow network-outbound (remote unix-socket (path-regex #"^/")))',
      '(allow network-bind network-inbound (local unix-socket (path-regex #"^/")))',
    );
  } else {
    const socketFilters: string[] = [];
    sockets.paths.forEach((path, i) => {
      for (const name of params.addPath(`UNIX_SOCKET_${i}`, path, `unixSockets[${i}]`)) {
        socketFilters.push(`(path-literal (param "${name}"))`);
      }
    });
    if (socketFilters.length === 0) {
      add(";; No unix socket may be connected to or bound.");
    } else {
      add(
        ";; Allowlisted unix sockets, by exact path: connect to them ...",
        "(allow network-outbound",
        ...socketFilters.map((f, i) =>
          `  (remote unix-socket ${f})${i === socketFilters.length - 1 ? ")" : ""}`
        ),
        ";; ... and serve on them (bind, accept), e.g. an agent the command starts.",
        ";; Creating the socket file also needs its directory to be writable.",
        "(allow network-bind network-inbound",
        ...socketFilters.map((f, i) =>
          `  (local unix-socket ${f})${i === socketFilters.length - 1 ? ")" : ""}`
        ),
      );
    }
  }

  return { profile: out.join("\n") + "\n", params: params.toRecord() };
}

/** Parameter names and values in insertion order; refuses malformed paths. */
class ParamTable {
  readonly #entries: [string, string][] = [];

  /** Adds `path` (and its alias spelling) under `name`; returns the names to reference. */
  addPath(name: string, path: string, where: string): string[] {
    const forms = seatbeltPathForms(normalizePlanPath(path, where));
    const names: string[] = [];
    forms.forEach((form, i) => {
      const key = i === 0 ? name : `${name}_ALIAS`;
      this.#entries.push([key, form]);
      names.push(key);
    });
    return names;
  }

  toRecord(): Record<string, string> {
    return Object.fromEntries(this.#entries);
  }
}

/** Absolute, no NUL, no `.`/`..` segment; collapses repeated and trailing slashes. */
function normalizePlanPath(path: string, where: string): string {
  if (!path.startsWith("/")) {
    throw renderError(`${where} ${JSON.stringify(path)} is not an absolute path`);
  }
  if (path.includes("\0")) {
    throw renderError(`${where} ${JSON.stringify(path)} contains a NUL byte`);
  }
  const parts = path.split("/").filter((part) => part !== "");
  if (parts.some((part) => part === "." || part === "..")) {
    throw renderError(
      `${where} ${JSON.stringify(path)} has a "." or ".." segment: canonicalize it first`,
    );
  }
  return "/" + parts.join("/");
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw renderError(`proxy port ${JSON.stringify(port)} is not an integer from 1 to 65535`);
  }
}

function renderError(detail: string): SandboxError {
  return new SandboxError("sandbox_failed", `Cannot render the Seatbelt profile: ${detail}`);
}

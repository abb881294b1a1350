/**
 * The platform-neutral sandbox plan. One plan object is built per run; the
 * Linux builder (`buildBwrapArgs(plan)`) and the macOS renderer
 * (`renderSeatbeltProfile(plan)`) are both pure functions of it, so the two
 * platforms cannot drift apart.
 *
 * @module
 */
import type { ToolHome } from "./tool_homes.ts";

/** How the sandboxed command reaches the network. */
export type NetworkPlan =
  | {
    /** No network at all: an empty network namespace (Linux) or no outbound rule (macOS). */
    readonly kind: "none";
  }
  | {
    /** Only the proxy. */
    readonly kind: "proxy";
    /** Port of the HTTP proxy on the sandbox's loopback (127.0.0.1). */
    readonly httpPort: number;
    /** Port of the SOCKS5 proxy on the sandbox's loopback (127.0.0.1). */
    readonly socksPort: number;
    /** Linux: the launcher's unix socket that the bridge relays to (absolute). */
    readonly proxySocket: string | null;
    /** Linux: transparent capture of connections that bypass the proxy variables, or null/absent: off. */
    readonly capture?: CapturePlan | null;
  };

/** Transparent capture inside the sandbox (see sandbox/capture.ts). */
export interface CapturePlan {
  /** The proxy's capture socket on the host (absolute). */
  readonly socket: string;
  /** Ports captured on every synthetic address (80, 443, and each port in a `host:port` rule). */
  readonly ports: readonly number[];
  /** Of those, the ports decided like CONNECT with the TLS server name checked. */
  readonly tlsPorts: readonly number[];
  /** Of those, the ports decided like plain-HTTP requests. */
  readonly httpPorts: readonly number[];
  /**
   * Literal addresses allow rules name (IPv4 or IPv6, canonical, no brackets): each is put on the
   * sandbox's loopback device and captured on the same ports. Absent: none.
   */
  readonly addresses?: readonly string[];
}

/** Which unix sockets the command may connect to. */
export type UnixSocketPlan =
  | { readonly kind: "allowlist"; readonly paths: readonly string[] }
  | { readonly kind: "all" };

/** Everything the platform backends need to start one sandboxed command. */
export interface SandboxPlan {
  /** The command and its arguments; `argv[0]` is a name or path. */
  readonly argv: readonly string[];
  /** Working directory, absolute; writable inside the sandbox. */
  readonly cwd: string;
  /** The complete environment of the command (nothing else is inherited). */
  readonly env: Readonly<Record<string, string>>;
  /** Network access. */
  readonly network: NetworkPlan;
  /** Unix socket access. */
  readonly unixSockets: UnixSocketPlan;
  /** Writable paths besides `cwd` (absolute). */
  readonly writable: readonly string[];
  /**
   * The only host paths shown (read-only) besides `cwd`, `writable` and the
   * sandbox's own mounts; absent: the whole filesystem is shown read-only.
   */
  readonly readRoots?: readonly string[];
  /** The working directory stays read-only (Codex's `:read-only`); absent or false: writable. */
  readonly readOnlyCwd?: boolean;
  /** Paths inside `cwd` or `writable` that stay read-only (absolute), e.g. `.git` under `:workspace`. */
  readonly readOnlyPaths?: readonly string[];
  /** Paths hidden from the command (absolute). */
  readonly denyRead: readonly string[];
  /** Read-only bind mounts added on top of the root (absolute host path -> sandbox path), e.g. shims. */
  readonly extraBinds: readonly { readonly source: string; readonly target: string }[];
  /**
   * Host paths the command must be able to read even where the sandbox empties a directory
   * (`/tmp`, `/run`, …): the launcher's own files when it runs again inside (the execpolicy
   * shim). Mounted read-only before the writable paths, so they never make those read-only.
   */
  readonly readOnly?: readonly string[];
  /**
   * Tool homes (`~/.npm`, `~/.cache/pip`, …): directories of the user's
   * sandbox home bound writable over the tools' default paths, after
   * `writable` (see `sandbox/tool_homes.ts`). Linux only.
   */
  readonly toolHomes?: readonly ToolHome[];
  /**
   * Files and directories the launcher reads for policy or writes, and its
   * own installation, that lie where the command can write (the config
   * files of the run, the decision log, CI runner files, the checkout or
   * binary): bound read-only onto themselves on Linux, after the writable
   * binds and before the hidden paths, with the directories between their
   * writable area and them bound onto themselves so that none can be moved
   * away (a mount point cannot be renamed or removed). Nothing the command
   * does in one run can change what the next run loads or where it writes.
   */
  readonly protect?: readonly string[];
  /** The private temp dir of this run on the host (absolute). */
  readonly runDir: string;
  /**
   * Linux-only details derived from facts about the host (which directories
   * exist, which unix sockets are bound). Absent in plans built by hand,
   * e.g. for the macOS renderer's tests; `buildBwrapArgs` refuses such a
   * plan (it cannot find those facts out without I/O, and defaults would
   * ignore `denyRead` and `unixSockets`).
   */
  readonly linux?: LinuxPlanDetails;
}

/** Host-derived details of the Linux file view; see {@linkcode SandboxPlan.linux}. */
export interface LinuxPlanDetails {
  /** Create a user namespace (always true when unprivileged; the launcher also does so as root). */
  readonly unshareUser: boolean;
  /** Directories replaced by an empty, writable tmpfs before the writable binds (`/tmp`, `/run`, `/dev/shm`, `$XDG_RUNTIME_DIR`). */
  readonly emptyDirs: readonly string[];
  /** Directories hidden behind an empty tmpfs after the writable binds (`denyRead` dirs, the run dir when outside `emptyDirs`). */
  readonly hiddenDirs: readonly string[];
  /**
   * Files (sockets, `denyRead` files and deny-glob matches) hidden behind a read-only
   * `/dev/null`; bound into the sandbox's user namespace it cannot be opened (the mount is
   * `nodev`), so reading one fails with "Permission denied".
   */
  readonly maskedFiles: readonly string[];
  /** Allowlisted unix sockets bound back into the view: host path (canonical) -> sandbox path. */
  readonly socketBinds: readonly { readonly source: string; readonly target: string }[];
  /**
   * `network.strict_unix_sockets`: the seccomp filter refuses `socket(AF_UNIX)`
   * and datagram unix socketpairs, so no pathname socket is reachable at all
   * (allowlisted ones only through the proxy's `x-unix-socket`).
   */
  readonly strictUnixSockets?: boolean;
}

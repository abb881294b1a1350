/**
 * The proxy side of `x-unix-socket: /abs/path`: a client of the proxy may
 * ask for an absolute-form HTTP request to be sent to an allowlisted unix
 * socket instead of a host (`curl -H 'x-unix-socket: /run/docker.sock'
 * http://docker/v1.41/info` through the proxy). proxy/http_proxy.ts calls
 * {@linkcode checkAllowedUnixSocket} to decide and
 * {@linkcode connectAllowedUnixSocket} to connect.
 *
 * The rules, all checked on the launcher's (host's) view of the file system:
 *
 * - The path must be absolute and normalized (no `.`, `..`, `//`, trailing
 *   `/`, NUL); anything else is refused before the file system is touched.
 * - It must be an allowlisted entry exactly as written in the config, or the
 *   canonical path (`realpath`) of one. A symlink the client chose is never
 *   followed: `/work/proj/link.sock` -> an allowlisted socket is refused
 *   unless `/work/proj/link.sock` itself is on the list. The client runs
 *   in the sandbox and can plant links in its working directory; the proxy
 *   runs outside, so following them would be a confused deputy. (With
 *   `dangerously_allow_all_unix_sockets` every socket is allowed, so links
 *   are followed there.)
 * - The canonical path must be a socket (`lstat`), and is what the proxy
 *   connects to. Right after the connect the path is checked again: same
 *   canonical path, still a socket, same device and inode as before. A
 *   path redirected in between (a component swapped for a symlink) is
 *   refused and the connection closed before a byte is sent. (The allowlist
 *   names paths, so a socket re-created at the same path is still allowed;
 *   the inode check is a tripwire, as file systems reuse inode numbers.) A
 *   non-allowlisted path is refused without any connect.
 * - The proxy's own unix socket is never a target.
 *
 * Residual race (documented, not closed): between the check and
 * `connect()` a process that can write a directory on the canonical path
 * could swap a component for a symlink to another socket and swap it back
 * before the re-check; the proxy would then talk to that socket. Deno has
 * no `O_PATH` open or `connectat()` to pin the inode. Inside `sandbox run`
 * the allowlisted sockets are bind mounts in the command's view, which it
 * cannot rename or unlink (EBUSY); only a socket allowlisted below a
 * directory the command may write (its working directory or a writable
 * path) leaves that window, so allowlist sockets in places the command
 * cannot write.
 *
 * @module
 */
import type { NetworkConfig } from "../profiles/types.ts";

/** The request header that names the socket. */
export const X_UNIX_SOCKET_HEADER = "x-unix-socket";

/** Why a socket was refused. */
export type UnixForwardRefusal = "not_absolute" | "not_allowed" | "not_socket" | "swapped";

/** A refused `x-unix-socket` request. */
export class UnixForwardError extends Error {
  /** Why. */
  readonly reason: UnixForwardRefusal;
  constructor(reason: UnixForwardRefusal, message: string) {
    super(message);
    this.name = "UnixForwardError";
    this.reason = reason;
  }
}

/** One allowlisted socket: the path as written in the config, and where the rule came from. */
export interface UnixSocketEntry {
  /** Absolute path as written. */
  readonly path: string;
  /** Where the rule came from (e.g. `flag:--allow-unix-socket`), or null. */
  readonly source: string | null;
}

/** The rule name logged for a socket allowed by `dangerously_allow_all_unix_sockets`. */
export const ALLOW_ALL_UNIX_SOCKETS_RULE = "dangerously_allow_all_unix_sockets";

/**
 * The allowlist a network config gives: `"all"` with
 * `dangerously_allow_all_unix_sockets`, else the allowed paths after
 * merging the rules in order (a later `none` removes an earlier `allow`,
 * as `allowedSocketRules()` in sandbox/build_plan.ts does).
 *
 * @example
 * ```ts
 * const allowed = unixSocketAllowlist(config.network);
 * ```
 */
export function unixSocketAllowlist(
  network: Pick<NetworkConfig, "dangerouslyAllowAllUnixSockets" | "unixSockets">,
): readonly UnixSocketEntry[] | "all" {
  if (network.dangerouslyAllowAllUnixSockets) return "all";
  const allowed = new Map<string, UnixSocketEntry>();
  for (const rule of network.unixSockets) {
    allowed.delete(rule.path);
    if (rule.action === "allow") allowed.set(rule.path, { path: rule.path, source: rule.source });
  }
  return [...allowed.values()];
}

/** Options for {@linkcode checkAllowedUnixSocket} and {@linkcode connectAllowedUnixSocket}. */
export interface ConnectAllowedUnixSocketOptions {
  /** Allowlisted sockets (paths or entries), or `"all"` for `dangerously_allow_all_unix_sockets`. */
  readonly allowed: readonly (string | UnixSocketEntry)[] | "all";
  /** Sockets never connected to whatever the allowlist says (the proxy's own), canonical paths. */
  readonly exclude?: readonly string[];
  /** For tests only: runs between the check and the connect (to exercise the re-check). */
  readonly beforeConnect?: (canonical: string) => Promise<void>;
}

/** An allowed socket, as {@linkcode checkAllowedUnixSocket} found it. */
export interface AllowedUnixSocket {
  /** The path the client asked for. */
  readonly path: string;
  /** Its canonical path: what the proxy connects to. */
  readonly canonical: string;
  /** The allowlist entry that allowed it, or {@linkcode ALLOW_ALL_UNIX_SOCKETS_RULE}. */
  readonly rule: string;
  /** Where that entry came from, or null. */
  readonly source: string | null;
  /** Device and inode of the socket when checked. */
  readonly identity: { readonly dev: number | null; readonly ino: number | null };
}

/**
 * Decides whether `path` may be reached, without connecting. Throws
 * {@linkcode UnixForwardError} when not.
 *
 * @example
 * ```ts
 * const { canonical, rule } = await checkAllowedUnixSocket("/run/docker.sock", {
 *   allowed: ["/run/docker.sock"],
 * });
 * ```
 */
export async function checkAllowedUnixSocket(
  path: string,
  options: ConnectAllowedUnixSocketOptions,
): Promise<AllowedUnixSocket> {
  if (!path.startsWith("/") || hasControlChar(path) || normalize(path) !== path) {
    throw new UnixForwardError(
      "not_absolute",
      `The x-unix-socket path "${path}" is not an absolute, normalized path`,
    );
  }
  let rule: string;
  let source: string | null = null;
  let canonical: string | null;
  if (options.allowed === "all") {
    rule = ALLOW_ALL_UNIX_SOCKETS_RULE;
    canonical = await realPathOrNull(path);
  } else {
    const entries = options.allowed.map((entry) =>
      typeof entry === "string" ? { path: entry, source: null } : entry
    );
    // The exact entry first: no file system access for the common case.
    let match = entries.find((entry) => entry.path === path);
    let entryCanonical: string | null = null;
    if (match !== undefined) {
      entryCanonical = await realPathOrNull(match.path);
    } else {
      for (const entry of entries) {
        const resolved = await realPathOrNull(entry.path);
        if (resolved === path) {
          match = entry;
          entryCanonical = resolved;
          break;
        }
      }
    }
    if (match === undefined) {
      throw new UnixForwardError("not_allowed", `The unix socket "${path}" is not allowlisted`);
    }
    if (entryCanonical === null) {
      throw new UnixForwardError("not_socket", `The unix socket "${path}" does not exist`);
    }
    rule = match.path;
    source = match.source;
    canonical = entryCanonical;
  }
  if (canonical === null) {
    throw new UnixForwardError("not_socket", `The unix socket "${path}" does not exist`);
  }
  if (options.exclude?.includes(canonical)) {
    throw new UnixForwardError(
      "not_allowed",
      `The unix socket "${path}" is the proxy's own listener`,
    );
  }
  const info = await lstatOrNull(canonical);
  if (info === null || info.isSocket !== true) {
    throw new UnixForwardError("not_socket", `"${canonical}" is not a unix socket`);
  }
  return { path, canonical, rule, source, identity: { dev: info.dev, ino: info.ino } };
}

/**
 * Connects to the unix socket `path` names if the allowlist permits it
 * (see the module doc for the rules), by its canonical path, and checks
 * the path again after the connect. Throws {@linkcode UnixForwardError}
 * when refused (then nothing was connected, or the connection was closed
 * before any byte was sent); connect errors (`ECONNREFUSED`) pass through.
 *
 * @example
 * ```ts
 * const { conn } = await connectAllowedUnixSocket("/run/docker.sock", {
 *   allowed: ["/run/docker.sock"],
 * });
 * conn.close();
 * ```
 */
export async function connectAllowedUnixSocket(
  path: string,
  options: ConnectAllowedUnixSocketOptions,
): Promise<AllowedUnixSocket & { conn: Deno.UnixConn }> {
  const allowed = await checkAllowedUnixSocket(path, options);
  const { canonical, identity } = allowed;
  await options.beforeConnect?.(canonical);
  const conn = await Deno.connect({ transport: "unix", path: canonical });
  const info = await lstatOrNull(canonical);
  if (
    (await realPathOrNull(canonical)) !== canonical || info === null || info.isSocket !== true ||
    info.dev !== identity.dev || info.ino !== identity.ino
  ) {
    conn.close();
    throw new UnixForwardError(
      "swapped",
      `The unix socket "${canonical}" changed while connecting`,
    );
  }
  return { ...allowed, conn };
}

function hasControlChar(path: string): boolean {
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

function normalize(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}

async function realPathOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.realPath(path);
  } catch {
    return null;
  }
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch {
    return null;
  }
}

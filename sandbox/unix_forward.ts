/**
 * The proxy side of `x-unix-socket: /abs/path`: a client of the proxy may
 * ask for a request to be sent to an allowlisted unix socket instead of a
 * host. The path must be absolute and normalized, must name an allowlisted
 * socket (as written or by its canonical path), and is connected to by its
 * canonical path, which is checked again after the connect so that a
 * symlink swapped in meanwhile is refused.
 *
 * Call site (proxy/http_proxy.ts, `forward()`): when the request head has an
 * `x-unix-socket` header, call {@linkcode connectAllowedUnixSocket} with the
 * allowlisted paths of the effective config (`allowedSocketRules(config)`, or
 * every path when `dangerouslyAllowAllUnixSockets`), answer 403 with
 * `x-proxy-error: blocked-by-allowlist` on {@linkcode UnixForwardError}, else
 * send the head (without the `x-unix-socket` header) on the returned
 * connection and relay.
 *
 * @module
 */

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

/** Options for {@linkcode connectAllowedUnixSocket}. */
export interface ConnectAllowedUnixSocketOptions {
  /** Allowlisted socket paths (absolute), or `"all"` for `dangerously_allow_all_unix_sockets`. */
  readonly allowed: readonly string[] | "all";
}

/**
 * Connects to the unix socket `path` names if the allowlist permits it.
 * Throws {@linkcode UnixForwardError} otherwise.
 *
 * @example
 * ```ts
 * const { conn } = await connectAllowedUnixSocket("/run/docker.sock", {
 *   allowed: ["/run/docker.sock"],
 * });
 * ```
 */
export async function connectAllowedUnixSocket(
  path: string,
  options: ConnectAllowedUnixSocketOptions,
): Promise<{ conn: Deno.UnixConn; canonical: string }> {
  if (!path.startsWith("/") || path.includes("\0") || normalize(path) !== path) {
    throw new UnixForwardError(
      "not_absolute",
      `The x-unix-socket path "${path}" is not an absolute, normalized path`,
    );
  }
  const canonical = await realPathOrNull(path);
  if (canonical === null) {
    throw new UnixForwardError("not_socket", `The x-unix-socket path "${path}" does not exist`);
  }
  if (options.allowed !== "all") {
    let permitted = false;
    for (const entry of options.allowed) {
      if (entry !== path && entry !== canonical) continue;
      // The allowlisted entry must lead to the same socket right now.
      if ((await realPathOrNull(entry)) === canonical) permitted = true;
    }
    if (!permitted) {
      throw new UnixForwardError(
        "not_allowed",
        `The unix socket "${path}" is not allowlisted`,
      );
    }
  }
  if (!(await isSocket(canonical))) {
    throw new UnixForwardError("not_socket", `"${canonical}" is not a unix socket`);
  }
  const conn = await Deno.connect({ transport: "unix", path: canonical });
  // Re-check after the connect: a path component swapped for a symlink meanwhile is refused.
  if ((await realPathOrNull(canonical)) !== canonical || !(await isSocket(canonical))) {
    conn.close();
    throw new UnixForwardError(
      "swapped",
      `The unix socket "${canonical}" changed while connecting`,
    );
  }
  return { conn, canonical };
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

async function isSocket(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isSocket === true;
  } catch {
    return false;
  }
}

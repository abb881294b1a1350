/**
 * Which unix socket files exist on the host, so that the sandbox's file view
 * can hide every one that is not allowlisted. A read-only bind does not stop
 * `connect(2)` on a socket file, so each one the host's network namespace
 * lists in `/proc/net/unix` is either under an emptied directory (`/tmp`,
 * `/run`, …) or covered with `/dev/null`. Abstract sockets need nothing:
 * they belong to a network namespace, and the sandbox has its own.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";

/** Options for {@linkcode listHostSocketPaths}. */
export interface ListHostSocketPathsOptions {
  /** Where to read the table from (default `/proc/net/unix`), for tests. */
  readonly procNetUnix?: string;
  /** Whose search permissions decide what the command can reach (default: this process's ids). */
  readonly identity?: SocketListIdentity;
}

const LINE =
  /^[0-9a-fA-F]+: [0-9A-F]{8} [0-9A-F]{8} [0-9A-F]{8} [0-9A-F]{4} [0-9A-F]{2} +\d+ (.+)$/;

/**
 * Parses the text of `/proc/net/unix` and returns the distinct absolute
 * paths of bound pathname sockets (abstract `@…` names and unbound sockets
 * are left out), in the order they appear.
 *
 * @example
 * ```ts
 * parseProcNetUnix(await Deno.readTextFile("/proc/net/unix")); // ["/run/systemd/notify", …]
 * ```
 */
export function parseProcNetUnix(text: string): string[] {
  const seen = new Set<string>();
  for (const line of text.split("\n").slice(1)) {
    const match = LINE.exec(line);
    if (match === null) continue;
    const path = match[1];
    if (!path.startsWith("/")) continue;
    seen.add(path);
  }
  return [...seen];
}

/**
 * Returns the paths from `/proc/net/unix` that are socket files in this
 * process's view of the file system right now, each in canonical form:
 * the directory with every symlink resolved (`/var/run/x.sock` ->
 * `/run/x.sock`, `/home/u/link/x.sock` -> `/home/u/real/x.sock`), so that
 * the sandbox masks the file where it really is, and a socket under an
 * emptied directory reached through a symlinked parent needs no mask at
 * all (bwrap cannot mount on a path whose parent only exists on the host).
 * A socket bound in another mount namespace may list a path that does not
 * exist here, or is something else here: those are skipped. Distinct
 * canonical paths, in the order of the table.
 *
 * What this cannot see (and so the file view cannot mask): a socket bound
 * by a relative path (the table shows it as given), one whose directory was
 * renamed after the bind, a hard link to a socket, and one bound after the
 * run started. Sockets under the emptied directories (`/tmp`, `/run`, …)
 * are hidden whatever their name or age; see docs/linux-sandbox.md.
 *
 * @example
 * ```ts
 * const sockets = await listHostSocketPaths();
 * ```
 */
export async function listHostSocketPaths(
  options: ListHostSocketPathsOptions = {},
): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(options.procNetUnix ?? "/proc/net/unix");
  } catch {
    return [];
  }
  const paths = parseProcNetUnix(text);
  const canonical = await Promise.all(paths.map(canonicalSocketPath));
  const reach = new SearchCheck(options.identity ?? currentIdentity());
  const seen = new Set<string>();
  for (const path of canonical) {
    if (path !== null && reach.canReachFile(path)) seen.add(path);
  }
  return [...seen];
}

/** Who the sandboxed command is, for the search-permission check of {@linkcode listHostSocketPaths}. */
export interface SocketListIdentity {
  readonly uid: number;
  /** Primary and supplementary groups. */
  readonly gids: readonly number[];
}

function currentIdentity(): SocketListIdentity {
  const uid = Deno.uid() ?? 0;
  const gids = new Set<number>([Deno.gid() ?? 0]);
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const line = /^Groups:(.*)$/m.exec(status)?.[1] ?? "";
    for (const g of line.trim().split(/\s+/)) if (g !== "") gids.add(Number(g));
  } catch {
    // No /proc: the primary group only.
  }
  return { uid, gids: [...gids] };
}

/**
 * Whether every directory above a path can be searched by the command,
 * which runs with the launcher's ids and **no capabilities** (`--cap-drop
 * ALL`). A root launcher lists sockets in other users' private directories
 * (`/tmp/sandbox-65534/…`, mode 0700) that the command could not reach
 * anyway, and bwrap, which sets the mask up inside the user namespace,
 * cannot create a mount point there either ("Can't mkdir parents":
 * every run would fail). Such sockets need no mask and are left out.
 * Mode bits only: an ACL that grants the command more is not read.
 */
class SearchCheck {
  #identity: SocketListIdentity;
  #dirs = new Map<string, boolean>();
  constructor(identity: SocketListIdentity) {
    this.#identity = identity;
  }

  canReachFile(path: string): boolean {
    const parts = path.split("/").filter((part) => part !== "");
    for (let i = 0; i < parts.length; i++) {
      if (!this.#searchable(`/${parts.slice(0, i).join("/")}`)) return false;
    }
    return true;
  }

  #searchable(dir: string): boolean {
    const known = this.#dirs.get(dir);
    if (known !== undefined) return known;
    let ok = true;
    try {
      const info = Deno.statSync(dir);
      const mode = info.mode ?? 0o777;
      const bit = info.uid === this.#identity.uid
        ? 0o100
        : this.#identity.gids.includes(info.gid ?? -1)
        ? 0o010
        : 0o001;
      ok = (mode & bit) !== 0;
    } catch {
      ok = true; // Cannot tell: keep the mask (fail closed).
    }
    this.#dirs.set(dir, ok);
    return ok;
  }
}

/**
 * The canonical path of a socket file (its directory's symlinks resolved,
 * the last component kept as is), or null when no socket is there.
 */
async function canonicalSocketPath(path: string): Promise<string | null> {
  const slash = path.lastIndexOf("/");
  const name = path.slice(slash + 1);
  if (name === "" || name === "." || name === "..") return null;
  try {
    const dir = slash === 0 ? "/" : await Deno.realPath(path.slice(0, slash));
    const full = dir === "/" ? `/${name}` : `${dir}/${name}`;
    return (await Deno.lstat(full)).isSocket === true ? full : null;
  } catch {
    return null;
  }
}

/** The result of {@linkcode resolveSocketPath}. */
export type ResolvedSocket =
  | { readonly kind: "socket"; readonly path: string; readonly canonical: string }
  | { readonly kind: "missing"; readonly path: string; readonly detail: string }
  | { readonly kind: "not_socket"; readonly path: string; readonly canonical: string };

/**
 * Resolves an allowlisted socket path to its canonical path (all symlinks
 * followed) and checks that a socket is there.
 *
 * @example
 * ```ts
 * const r = await resolveSocketPath("/run/user/1000/bus");
 * if (r.kind === "socket") console.log(r.canonical);
 * ```
 */
export async function resolveSocketPath(path: string): Promise<ResolvedSocket> {
  let canonical: string;
  try {
    canonical = await Deno.realPath(path);
  } catch (error) {
    return {
      kind: "missing",
      path,
      detail: errorMessage(error),
    };
  }
  try {
    const info = await Deno.lstat(canonical);
    return info.isSocket === true
      ? { kind: "socket", path, canonical }
      : { kind: "not_socket", path, canonical };
  } catch (error) {
    return {
      kind: "missing",
      path,
      detail: errorMessage(error),
    };
  }
}

/** True when `path` is `dir` or lies below it (both absolute, normalized). */
export function isUnder(path: string, dir: string): boolean {
  if (dir === "/") return true;
  return path === dir || path.startsWith(dir.endsWith("/") ? dir : `${dir}/`);
}

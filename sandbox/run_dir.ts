/**
 * The private directory of one run: `BASE/sandbox-run-XXXXXX`, mode 0700,
 * with an unguessable name. It holds the proxy's unix socket (and the MITM
 * CA bundle, the execpolicy shims).
 *
 * `BASE` ({@linkcode runDirBase}) is a directory no other user and no
 * sandboxed command can plant files in: `$XDG_RUNTIME_DIR/sandbox` when
 * `XDG_RUNTIME_DIR` is an absolute directory of this user's with mode 0700,
 * else `/tmp/sandbox-UID`, created 0700 and refused when it exists as
 * anything else (another user's, a symlink, a file, looser permissions).
 * Inside the sandbox both places are empty (an emptied `$XDG_RUNTIME_DIR`
 * and `/tmp`, or a tmpfs over `BASE` when the working dir or a writable
 * path covers it). `TMPDIR` is not used: it may point into a directory the
 * sandbox shows (or makes writable), or be long enough to push the socket's
 * path past the 108 bytes a unix socket address holds. `sandbox run
 * --dry-run` shows the same parent ({@linkcode runDirPlaceholder}).
 *
 * A launcher killed with SIGKILL cannot clean up: each directory records its
 * owner (pid and process start time), and every new run first removes the
 * directories whose owner is gone. The sweep only looks at `lstat` results
 * and reads an owner file only when it is a small regular file, so nothing
 * found there (a FIFO, a symlink, a device) can block or redirect it.
 *
 * Set-up uses synchronous file calls: a handful of them on every run's
 * critical path, where each asynchronous one costs a thread-pool round trip.
 *
 * @module
 */
import { SandboxError } from "../errors.ts";

/** A run directory; dispose it to remove it. */
export interface RunDir extends AsyncDisposable {
  /** Absolute path. */
  readonly path: string;
}

/** Options for {@linkcode createRunDir}. */
export interface CreateRunDirOptions {
  /** Parent directory (default {@linkcode runDirBase} of the process's environment and uid). */
  readonly base?: string;
}

/** Prefix of every run directory's name. */
export const RUN_DIR_PREFIX = "sandbox-run-";

/** Longest run-dir base that keeps `BASE/sandbox-run-XXXXXX/proxy.sock` within a unix socket address (108 bytes). */
const MAX_BASE_LENGTH = 107 - "/sandbox-run-XXXXXX/proxy.sock".length;

/**
 * The parent of every run directory for this user: `$XDG_RUNTIME_DIR/sandbox`
 * when `XDG_RUNTIME_DIR` is an absolute, short enough directory owned by
 * `uid` with mode 0700, else `/tmp/sandbox-UID`. Looks, creates nothing.
 *
 * @example
 * ```ts
 * runDirBase({}, 1000); // "/tmp/sandbox-1000"
 * ```
 */
export function runDirBase(env: Readonly<Record<string, string>>, uid: number): string {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg !== undefined && xdg.startsWith("/") && `${xdg}/sandbox`.length <= MAX_BASE_LENGTH) {
    try {
      const info = Deno.lstatSync(xdg);
      if (info.isDirectory && info.uid === uid && ((info.mode ?? 0o777) & 0o077) === 0) {
        return `${xdg.replace(/\/+$/, "")}/sandbox`;
      }
    } catch {
      // Missing: fall back to /tmp.
    }
  }
  return `/tmp/sandbox-${uid}`;
}

/**
 * The run directory's path as a plan shows it before one exists (for
 * `--dry-run`): the same parent as {@linkcode createRunDir}, `XXXXXX` for
 * the random part.
 *
 * @example
 * ```ts
 * runDirPlaceholder({ base: "/tmp/sandbox-1000" }); // "/tmp/sandbox-1000/sandbox-run-XXXXXX"
 * ```
 */
export function runDirPlaceholder(options: CreateRunDirOptions = {}): string {
  return `${options.base ?? defaultBase()}/${RUN_DIR_PREFIX}XXXXXX`;
}

function defaultBase(): string {
  return runDirBase(Deno.env.toObject(), Deno.uid() ?? 0);
}

const OWNER_FILE = "owner";

/**
 * Creates `base` with mode 0700 when it is missing, then checks that it is a
 * directory (not a symlink) owned by this user that no one else can enter.
 * Throws {@linkcode SandboxError} (`io`) when it is not, saying what to do.
 *
 * @example
 * ```ts
 * ensurePrivateDir("/tmp/sandbox-1000");
 * ```
 */
export function ensurePrivateDir(base: string): void {
  const uid = Deno.uid();
  try {
    Deno.mkdirSync(base, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) {
      const why = error instanceof Error
        ? error.message.replace(/: mkdir '.*'$/, "")
        : String(error);
      throw new SandboxError(
        "io",
        `Cannot create the run directory in "${base}": ${why}: the launcher needs a private, ` +
          `writable "${base}" for the proxy socket (set XDG_RUNTIME_DIR to a directory of yours ` +
          "with mode 0700 to use another place)",
        { cause: error },
      );
    }
  }
  const info = Deno.lstatSync(base);
  const problem = !info.isDirectory
    ? info.isSymlink ? "is a symlink" : "is not a directory"
    : uid !== null && info.uid !== uid
    ? `belongs to uid ${info.uid}, not to uid ${uid}`
    : ((info.mode ?? 0o777) & 0o077) !== 0
    ? `has mode ${((info.mode ?? 0) & 0o777).toString(8)}, not 700`
    : null;
  if (problem !== null) {
    throw new SandboxError(
      "io",
      `Cannot use "${base}" for the run directory: it ${problem}, so another user could plant ` +
        `files in it: remove it (the launcher creates it again with mode 0700), or set ` +
        "XDG_RUNTIME_DIR to a directory of yours with mode 0700",
    );
  }
}

/**
 * Removes stale run directories, then creates a new one.
 *
 * @example
 * ```ts
 * await using dir = await createRunDir();
 * const socket = `${dir.path}/proxy.sock`;
 * ```
 */
export async function createRunDir(options: CreateRunDirOptions = {}): Promise<RunDir> {
  const base = options.base ?? defaultBase();
  ensurePrivateDir(base);
  await sweepStaleRunDirs({ base });
  let path: string;
  try {
    path = Deno.makeTempDirSync({ dir: base, prefix: RUN_DIR_PREFIX });
  } catch (error) {
    const why = error instanceof Error ? error.message.replace(/: tmpdir$/, "") : String(error);
    throw new SandboxError(
      "io",
      `Cannot create the run directory in "${base}": ${why}: the launcher needs a private, writable "${base}" for the proxy socket`,
      { cause: error },
    );
  }
  try {
    Deno.chmodSync(path, 0o700);
    // Written aside, then renamed into place: another launcher's sweep must never see an owner
    // file that exists but is still empty (it would take the run dir for a stale one and remove
    // it under a live run).
    Deno.writeTextFileSync(`${path}/${OWNER_FILE}.new`, ownerStamp(Deno.pid) ?? `${Deno.pid}`, {
      mode: 0o600,
      createNew: true,
    });
    Deno.renameSync(`${path}/${OWNER_FILE}.new`, `${path}/${OWNER_FILE}`);
  } catch (error) {
    await Deno.remove(path, { recursive: true }).catch(() => {});
    throw error;
  }
  let removed = false;
  return {
    path,
    async [Symbol.asyncDispose]() {
      if (removed) return;
      removed = true;
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** Options for {@linkcode sweepStaleRunDirs}. */
export interface SweepOptions {
  /** Parent directory (default {@linkcode runDirBase} of the process's environment and uid). */
  readonly base?: string;
}

/** An owner stamp is `PID STARTTIME`: a few dozen bytes at most. */
const MAX_OWNER_SIZE = 256;

/**
 * Removes run directories under `base` that belong to this user and whose
 * owner process no longer exists (or is another process with the same pid).
 * Returns the paths removed.
 *
 * @example
 * ```ts
 * const removed = await sweepStaleRunDirs();
 * ```
 */
export async function sweepStaleRunDirs(options: SweepOptions = {}): Promise<string[]> {
  const base = options.base ?? defaultBase();
  const uid = Deno.uid();
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(base)];
  } catch {
    return removed;
  }
  for (const entry of entries) {
    if (!entry.isDirectory || !entry.name.startsWith(RUN_DIR_PREFIX)) continue;
    const path = `${base}/${entry.name}`;
    try {
      const info = Deno.lstatSync(path);
      if (!info.isDirectory || info.uid !== uid) continue;
      const owner = readOwner(`${path}/${OWNER_FILE}`);
      if (owner === null) {
        // No owner file: being created right now, or left by a crash; wait a minute to be sure.
        const age = Date.now() - (info.mtime?.getTime() ?? Date.now());
        if (age < 60_000) continue;
      }
      if (owner !== null && owner !== "" && ownerAlive(owner)) continue;
      await Deno.remove(path, { recursive: true });
      removed.push(path);
    } catch {
      // Vanished or not ours to remove: leave it.
    }
  }
  return removed;
}

/**
 * The owner stamp, "" for something that is not one (a FIFO, a symlink, a
 * directory, a large file: never opened, so it cannot block the sweep), or
 * null when there is no owner file.
 */
function readOwner(path: string): string | null {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch {
    return null;
  }
  if (!info.isFile || info.size > MAX_OWNER_SIZE) return "";
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return "";
  }
}

function ownerAlive(owner: string): boolean {
  const pid = Number.parseInt(owner.split(" ")[0], 10);
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  const now = ownerStamp(pid);
  return now !== null && (now === owner || !owner.includes(" "));
}

/** `PID STARTTIME` (field 22 of /proc/PID/stat), or null when the process does not exist. */
function ownerStamp(pid: number): string | null {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  // The command name (field 2) may contain spaces and parentheses: count from the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return `${pid} ${fields[19]}`;
}

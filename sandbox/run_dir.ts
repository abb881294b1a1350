/**
 * The private directory of one run: `/tmp/sandbox-run-XXXXXX`, mode 0700,
 * with an unguessable name. It holds the proxy's unix socket (and the MITM
 * CA bundle); inside the sandbox `/tmp` is an empty tmpfs, so the command
 * can neither reach nor replace it. `TMPDIR` is not used: it may point into
 * a directory the sandbox shows (or makes writable), or be long enough to
 * push the socket's path past the 108 bytes a unix socket address holds.
 * `sandbox run --dry-run` shows the same parent ({@linkcode runDirPlaceholder}).
 *
 * A launcher killed with SIGKILL cannot clean up: each directory records its
 * owner (pid and process start time), and every new run first removes the
 * directories whose owner is gone.
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
  /** Parent directory (default {@linkcode RUN_DIR_BASE}). */
  readonly base?: string;
}

/** Prefix of every run directory's name. */
export const RUN_DIR_PREFIX = "sandbox-run-";

/** The parent of every run directory, whatever `TMPDIR` says. */
export const RUN_DIR_BASE = "/tmp";

/**
 * The run directory's path as a plan shows it before one exists (for
 * `--dry-run`): the same parent as {@linkcode createRunDir}, `XXXXXX` for
 * the random part.
 *
 * @example
 * ```ts
 * runDirPlaceholder(); // "/tmp/sandbox-run-XXXXXX"
 * ```
 */
export function runDirPlaceholder(options: CreateRunDirOptions = {}): string {
  return `${options.base ?? RUN_DIR_BASE}/${RUN_DIR_PREFIX}XXXXXX`;
}
const OWNER_FILE = "owner";

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
  const base = options.base ?? RUN_DIR_BASE;
  await sweepStaleRunDirs({ base });
  let path: string;
  try {
    path = Deno.makeTempDirSync({ dir: base, prefix: RUN_DIR_PREFIX });
  } catch (error) {
    const why = error instanceof Error ? error.message.replace(/: tmpdir$/, "") : String(error);
    throw new SandboxError(
      "io",
      `Cannot create the run directory in "${base}": ${why}: the launcher needs a writable "${base}" for the proxy socket`,
      { cause: error },
    );
  }
  try {
    Deno.chmodSync(path, 0o700);
    Deno.writeTextFileSync(`${path}/${OWNER_FILE}`, ownerStamp(Deno.pid) ?? `${Deno.pid}`, {
      mode: 0o600,
    });
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
  /** Parent directory (default {@linkcode RUN_DIR_BASE}). */
  readonly base?: string;
}

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
  const base = options.base ?? RUN_DIR_BASE;
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
      if (info.uid !== uid) continue;
      let owner: string;
      try {
        owner = Deno.readTextFileSync(`${path}/${OWNER_FILE}`).trim();
      } catch {
        // No owner file: being created right now, or left by a crash; wait a minute to be sure.
        const age = Date.now() - (info.mtime?.getTime() ?? Date.now());
        if (age < 60_000) continue;
        owner = "";
      }
      if (owner !== "" && ownerAlive(owner)) continue;
      await Deno.remove(path, { recursive: true });
      removed.push(path);
    } catch {
      // Vanished or not ours to remove: leave it.
    }
  }
  return removed;
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

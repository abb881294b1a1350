/**
 * Opening the files the launcher writes (the decision log, the GitHub step
 * summary, a learned profile) without following a symlink at the last
 * component and without writing into a file that is not what the path
 * names. A sandboxed command can often write the directory such a file
 * lies in; had it replaced the file by a symlink to `~/.bashrc` (or a hard
 * link to it), a plain `open()` would append the launcher's text there on
 * the next run.
 *
 * Deno's `open()` has no `O_NOFOLLOW`; the same guarantee comes from two
 * steps: a missing file is created with `O_CREAT|O_EXCL` (`createNew`),
 * which never follows a symlink; an existing one is `lstat`ed (a regular
 * file with one link, not a symlink), opened without `O_CREAT`, and its
 * `fstat` must show the same device and inode, else nothing is written. A
 * FIFO put in its place between the two steps could still hold the open
 * up; the launcher's own read-only bind over the file (while a run lasts)
 * keeps the command from doing that.
 *
 * @module
 */
import { SandboxError } from "./errors.ts";

/** Options for {@linkcode openNoFollow}. */
export interface OpenNoFollowOptions {
  /** Also open for reading. */
  readonly read?: boolean;
  /** Append (default: write from the start). */
  readonly append?: boolean;
  /** Empty an existing file after it was checked. */
  readonly truncate?: boolean;
  /** Permission bits of a file created here (default 0o600). */
  readonly mode?: number;
  /** What the file is, for messages (default "file"). */
  readonly what?: string;
}

/**
 * Opens `path` for writing, creating it when missing, never through a
 * symlink and never into a file with other hard links or of another kind.
 * Throws {@linkcode SandboxError} (`io`) naming the path and why.
 *
 * @example
 * ```ts
 * using file = openNoFollow("decisions.jsonl", { append: true, what: "decision log" });
 * file.writeSync(new TextEncoder().encode("{}\n"));
 * ```
 */
export function openNoFollow(path: string, options: OpenNoFollowOptions = {}): Deno.FsFile {
  const what = options.what ?? "file";
  const refuse = (why: string, cause?: unknown) =>
    new SandboxError(
      "io",
      `Cannot write the ${what} "${path}": ${why}: remove it, or choose another path`,
      { cause },
    );
  for (let attempt = 0; attempt < 3; attempt++) {
    let before: Deno.FileInfo;
    try {
      before = Deno.lstatSync(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw refuse(String(error), error);
      try {
        return Deno.openSync(path, {
          read: options.read ?? false,
          write: true,
          append: options.append ?? false,
          createNew: true,
          mode: options.mode ?? 0o600,
        });
      } catch (createError) {
        // Something appeared in between (a symlink, say): look again.
        if (createError instanceof Deno.errors.AlreadyExists) continue;
        throw refuse(errorText(createError), createError);
      }
    }
    if (before.isSymlink) {
      throw refuse("it is a symlink, and the launcher does not write through one");
    }
    if (!before.isFile) throw refuse("it is not a regular file");
    if ((before.nlink ?? 1) > 1) {
      throw refuse(`it has ${before.nlink} hard links, so it may be another file's other name`);
    }
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, {
        read: options.read ?? false,
        write: true,
        append: options.append ?? false,
      });
    } catch (error) {
      throw refuse(errorText(error), error);
    }
    const after = file.statSync();
    if (after.dev !== before.dev || after.ino !== before.ino || !after.isFile) {
      file.close();
      throw refuse("it was replaced while it was being opened");
    }
    if (options.truncate === true) file.truncateSync(0);
    return file;
  }
  throw refuse("it keeps changing while it is being opened");
}

/**
 * Writes `text` to `path` through {@linkcode openNoFollow}.
 *
 * @example
 * ```ts
 * writeTextNoFollow("$GITHUB_STEP_SUMMARY", "## sandbox\n", { append: true });
 * ```
 */
export function writeTextNoFollow(
  path: string,
  text: string,
  options: OpenNoFollowOptions = {},
): void {
  using file = openNoFollow(path, options);
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset));
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

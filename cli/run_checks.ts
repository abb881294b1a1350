/**
 * Checks and small adjustments `sandbox run` and `sandbox learn` make to
 * their flags before anything starts: `--writable` paths made absolute,
 * a `--log` file whose directory is missing refused as a usage error, and
 * where the `--json` report must start so that it is a line of its own.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/**
 * `--writable` values with relative paths made absolute against `cwd`
 * (`~/` paths stay for the loader to expand); undefined stays undefined.
 */
export function absoluteWritable(
  paths: unknown,
  cwd: string,
): string[] | undefined {
  if (!Array.isArray(paths)) return undefined;
  return paths.map((path: string) =>
    path.startsWith("/") || path === "~" || path.startsWith("~/")
      ? path
      : `${cwd.replace(/\/$/, "")}/${path}`
  );
}

/**
 * Refuses (exit 2) a `--log FILE` that cannot be opened for appending
 * because its directory is missing or is not a directory, before the run
 * starts: found after the command ran, it would cost the run's decisions.
 */
export function checkLogFile(path: string, cwd: string, command: string): void {
  const file = path.startsWith("/") ? path : `${cwd.replace(/\/$/, "")}/${path}`;
  const dir = file.slice(0, file.lastIndexOf("/")) || "/";
  let problem: string | null = null;
  try {
    if (!Deno.statSync(dir).isDirectory) problem = `"${dir}" is not a directory`;
  } catch (error) {
    problem = error instanceof Deno.errors.NotFound
      ? `the directory "${dir}" does not exist`
      : `the directory "${dir}" cannot be read (${
        error instanceof Error ? error.message : String(error)
      })`;
  }
  if (problem !== null) {
    throw new UsageError(
      `Cannot write the decision log "${path}": ${problem}: create it or give --log a file in an existing directory`,
      { command },
    );
  }
}

/**
 * What to write before the `--json` report so that it starts a line of its
 * own: `""` when stdout is a file that is empty or ends in a newline, `"\n"`
 * when it ends mid-line, and `"\n"` for a pipe or terminal, whose last byte
 * the launcher cannot see (the command writes to it directly).
 */
export function stdoutLinePrefix(): string {
  try {
    const info = Deno.statSync("/proc/self/fd/1");
    if (!info.isFile) return "\n";
    if (info.size === 0) return "";
    using file = Deno.openSync("/proc/self/fd/1", { read: true });
    file.seekSync(-1, Deno.SeekMode.End);
    const last = new Uint8Array(1);
    return file.readSync(last) === 1 && last[0] === 0x0a ? "" : "\n";
  } catch {
    return "\n";
  }
}

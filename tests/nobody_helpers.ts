/**
 * Running `sandbox` as an unprivileged user (`nobody`, uid 65534) from a
 * root test: a copy of the test's Deno and its npm cache that nobody can
 * read, and the argv that starts `sandbox ARGS…` under `setpriv`.
 *
 * @module
 */
import { MAIN } from "./cli_helpers.ts";

/** uid and gid the unprivileged runs use. */
export const NOBODY = 65534;

/** Whether `nobody` may create user namespaces with bwrap here (needs root to switch). */
export function unprivilegedBwrapWorks(): boolean {
  if (Deno.uid() !== 0) return false;
  try {
    return new Deno.Command("/usr/bin/setpriv", {
      args: [
        `--reuid=${NOBODY}`,
        `--regid=${NOBODY}`,
        "--clear-groups",
        "/usr/bin/bwrap",
        "--unshare-user",
        "--unshare-net",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "/bin/true",
      ],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

/** A prepared unprivileged setup; dispose to remove its files. */
export interface Nobody extends AsyncDisposable {
  /** A 0755 temp dir holding the Deno copy; put the test's own dirs in it too. */
  readonly dir: string;
  /** Environment for the Deno copy (`DENO_DIR`); add HOME and PATH. */
  readonly denoEnv: Readonly<Record<string, string>>;
  /** argv that runs `sandbox ARGS…` as nobody. */
  argv(args: readonly string[]): string[];
  /** argv that runs the Deno script `path` (absolute) with `args` as nobody. */
  script(path: string, args?: readonly string[]): string[];
  /** Makes `path` (recursively) nobody's. */
  chown(path: string): Promise<void>;
}

/** Copies the test's Deno and npm cache where nobody can read them. */
export async function prepareNobody(): Promise<Nobody> {
  const dir = await Deno.makeTempDir({ prefix: "sandbox-nobody-" });
  await Deno.chmod(dir, 0o755);
  try {
    await Deno.link(Deno.execPath(), `${dir}/deno`);
  } catch {
    await Deno.copyFile(Deno.execPath(), `${dir}/deno`);
  }
  const home = Deno.env.get("HOME") ?? "/root";
  const denoDir = Deno.env.get("DENO_DIR") ?? `${home}/.cache/deno`;
  await Deno.mkdir(`${dir}/deno_dir`);
  await new Deno.Command("/bin/cp", { args: ["-r", `${denoDir}/npm`, `${dir}/deno_dir/`] })
    .output();
  const chown = async (path: string) => {
    await new Deno.Command("/bin/chown", { args: ["-R", `${NOBODY}:${NOBODY}`, path] }).output();
  };
  await chown(`${dir}/deno_dir`);
  const script = (path: string, args: readonly string[] = []) => [
    "/usr/bin/setpriv",
    `--reuid=${NOBODY}`,
    `--regid=${NOBODY}`,
    "--clear-groups",
    `${dir}/deno`,
    "run",
    "-A",
    "--no-prompt",
    "--quiet",
    path,
    ...args,
  ];
  return {
    dir,
    denoEnv: { DENO_DIR: `${dir}/deno_dir` },
    argv: (args) => script(MAIN, args),
    script,
    chown,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

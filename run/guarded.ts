/**
 * The launcher's own paths that a sandboxed command must not reach: what it
 * reads for policy (the config files of the run), what it writes (the
 * decision log, a learned profile, CI runner files), its own installation
 * (the checkout or binary, Deno and its caches), which all become read-only
 * inside, and the MITM CA, which is hidden. Nothing the command does in one
 * run can then change what a later run loads, executes or writes through.
 *
 * @module
 */
import { SandboxError } from "../errors.ts";
import type { EffectiveConfig } from "../profiles/types.ts";
import { plantedSymlink } from "../sandbox/build_plan.ts";
import { selfInvocation } from "../self.ts";

/**
 * The files a GitHub Actions runner reads back after a step (variables,
 * outputs, PATH entries, state, the job summary): written by a command, they
 * steer every later step of the job, outside any sandbox.
 */
export const RUNNER_FILE_VARS: readonly string[] = Object.freeze([
  "GITHUB_ENV",
  "GITHUB_OUTPUT",
  "GITHUB_PATH",
  "GITHUB_STATE",
  "GITHUB_STEP_SUMMARY",
]);

/** Options for {@linkcode guardedPaths}. */
export interface GuardedPathsOptions {
  /** The launcher's environment. */
  readonly env: Readonly<Record<string, string>>;
  /** The command's working directory (absolute). */
  readonly cwd: string;
  /** `--log FILE`, as given. */
  readonly logFile?: string | null;
  /** `--ca-dir DIR`, as given. */
  readonly caDir?: string | null;
  /** More files the caller writes after the run (a learned profile). */
  readonly extra?: readonly string[];
}

/** What {@linkcode guardedPaths} found. */
export interface GuardedPaths {
  /** Existing paths, canonical, to keep read-only inside (see `SandboxPlan.protect`). */
  readonly protect: readonly string[];
  /** Paths to hide inside (the CA directories and key files), added to `denyRead`. */
  readonly hide: readonly string[];
}

/**
 * Lists the launcher's paths for one run, and refuses (SandboxError
 * `sandbox_failed`) when one of them goes through a symlink inside a
 * directory the command can write: an earlier run may have planted it to
 * point the launcher elsewhere.
 *
 * @example
 * ```ts
 * const { protect, hide } = guardedPaths(config, { env, cwd, logFile: "decisions.jsonl" });
 * ```
 */
export function guardedPaths(config: EffectiveConfig, options: GuardedPathsOptions): GuardedPaths {
  const { env, cwd } = options;
  const absolute = (path: string) =>
    path.startsWith("/") ? path : `${cwd.replace(/\/$/, "")}/${path}`;
  const areas = [cwd, ...config.filesystem.writable];
  const written: string[] = [];
  if (options.logFile) written.push(absolute(options.logFile));
  for (const name of RUNNER_FILE_VARS) {
    const value = env[name];
    if (value !== undefined && value.startsWith("/")) written.push(value);
  }
  written.push(...(options.extra ?? []).map(absolute));
  const read = [...config.files.map(absolute)];
  for (const path of [...read, ...written]) {
    const link = plantedSymlink(path, areas);
    if (link === null) continue;
    throw new SandboxError(
      "sandbox_failed",
      `Cannot use "${path}": "${link}" is a symlink inside a directory the sandbox can write, so ` +
        "an earlier command may have planted it to point the launcher elsewhere: remove it, or " +
        "use the real path",
    );
  }
  const self = selfInvocation();
  const installation = [...self.readPaths];
  const denoDir = env.DENO_DIR ?? (env.HOME ? `${env.HOME.replace(/\/$/, "")}/.cache/deno` : null);
  if (self.kind === "script" && denoDir !== null) installation.push(denoDir);
  const protect = new Set<string>();
  for (const path of [...read, ...installation]) {
    const real = realPath(path);
    if (real !== null) protect.add(real);
  }
  // A file the launcher writes may not exist yet (the log is created before the sandbox starts).
  for (const path of written) {
    const slash = path.lastIndexOf("/");
    const parent = realPath(path.slice(0, slash) || "/");
    const real = realPath(path) ??
      (parent === null ? null : `${parent.replace(/\/$/, "")}${path.slice(slash)}`);
    if (real !== null) protect.add(real);
  }
  const hide = new Set<string>();
  for (const dir of [options.caDir ?? null, defaultCaDir(env)]) {
    if (dir === null) continue;
    hide.add(absolute(dir).replace(/\/+$/, ""));
  }
  if (config.network.mitmCa !== null) hide.add(absolute(config.network.mitmCa.key));
  return { protect: [...protect], hide: [...hide] };
}

/**
 * The default CA directory, by the same rule as `defaultCaDir()` in
 * proxy/ca.ts (not imported: that module brings the TLS libraries into
 * every run), or null when neither variable is an absolute path.
 */
function defaultCaDir(env: Readonly<Record<string, string>>): string | null {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg !== undefined && xdg.startsWith("/")) return `${xdg.replace(/\/+$/, "")}/sandbox/ca`;
  const home = env.HOME;
  if (home !== undefined && home.startsWith("/")) {
    return `${home.replace(/\/+$/, "")}/.config/sandbox/ca`;
  }
  return null;
}

function realPath(path: string): string | null {
  try {
    return Deno.realPathSync(path);
  } catch {
    return null;
  }
}

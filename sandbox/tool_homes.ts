/**
 * Tool homes: the cache directories package managers and toolchains write
 * under HOME (`~/.npm`, `~/.cache/pip`, `~/.cargo/registry`, …), given to the
 * sandboxed command as writable directories of a per-user *sandbox home*
 * (`~/.cache/sandbox/homes/NAME`) bound over their default paths.
 *
 * Why this design: the command sees its tools' default locations (no
 * variables that change what `npm config get cache` says), what it writes
 * there persists from one sandboxed run to the next (the second `npm ci` is
 * served from the cache), and none of it is ever read by an unsandboxed tool:
 * the host's own `~/.npm` is covered inside, and the sandbox home is a path
 * no tool reads by default. A poisoned cache entry written by one sandboxed
 * run can reach later sandboxed runs only. bwrap's copy-on-write overlays
 * (`--overlay-src`, `--tmp-overlay`) would be the other way, but they came
 * with bubblewrap 0.9 and Debian's 0.8 has none.
 *
 * A tool home is used when its directory already exists on the host or one
 * of its tool's commands is on PATH; the empty mount point is then created on
 * the host when it is missing (a read-only root cannot get a new directory
 * inside the sandbox), never anything in it.
 *
 * @module
 */
import { SandboxError } from "../errors.ts";
import { isUnder } from "./unix_sockets.ts";

/** One entry of {@linkcode TOOL_HOMES}. */
export interface ToolHomeSpec {
  /** Name of the tool home (also its directory under the sandbox home). */
  readonly name: string;
  /** What the path is relative to: HOME, `$XDG_CACHE_HOME` (`~/.cache`) or `$XDG_DATA_HOME` (`~/.local/share`). */
  readonly base: "home" | "cache" | "data" | "pyenv";
  /** The path below `base`. */
  readonly path: string;
  /** Commands whose presence on PATH makes the tool home worth creating. */
  readonly commands: readonly string[];
  /**
   * `scratch`: a throwaway view of the host directory, used only when the directory exists: inside,
   * a fresh tmpfs holding one symlink per host entry into a read-only bind of the host directory
   * ({@linkcode SCRATCH_VIEW}). For state a tool insists on writing (pyenv rewrites its shims
   * after every `pip install` and fails when it cannot) that must neither persist nor flow out.
   * bwrap builds it in memory: no file is copied on the host (a copy of pyenv's 136 shims cost
   * ~25 ms of every run's start-up on ext4). Default: a persistent directory of the sandbox home.
   */
  readonly kind?: "scratch";
}

/** The tool homes, in the order they are bound. */
export const TOOL_HOMES: readonly ToolHomeSpec[] = Object.freeze(([
  { name: "npm", base: "home", path: ".npm", commands: ["npm", "npx"] },
  { name: "pnpm-store", base: "data", path: "pnpm/store", commands: ["pnpm", "npm", "corepack"] },
  { name: "pnpm-cache", base: "cache", path: "pnpm", commands: ["pnpm", "npm", "corepack"] },
  { name: "yarn-cache", base: "cache", path: "yarn", commands: ["yarn", "corepack"] },
  { name: "yarn-berry", base: "home", path: ".yarn/berry", commands: ["yarn", "corepack"] },
  { name: "corepack", base: "cache", path: "node/corepack", commands: ["corepack"] },
  { name: "node-gyp", base: "cache", path: "node-gyp", commands: ["npm"] },
  { name: "pip", base: "cache", path: "pip", commands: ["pip", "pip3", "python3"] },
  { name: "pyenv-shims", base: "pyenv", path: "shims", commands: [], kind: "scratch" },
  { name: "uv-cache", base: "cache", path: "uv", commands: ["uv"] },
  { name: "uv-data", base: "data", path: "uv", commands: ["uv"] },
  { name: "deno", base: "cache", path: "deno", commands: ["deno"] },
  { name: "cargo-registry", base: "home", path: ".cargo/registry", commands: ["cargo"] },
  { name: "cargo-git", base: "home", path: ".cargo/git", commands: ["cargo"] },
  { name: "go-mod", base: "home", path: "go/pkg/mod", commands: ["go"] },
  { name: "go-build", base: "cache", path: "go-build", commands: ["go"] },
  { name: "gradle-caches", base: "home", path: ".gradle/caches", commands: ["gradle"] },
  { name: "gradle-wrapper", base: "home", path: ".gradle/wrapper", commands: ["gradle"] },
  { name: "maven", base: "home", path: ".m2/repository", commands: ["mvn"] },
] satisfies ToolHomeSpec[]).map((spec) => Object.freeze(spec)));

/** A tool home chosen for a run. */
export interface ToolHome {
  /** {@linkcode ToolHomeSpec.name}. */
  readonly name: string;
  /** The tool's default path (absolute), where the command sees it. */
  readonly target: string;
  /** The directory of the sandbox home bound there (absolute); for a scratch view, the host's own directory. */
  readonly source: string;
  /**
   * Present for a throwaway view ({@linkcode ToolHomeSpec.kind} `scratch`): the names in the host
   * directory when the run was planned, each linked from the view's tmpfs.
   */
  readonly scratch?: { readonly entries: readonly string[] };
}

/**
 * The name, inside a scratch view's tmpfs, of the read-only bind of the host directory its
 * symlinks point into (relative links, so the view works wherever it is mounted). A dot name:
 * the tools list their directory with `*`, which leaves it out.
 */
export const SCRATCH_VIEW = ".sandbox-host";

/** What {@linkcode planToolHomes} needs to know about the host. */
export interface ToolHomeFacts {
  /** Whether `path` exists on the host (as anything). */
  readonly exists: (path: string) => boolean;
  /** Whether `command` is found on the command's PATH. */
  readonly onPath: (command: string) => boolean;
  /** The names in directory `path`, or null when it cannot be listed (missing, not a directory). */
  readonly list?: (path: string) => readonly string[] | null;
}

/** Options for {@linkcode planToolHomes}. */
export interface PlanToolHomesOptions extends ToolHomeFacts {
  /** Paths the run makes writable itself (cwd excepted): a tool home under one is shared, not covered. */
  readonly writable: readonly string[];
}

/**
 * The sandbox home of the user: `$XDG_CACHE_HOME/sandbox/homes`, else
 * `$HOME/.cache/sandbox/homes`; null when neither is an absolute path.
 */
export function sandboxHomeDir(env: Readonly<Record<string, string>>): string | null {
  const base = cacheBase(env);
  return base === null ? null : `${base}/sandbox/homes`;
}

/**
 * Picks the tool homes of a run. Pure: the host comes in as `facts`. A tool
 * home under (or equal to) a path the user made writable is left out: that
 * user chose to share the real directory (`--writable ~/.npm`).
 *
 * @example
 * ```ts
 * const homes = planToolHomes({ HOME: "/home/a" }, {
 *   exists: () => false,
 *   onPath: (c) => c === "npm",
 *   writable: [],
 * });
 * // homes[0] = { name: "npm", target: "/home/a/.npm", source: "/home/a/.cache/sandbox/homes/npm" }
 * ```
 */
export function planToolHomes(
  env: Readonly<Record<string, string>>,
  options: PlanToolHomesOptions,
): ToolHome[] {
  const home = absolute(env.HOME);
  const sandboxHome = sandboxHomeDir(env);
  if (home === null || sandboxHome === null) return [];
  const bases = {
    home,
    cache: cacheBase(env) ?? `${home}/.cache`,
    data: absolute(env.XDG_DATA_HOME) ?? `${home}/.local/share`,
    pyenv: absolute(env.PYENV_ROOT) ?? `${home}/.pyenv`,
  };
  const homes: ToolHome[] = [];
  for (const spec of TOOL_HOMES) {
    const target = `${bases[spec.base]}/${spec.path}`;
    if (isUnder(target, sandboxHome) || isUnder(sandboxHome, target)) continue;
    if (options.writable.some((dir) => isUnder(target, dir))) continue;
    if (spec.kind === "scratch") {
      const names = options.list?.(target) ?? null;
      if (names === null) continue;
      const entries = names.filter((name) => name !== SCRATCH_VIEW).sort();
      homes.push({ name: spec.name, target, source: target, scratch: { entries } });
      continue;
    }
    if (!options.exists(target) && !spec.commands.some(options.onPath)) continue;
    homes.push({ name: spec.name, target, source: `${sandboxHome}/${spec.name}` });
  }
  return homes;
}

/**
 * The host facts for {@linkcode planToolHomes}: `lstat` for existence, and
 * the directories of `path` (a PATH value) for commands.
 */
export function hostToolHomeFacts(path: string | undefined): ToolHomeFacts {
  const dirs = (path ?? "").split(":").filter((dir) => dir.startsWith("/"));
  const exists = (file: string) => {
    try {
      Deno.lstatSync(file);
      return true;
    } catch {
      return false;
    }
  };
  const found = new Map<string, boolean>();
  const list = (dir: string) => {
    try {
      return [...Deno.readDirSync(dir)].map((entry) => entry.name);
    } catch {
      return null;
    }
  };
  return {
    exists,
    list,
    onPath: (command) => {
      let hit = found.get(command);
      if (hit === undefined) {
        hit = dirs.some((dir) => exists(`${dir}/${command}`));
        found.set(command, hit);
      }
      return hit;
    },
  };
}

/**
 * Creates what the binds of `homes` need on the host: each sandbox home
 * directory (mode 0700) and each missing mount point (empty, mode 0700).
 * Refuses, with {@linkcode SandboxError} (`sandbox_failed`), a sandbox home
 * directory that is a symlink or not a directory (a sandboxed command that
 * could write there may have planted it to get another directory bound
 * writable), or one owned by another user.
 */
export function prepareToolHomes(
  homes: readonly ToolHome[],
  options: { readonly uid: number | null },
): void {
  for (const home of homes) {
    // A scratch view is built by bwrap in the sandbox's memory: nothing to make on the host.
    if (home.scratch !== undefined) continue;
    Deno.mkdirSync(home.source, { recursive: true, mode: 0o700 });
    // The source, the sandbox home and its parent are the launcher's: none may be a symlink.
    const parts = [home.source, parentOf(home.source), parentOf(parentOf(home.source))];
    for (const path of parts) {
      const info = Deno.lstatSync(path);
      const problem = info.isSymlink
        ? "it is a symlink"
        : !info.isDirectory
        ? "it is not a directory"
        : options.uid !== null && info.uid !== null && info.uid !== options.uid
        ? `it belongs to uid ${info.uid}`
        : null;
      if (problem !== null) {
        throw new SandboxError(
          "sandbox_failed",
          `Cannot use the tool home "${home.source}" for "${home.target}": "${path}": ${problem}: ` +
            "remove it (the launcher makes a fresh one)",
        );
      }
    }
    try {
      Deno.statSync(home.target);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      Deno.mkdirSync(home.target, { recursive: true, mode: 0o700 });
    }
  }
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

function cacheBase(env: Readonly<Record<string, string>>): string | null {
  const xdg = absolute(env.XDG_CACHE_HOME);
  if (xdg !== null) return xdg;
  const home = absolute(env.HOME);
  return home === null ? null : `${home}/.cache`;
}

function absolute(path: string | undefined): string | null {
  if (path === undefined || !path.startsWith("/")) return null;
  const trimmed = path.replace(/\/+$/, "");
  return trimmed === "" ? null : trimmed;
}

/** Options for {@linkcode prepareHostPaths}. */
export interface PrepareHostPathsOptions {
  /** The launcher's uid (tool homes must be its own); null to skip the owner check. */
  readonly uid: number | null;
  /** Told about each writable path that was missing and has been created. */
  readonly onCreated?: (path: string) => void;
}

/**
 * Makes the host ready for a plan's binds, just before the sandbox starts:
 * a writable path that does not exist is created as an empty directory
 * (mode 0700, parents too) and reported through `onCreated`, because bwrap
 * cannot bind a missing path and skipping it would leave the command with a
 * read-only or missing directory it was promised; the tool homes are
 * prepared with {@linkcode prepareToolHomes}. Throws
 * {@linkcode SandboxError} (`sandbox_failed`) when a path cannot be created.
 */
export function prepareHostPaths(
  plan: { readonly writable: readonly string[]; readonly toolHomes?: readonly ToolHome[] },
  options: PrepareHostPathsOptions,
): void {
  for (const path of plan.writable) {
    try {
      Deno.statSync(path);
      continue;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        throw new SandboxError(
          "sandbox_failed",
          `Cannot make "${path}" writable: ${
            error instanceof Error ? error.message : String(error)
          }: fix the path or remove it from the writable paths`,
          { cause: error },
        );
      }
    }
    try {
      Deno.mkdirSync(path, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new SandboxError(
        "sandbox_failed",
        `Cannot make "${path}" writable: it does not exist and creating it failed: ${
          error instanceof Error ? error.message : String(error)
        }: create it yourself or remove it from the writable paths`,
        { cause: error },
      );
    }
    options.onCreated?.(path);
  }
  prepareToolHomes(plan.toolHomes ?? [], { uid: options.uid });
}

/**
 * Everything the compiled binary does differently from `deno run main.ts`
 * goes through here: how the launcher starts itself again (the bridge and
 * the execpolicy shim run as `sandbox __bridge …` / `sandbox __shim …`).
 * Tests run under `deno run` and exercise this same path, and both branches
 * through {@linkcode SelfInvocationOptions.standalone}.
 *
 * Nothing else differs: the code reads no file of its own at run time
 * (presets and defaults are TS data), except the shell grammar's WASM
 * ({@linkcode bundledFile}, embedded by `deno compile --include`), so the
 * binary needs no file beside it. `tests/compile_test.ts` keeps it that way:
 * no other module may look at `import.meta.url`.
 *
 * @module
 */

/** How this program was started. */
export interface SelfInvocation {
  /** `compiled` when running as the `deno compile` binary, `script` under `deno run`. */
  readonly kind: "compiled" | "script";
  /** argv prefix that starts this program again; append the subcommand and its arguments. */
  readonly argv: readonly string[];
  /** Files the sandbox must be able to read for `argv` to work (the binary, or Deno, the sources and the npm cache). */
  readonly readPaths: readonly string[];
}

/** Options for {@linkcode selfInvocation}, for tests. */
export interface SelfInvocationOptions {
  /** Defaults to `Deno.execPath()`. */
  execPath?: string;
  /** Defaults to the URL of `main.ts` beside this file. */
  mainModule?: URL;
  /** Whether this is a `deno compile` binary; defaults to `Deno.build.standalone`. */
  standalone?: boolean;
}

/**
 * Returns the argv prefix that starts this program again.
 *
 * @example
 * ```ts
 * const self = selfInvocation();
 * const argv = [...self.argv, "__bridge", "--help"];
 * ```
 */
export function selfInvocation(options: SelfInvocationOptions = {}): SelfInvocation {
  const execPath = options.execPath ?? Deno.execPath();
  const mainModule = options.mainModule ?? new URL("./main.ts", import.meta.url);
  // Deno says so itself (Deno.build.standalone). File checks cannot tell: a
  // compiled binary serves its embedded sources from a virtual file system
  // at their original paths. A non-file main module cannot be re-run by path.
  const isCompiled = (options.standalone ?? Deno.build.standalone) ||
    mainModule.protocol !== "file:";
  if (isCompiled) {
    return { kind: "compiled", argv: [execPath], readPaths: [execPath] };
  }
  const mainPath = decodeURIComponent(mainModule.pathname);
  const projectDir = mainPath.slice(0, mainPath.lastIndexOf("/"));
  return {
    kind: "script",
    argv: [execPath, "run", "-A", "--no-prompt", "--quiet", mainPath],
    readPaths: [execPath, projectDir],
  };
}

/** The variable `deno task sandbox` sets to the directory the user ran it from. */
export const TASK_CWD_ENV = "SANDBOX_TASK_CWD";

/**
 * Returns the directory `deno task sandbox` was typed in, or null when the
 * program was not started by the task (or the task ran with no `INIT_CWD`).
 * Removes the variable from the environment either way, so it reaches
 * neither the sandboxed command nor the launcher's own helpers (the
 * execpolicy shim re-runs this program inside the sandbox, in the
 * command's directory).
 */
export function taskWorkingDirectory(): string | null {
  const value = Deno.env.get(TASK_CWD_ENV);
  if (value === undefined) return null;
  Deno.env.delete(TASK_CWD_ENV);
  return value.startsWith("/") ? value : null;
}

/**
 * A file of this program that is not a module (the tree-sitter-bash WASM),
 * by its path from the project root; `deno compile` embeds it (INCLUDE in
 * `tools/compile.ts`) at the same path.
 *
 * @example
 * ```ts
 * const wasm = await Deno.readFile(bundledFile("node_modules/tree-sitter-bash/tree-sitter-bash.wasm"));
 * ```
 */
export function bundledFile(path: string): URL {
  return new URL(`./${path}`, import.meta.url);
}

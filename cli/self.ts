/**
 * Everything the compiled binary does differently from `deno run main.ts`
 * goes through here: how the launcher starts itself again (the bridge and
 * the execpolicy shim run as `sandbox __bridge …` / `sandbox __shim …`).
 * Tests run under `deno run` and exercise this same path.
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
  /** Defaults to the URL of `main.ts` next to this folder. */
  mainModule?: URL;
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
  const mainModule = options.mainModule ?? new URL("../main.ts", import.meta.url);
  // A compiled binary runs its embedded modules from a virtual file system whose
  // URLs are not the original source paths; `deno run` has real file: URLs.
  const isCompiled = mainModule.protocol !== "file:" ||
    !fileExists(mainModule) ||
    (Deno as unknown as { build: { standalone?: boolean } }).build.standalone === true;
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

function fileExists(url: URL): boolean {
  try {
    return Deno.statSync(url).isFile;
  } catch {
    return false;
  }
}

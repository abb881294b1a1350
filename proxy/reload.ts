/**
 * Config reload for a running proxy: when a loaded config file changes (a
 * `Deno.watchFs` watch on the files' directories, so editors that replace
 * files are seen too) or on SIGHUP, the configuration is loaded again with
 * the original flags and handed to the proxy; new connections get the new
 * policy. A broken new config keeps the old one and says why on stderr.
 *
 * @example
 * ```ts
 * await using reloader = watchConfig({
 *   flags,
 *   files: config.files,
 *   apply: (next) => proxy.updateConfig(next),
 * });
 * ```
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import type { ConfigFlags } from "../profiles/flags.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import type { EffectiveConfig } from "../profiles/types.ts";

/** Options for {@linkcode watchConfig}. */
export interface WatchConfigOptions {
  /** The shared flags the configuration was first loaded with. */
  flags: ConfigFlags;
  /** The config files to watch (the loaded config's `files`). */
  files: readonly string[];
  /** Applies a newly loaded config (e.g. `proxy.updateConfig`); may throw to refuse it. */
  apply: (config: EffectiveConfig) => void;
  /** Loads the configuration (default: `loadEffectiveConfig(flags)`). */
  load?: (flags: ConfigFlags) => Promise<EffectiveConfig>;
  /** Where messages go (default: stderr). */
  report?: (message: string) => void;
  /** Listen for SIGHUP (default true). */
  sighup?: boolean;
  /** Wait this long after a change before reloading, to let an editor finish (default 100 ms). */
  debounceMs?: number;
}

/** A running watch. */
export interface ConfigWatch extends AsyncDisposable {
  /** Loads and applies now; resolves true when the new config was applied. */
  reload(): Promise<boolean>;
  /** How many reloads were applied so far. */
  readonly applied: number;
  /** Stops watching. */
  close(): Promise<void>;
}

function directoryOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash <= 0 ? "/" : path.slice(0, slash);
}

function absolute(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
}

/** Watches the config files and SIGHUP; see the module docs. */
export function watchConfig(options: WatchConfigOptions): ConfigWatch {
  const load = options.load ?? ((flags: ConfigFlags) => loadEffectiveConfig(flags));
  const report = options.report ?? ((message: string) => console.error(message));
  const debounceMs = options.debounceMs ?? 100;
  let files = new Set(options.files.map(absolute));
  let watcher: Deno.FsWatcher | null = null;
  let watchLoop: Promise<void> = Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  let applied = 0;
  let running: Promise<boolean> | null = null;
  let again = false;

  const reloadOnce = async (): Promise<boolean> => {
    let config: EffectiveConfig;
    try {
      config = await load(options.flags);
      options.apply(config);
    } catch (error) {
      const why = errorMessage(error);
      report(`sandbox: Config reload failed, keeping the previous policy: ${why}`);
      return false;
    }
    applied++;
    report(`sandbox: Config reloaded (${config.files.length} file(s))`);
    const next = new Set(config.files.map(absolute));
    if ([...next].some((f) => !files.has(f)) || [...files].some((f) => !next.has(f))) {
      files = next;
      restartWatcher();
    }
    return true;
  };

  const reload = async (): Promise<boolean> => {
    if (running !== null) {
      // A change during a reload: run once more afterwards so the last edit wins.
      again = true;
      return running;
    }
    running = (async () => {
      let result = await reloadOnce();
      while (again && !closed) {
        again = false;
        result = await reloadOnce();
      }
      return result;
    })();
    try {
      return await running;
    } finally {
      running = null;
    }
  };

  const schedule = () => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void reload();
    }, debounceMs);
  };

  function restartWatcher(): void {
    try {
      watcher?.close();
    } catch {
      // Already closed.
    }
    watcher = null;
    if (closed || files.size === 0) return;
    const dirs = [...new Set([...files].map(directoryOf))].filter((dir) => {
      try {
        return Deno.statSync(dir).isDirectory;
      } catch {
        return false;
      }
    });
    if (dirs.length === 0) return;
    let current: Deno.FsWatcher;
    try {
      current = Deno.watchFs(dirs, { recursive: false });
    } catch (error) {
      report(
        `sandbox: Cannot watch the config files: ${error instanceof Error ? error.message : error}`,
      );
      return;
    }
    watcher = current;
    const previous = watchLoop;
    watchLoop = (async () => {
      await previous;
      try {
        for await (const event of current) {
          if (event.kind === "access") continue;
          if (event.paths.some((path) => files.has(path))) schedule();
        }
      } catch {
        // Closed.
      }
    })();
  }

  const onSighup = () => void reload();
  const sighup = options.sighup ?? true;
  if (sighup) Deno.addSignalListener("SIGHUP", onSighup);
  restartWatcher();

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    if (sighup) Deno.removeSignalListener("SIGHUP", onSighup);
    try {
      watcher?.close();
    } catch {
      // Already closed.
    }
    await watchLoop;
    if (running !== null) await running;
  };
  return {
    reload,
    get applied() {
      return applied;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * The command dispatcher: picks the subcommand, prints help and version, and
 * turns every error into a message on stderr and an exit code. It never
 * exits the process itself; `main.ts` does.
 *
 * @module
 */
import { ConfigError, SandboxError, UsageError } from "../errors.ts";
import { VERSION } from "../version.ts";

/** What a command module provides once loaded. */
interface LoadedCommand {
  readonly help: string;
  readonly subcommandHelp?: Readonly<Record<string, string>>;
  readonly run: (args: string[]) => Promise<number>;
}

/**
 * A subcommand: what it does (one line), how to load it, and its exit code
 * for a {@linkcode SandboxError}. Modules are imported only when their command
 * runs: loading every command (TLS and TOML libraries included) for each
 * start cost time and ~15 MiB that `sandbox proxy` and `sandbox run` pay for
 * their whole life.
 */
interface CommandEntry {
  readonly summary: string;
  readonly load: () => Promise<LoadedCommand>;
  /** Exit code for a {@linkcode SandboxError} (run and learn use 126, per CLI.md). */
  readonly failureCode: number;
  /** Internal entry points (the in-sandbox helpers) are not listed in help. */
  readonly hidden?: boolean;
}

const COMMANDS: Readonly<Record<string, CommandEntry>> = {
  run: {
    summary: "Run a command in the sandbox, network only through the proxy",
    load: async () => {
      const m = await import("./run.ts");
      return { help: m.RUN_HELP, run: m.runCommand };
    },
    failureCode: 126,
  },
  proxy: {
    summary: "Run the egress proxy alone, in the foreground",
    load: async () => {
      const m = await import("./proxy.ts");
      return { help: m.PROXY_HELP, run: m.proxyCommand };
    },
    failureCode: 1,
  },
  policy: {
    summary: "Show how the policy decides a host (policy host) or a command (policy check)",
    load: async () => {
      const m = await import("./policy.ts");
      return {
        help: m.POLICY_HELP,
        subcommandHelp: m.POLICY_SUBCOMMAND_HELP,
        run: m.policyCommand,
      };
    },
    failureCode: 1,
  },
  learn: {
    summary: "Run a command with public hosts allowed and write a profile of the hosts it used",
    load: async () => {
      const m = await import("./learn.ts");
      return { help: m.LEARN_HELP, run: m.learnCommand };
    },
    failureCode: 126,
  },
  init: {
    summary: "Create the local CA for limited-mode TLS inspection",
    load: async () => {
      const m = await import("./init.ts");
      return { help: m.INIT_HELP, run: m.initCommand };
    },
    failureCode: 1,
  },
  profile: {
    summary: "Show the effective policy (profile show) or check config files (profile validate)",
    load: async () => {
      const m = await import("./profile.ts");
      return {
        help: m.PROFILE_HELP,
        subcommandHelp: m.PROFILE_SUBCOMMAND_HELP,
        run: m.profileCommand,
      };
    },
    failureCode: 1,
  },
  log: {
    summary: "Check a decision log's hash chain (log verify)",
    load: async () => {
      const m = await import("./log.ts");
      return { help: m.LOG_HELP, run: m.logCommand };
    },
    failureCode: 1,
  },
  __bridge: {
    summary: "Internal: relay the sandbox's loopback proxy ports to the proxy's unix socket",
    load: async () => {
      const m = await import("./bridge.ts");
      return { help: m.BRIDGE_HELP, run: m.bridgeCommand };
    },
    failureCode: 1,
    hidden: true,
  },
  __shim: {
    summary: "Internal: decide a shimmed program's argv by the execpolicy deny rules, then run it",
    load: async () => {
      const m = await import("./shim.ts");
      return { help: m.SHIM_HELP, run: m.shimCommand };
    },
    failureCode: 126,
    hidden: true,
  },
};

/** The top-level help text. */
export function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS)
    .filter(([, entry]) => !entry.hidden)
    .map(([name, entry]) => `  ${name.padEnd(width)}  ${entry.summary}`);
  return `sandbox ${VERSION}: run untrusted commands under an enforced network posture

Usage: sandbox COMMAND [OPTIONS]

Commands:
${lines.join("\n")}
  ${"help".padEnd(width)}  Show help for a command

Examples:
  sandbox run --allow registry.example -- npm ci
  sandbox policy host --json api.example.com
  sandbox profile show

Run "sandbox help COMMAND" for a command's options.`;
}

/** Where `main()` writes its own output; tests may pass their own. */
export interface MainIo {
  /** Receives text meant for stdout. */
  stdout(text: string): void;
  /** Receives text meant for stderr. */
  stderr(text: string): void;
}

const encoder = new TextEncoder();
const DEFAULT_IO: MainIo = {
  stdout: (text) => void Deno.stdout.writeSync(encoder.encode(text)),
  stderr: (text) => void Deno.stderr.writeSync(encoder.encode(text)),
};

async function helpFor(path: readonly string[]): Promise<string> {
  if (path.length === 0) return mainHelp();
  const entry = COMMANDS[path[0]];
  if (entry === undefined || entry.hidden) {
    throw new UsageError(
      `Unknown command "${path[0]}": expected one of ${
        Object.keys(COMMANDS).filter((name) => !COMMANDS[name].hidden).join(", ")
      }`,
    );
  }
  const loaded = await entry.load();
  if (path.length === 1) return loaded.help;
  const sub = loaded.subcommandHelp?.[path[1]];
  if (sub === undefined) {
    throw new UsageError(`Unknown command "${path.slice(0, 2).join(" ")}"`, { command: path[0] });
  }
  return sub;
}

/**
 * Runs the CLI with `args` (without the program name) and returns the exit
 * code: 0 on success, 2 for a usage or config error, otherwise the
 * command's own code.
 *
 * @example
 * ```ts
 * const code = await main(["--version"]);
 * ```
 */
export async function main(args: readonly string[], io: MainIo = DEFAULT_IO): Promise<number> {
  const [first, ...rest] = args;
  let entry: CommandEntry | undefined;
  try {
    if (first === undefined) {
      io.stderr(mainHelp() + "\n");
      return 2;
    }
    if (first === "--version" || first === "-V" || first === "version") {
      io.stdout(`sandbox ${VERSION}\n`);
      return 0;
    }
    if (first === "help" || first === "--help" || first === "-h") {
      io.stdout(await helpFor(rest) + "\n");
      return 0;
    }
    entry = COMMANDS[first];
    if (entry === undefined) {
      throw new UsageError(
        `Unknown command "${first}": expected one of ${
          Object.keys(COMMANDS).filter((name) => !COMMANDS[name].hidden).join(", ")
        }, or "help"`,
      );
    }
    const loaded = await entry.load();
    if (rest[0] === "--help" || rest[0] === "-h") {
      io.stdout(loaded.help + "\n");
      return 0;
    }
    return await loaded.run(rest);
  } catch (error) {
    return reportError(error, entry, io);
  }
}

function reportError(error: unknown, entry: CommandEntry | undefined, io: MainIo): number {
  if (error instanceof UsageError) {
    const hint = error.command === undefined
      ? 'Run "sandbox help" for usage'
      : `Run "sandbox help ${error.command}" for usage`;
    io.stderr(`sandbox: ${error.message}\n${hint}\n`);
    return 2;
  }
  if (error instanceof ConfigError) {
    io.stderr(`sandbox: ${error.message}\n`);
    return 2;
  }
  if (error instanceof SandboxError) {
    io.stderr(`sandbox: ${error.message}\n`);
    if (error.code === "command_not_found") return 127;
    return entry?.failureCode ?? 1;
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  io.stderr(`sandbox: Internal error: ${message}\n`);
  return entry?.failureCode ?? 1;
}

/**
 * Interactive approval (`--ask`, or `network.ask = true` in a profile): an
 * allowlist miss becomes a question on the controlling terminal while the
 * request waits, in the style of Deno's permission prompt:
 *
 * ```
 * ┏ ⚠  sandbox: "curl" wants to connect to b.test:443 (https-connect)
 * ┠─ b.test is not in the allowlist.
 * ┠─ Run again with --allow b.test to skip this question.
 * ┗ Allow? [y/r/A/n] (y = once, r = for this run, A = always (saved to ci.toml), n = deny) >
 * ```
 *
 * The terminal is `/dev/tty`, opened directly: stdin belongs to the command.
 * Questions are asked one at a time; an answer of `r`, `A` or `n` (and a
 * timeout) holds for the rest of the run, so a host is asked about once
 * unless the answer was `y`. With no terminal, or under CI (`CI` or
 * `GITHUB_ACTIONS` set), a miss is a denial at once: never a hang.
 *
 * `A` (always) adds `"host" = "allow"` to a profile file, chosen by
 * {@linkcode alwaysFileFor}: the last `--config` file when there is one (the
 * file being iterated on; later files win), otherwise the user config file.
 *
 * @module
 */
import { writeTextNoFollow } from "../safe_file.ts";
import { errorMessage } from "../errors.ts";
import { dirname } from "node:path";
import { configLocations } from "../profiles/load.ts";
import { mergeLearnedHosts } from "../profiles/learn_profile.ts";

/** What the proxy passes to `askOnMiss` (contract 3). */
export interface AskMiss {
  /** The host that no allow rule matched. */
  readonly host: string;
  /** The destination port. */
  readonly port: number;
  /** `http`, `https-connect` or `socks5`. */
  readonly protocol: string;
}

/** A command held back by execpolicy `prompt` rules. */
export interface AskCommand {
  /** The command line as given. */
  readonly command: readonly string[];
  /** Why it is asked about (the rules and their justifications). */
  readonly reason: string;
}

/** An answer to one question. */
export type AskAnswer =
  | { readonly answer: "once" }
  | { readonly answer: "run" }
  | { readonly answer: "always" }
  | { readonly answer: "deny" }
  | { readonly answer: "invalid"; readonly input: string };

/**
 * Parses what the user typed. `y`/`yes` once, `r` for this run, `A` always
 * (capital, as in Deno, so it is not typed by accident), `n`/`no` deny.
 */
export function parseAnswer(input: string): AskAnswer {
  const text = input.trim();
  if (text === "A") return { answer: "always" };
  switch (text.toLowerCase()) {
    case "y":
    case "yes":
      return { answer: "once" };
    case "r":
      return { answer: "run" };
    case "n":
    case "no":
      return { answer: "deny" };
    default:
      return { answer: "invalid", input: text };
  }
}

/**
 * Why a miss cannot be asked about in this environment, or null when it can
 * be (a terminal still has to be opened). CI is detected from `CI` (any value
 * but `false`/`0`) and `GITHUB_ACTIONS=true`.
 */
export function ciReason(env: Readonly<Record<string, string | undefined>>): string | null {
  if (env.GITHUB_ACTIONS === "true") return "GITHUB_ACTIONS=true";
  const ci = env.CI;
  if (ci !== undefined && ci !== "" && ci !== "false" && ci !== "0") return `CI=${ci}`;
  return null;
}

/**
 * Where an `always` answer is saved: the last `--config` file when one was
 * given, otherwise the user config file that `loadEffectiveConfig()` reads
 * (`configLocations().user`; null when there is none).
 */
export function alwaysFileFor(
  configFlags: readonly string[] | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string | null {
  const last = configFlags?.at(-1);
  if (last !== undefined) return last;
  const defined: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) defined[name] = value;
  return configLocations(defined).user;
}

/** Makes text from the sandboxed side safe to print on a terminal (no escape sequences). */
export function terminalSafe(text: string): string {
  let out = "";
  for (const char of text) {
    const code = char.codePointAt(0)!;
    out += code >= 0x20 && code < 0x7f ? char : `\\u{${code.toString(16)}}`;
  }
  return out;
}

/** Options for {@linkcode openAskPrompter}. */
export interface AskPrompterOptions {
  /** Environment for the CI check; `Deno.env` unless set. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The terminal to open; `/dev/tty` unless set. */
  readonly ttyPath?: string;
  /** How long a question waits for an answer before it denies; 60 000 ms unless set. */
  readonly timeoutMs?: number;
  /** The command that runs, named in the question. */
  readonly command?: readonly string[];
  /** Where `A` (always) saves the host; null leaves `A` out of the choices. */
  readonly alwaysFile?: string | null;
  /** The profile `A` adds to; the file's `default_permissions` (or a new one) unless set. */
  readonly profile?: string | null;
  /** Receives notices meant for stderr; `Deno.stderr` unless set. */
  readonly stderr?: (text: string) => void;
}

/** The prompter behind `askOnMiss`. Dispose it when the run ends. */
export interface AskPrompter extends AsyncDisposable {
  /** Whether questions are asked (a terminal is open and this is not CI). */
  readonly interactive: boolean;
  /** Why questions are not asked, when {@linkcode AskPrompter.interactive} is false. */
  readonly reason: string | null;
  /** The `askOnMiss` hook for `startProxy`/`runSandboxed`: resolves once the user answers. */
  askOnMiss(miss: AskMiss): Promise<"allow" | "deny">;
  /** Asks whether to run a command that execpolicy `prompt` rules hold back (y/n). */
  askCommand(question: AskCommand): Promise<"allow" | "deny">;
  /** Closes the terminal; questions still waiting are denied. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Opens the controlling terminal for questions, or returns a prompter that
 * denies every miss (and says once why) when there is no terminal or this is CI.
 *
 * @example
 * ```ts
 * await using prompter = await openAskPrompter({ command: argv, alwaysFile: "sandbox.toml" });
 * const result = await runSandboxed(config, argv, { askOnMiss: prompter.askOnMiss, ... });
 * ```
 */
export async function openAskPrompter(options: AskPrompterOptions = {}): Promise<AskPrompter> {
  const env = options.env ?? Deno.env.toObject();
  const stderr = options.stderr ??
    ((text: string) => void Deno.stderr.writeSync(encoder.encode(text)));
  const ci = ciReason(env);
  if (ci !== null) return denyingPrompter(`${ci}: this looks like CI`, stderr);
  let tty: Deno.FsFile;
  try {
    tty = await Deno.open(options.ttyPath ?? "/dev/tty", { read: true, write: true });
  } catch (error) {
    const detail = errorMessage(error);
    return denyingPrompter(`no terminal to ask on (${detail})`, stderr);
  }
  return new TerminalPrompter(tty, options);
}

function denyingPrompter(reason: string, stderr: (text: string) => void): AskPrompter {
  let said = false;
  return {
    interactive: false,
    reason,
    askOnMiss(miss) {
      if (!said) {
        said = true;
        stderr(
          `sandbox: --ask: ${reason}, so hosts outside the allowlist are denied without a question (first: ${
            terminalSafe(miss.host)
          })\n`,
        );
      }
      return Promise.resolve("deny");
    },
    askCommand() {
      stderr(`sandbox: --ask: ${reason}, so a command the rules ask about is denied\n`);
      return Promise.resolve("deny");
    },
    close: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
}

/** Reads lines from the terminal in the background; lines that arrive while nobody asks are dropped. */
class LineReader {
  #buffer = "";
  #waiter: ((line: string | null) => void) | null = null;
  #ended = false;
  readonly done: Promise<void>;

  constructor(file: Deno.FsFile) {
    this.done = this.#loop(file);
  }

  async #loop(file: Deno.FsFile): Promise<void> {
    const chunk = new Uint8Array(1024);
    try {
      while (true) {
        const n = await file.read(chunk);
        if (n === null) break;
        this.#buffer += decoder.decode(chunk.subarray(0, n), { stream: true });
        let newline: number;
        while ((newline = this.#buffer.search(/[\r\n]/)) !== -1) {
          const line = this.#buffer.slice(0, newline);
          this.#buffer = this.#buffer.slice(newline + 1);
          const waiter = this.#waiter;
          this.#waiter = null;
          waiter?.(line);
        }
      }
    } catch {
      // Closed while reading (Interrupted / BadResource): the end, like EOF.
    }
    this.#ended = true;
    this.#waiter?.(null);
    this.#waiter = null;
  }

  /** Drops typed-ahead input, then waits for the next line (null at EOF). */
  next(): Promise<string | null> {
    this.#buffer = "";
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve) => (this.#waiter = resolve));
  }

  cancel(): void {
    this.#waiter = null;
  }
}

class TerminalPrompter implements AskPrompter {
  readonly interactive = true;
  readonly reason = null;
  #tty: Deno.FsFile;
  #reader: LineReader;
  #options: AskPrompterOptions;
  #queue: Promise<unknown> = Promise.resolve();
  #decided = new Map<string, "allow" | "deny">();
  #closed = false;

  constructor(tty: Deno.FsFile, options: AskPrompterOptions) {
    this.#tty = tty;
    this.#options = options;
    this.#reader = new LineReader(tty);
  }

  /** Bound, so it can be handed over as a bare function. */
  askOnMiss = (miss: AskMiss): Promise<"allow" | "deny"> => {
    const turn = this.#queue.then(() => this.#ask(miss));
    this.#queue = turn.catch(() => {});
    return turn.catch(() => "deny" as const);
  };

  /** Bound, like askOnMiss. */
  askCommand = (question: AskCommand): Promise<"allow" | "deny"> => {
    const turn = this.#queue.then(() => this.#askCommand(question));
    this.#queue = turn.catch(() => {});
    return turn.catch(() => "deny" as const);
  };

  async #askCommand(question: AskCommand): Promise<"allow" | "deny"> {
    if (this.#closed) return "deny";
    const command = terminalSafe(question.command.join(" "));
    this.#write(
      `┏ ⚠  sandbox: execpolicy asks before running ${command}\n` +
        `┠─ ${terminalSafe(question.reason)}\n` +
        `┗ Run it? [y/n] > `,
    );
    const timeoutMs = this.#options.timeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const line = await this.#nextLine(deadline - Date.now());
      if (line === null || line === "timeout" || line === "interrupt") {
        if (line !== "timeout") this.#closed = true;
        this.#write(`\n❌ Not run: ${line === "timeout" ? "no answer in time" : "no answer"}\n`);
        return "deny";
      }
      const answer = line.trim().toLowerCase();
      if (answer === "y" || answer === "yes") {
        this.#write(`✅ Running it\n`);
        return "allow";
      }
      if (answer === "n" || answer === "no") {
        this.#write(`❌ Not run\n`);
        return "deny";
      }
      this.#write(`┗ Unrecognized answer "${terminalSafe(line.trim())}". Run it? [y/n] > `);
    }
  }

  #write(text: string): void {
    const bytes = encoder.encode(text);
    let written = 0;
    while (written < bytes.length) written += this.#tty.writeSync(bytes.subarray(written));
  }

  async #ask(miss: AskMiss): Promise<"allow" | "deny"> {
    const known = this.#decided.get(miss.host);
    if (known !== undefined) return known;
    if (this.#closed) return "deny";
    const host = terminalSafe(miss.host);
    const target = `${host.includes(":") ? `[${host}]` : host}:${miss.port}`;
    const program = terminalSafe(this.#options.command?.[0] ?? "the command");
    const alwaysFile = this.#options.alwaysFile ?? null;
    const choices = alwaysFile === null
      ? "[y/r/n] (y = once, r = for this run, n = deny)"
      : `[y/r/A/n] (y = once, r = for this run, A = always (saved to ${
        terminalSafe(alwaysFile)
      }), n = deny)`;
    const timeoutMs = this.#options.timeoutMs ?? 60_000;
    this.#write(
      `┏ ⚠  sandbox: "${program}" wants to connect to ${target} (${
        terminalSafe(miss.protocol)
      })\n` +
        `┠─ ${host} is not in the allowlist.\n` +
        `┠─ Run again with --allow ${host} to skip this question.\n` +
        `┗ Allow? ${choices} > `,
    );
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const line = await this.#nextLine(deadline - Date.now());
      if (line === "timeout") {
        this.#decided.set(miss.host, "deny");
        this.#write(
          `\n❌ Denied ${target}: no answer within ${
            Math.round(timeoutMs / 1000)
          } s (denied for the rest of this run)\n`,
        );
        return "deny";
      }
      if (line === null) {
        this.#closed = true;
        this.#write(`\n❌ Denied ${target}: the terminal closed\n`);
        return "deny";
      }
      if (line === "interrupt") {
        // Ctrl-C: the user wants out. The launcher forwards the signal to the command; every
        // question still to come is denied at once, so the run ends without waiting.
        this.#closed = true;
        this.#write(
          `\n❌ Denied ${target}: interrupted (Ctrl-C); the rest of this run is denied without a question\n`,
        );
        return "deny";
      }
      const parsed = parseAnswer(line);
      switch (parsed.answer) {
        case "once":
          this.#write(`✅ Allowed ${target} once\n`);
          return "allow";
        case "run":
          this.#decided.set(miss.host, "allow");
          this.#write(`✅ Allowed ${host} for this run\n`);
          return "allow";
        case "always": {
          if (alwaysFile === null) break;
          this.#decided.set(miss.host, "allow");
          const saved = await this.#saveAlways(miss, alwaysFile);
          this.#write(
            saved === null
              ? `✅ Allowed ${host} always (saved to ${terminalSafe(alwaysFile)})\n`
              : `✅ Allowed ${host} for this run; not saved: ${terminalSafe(saved)}\n`,
          );
          return "allow";
        }
        case "deny":
          this.#decided.set(miss.host, "deny");
          this.#write(`❌ Denied ${host} for this run\n`);
          return "deny";
      }
      this.#write(`┗ Unrecognized answer "${terminalSafe(line.trim())}". Allow? ${choices} > `);
    }
  }

  async #nextLine(waitMs: number): Promise<string | null | "timeout" | "interrupt"> {
    if (waitMs <= 0) return "timeout";
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), waitMs);
    });
    let onInterrupt: (() => void) | undefined;
    const interrupted = new Promise<"interrupt">((resolve) => {
      onInterrupt = () => resolve("interrupt");
    });
    Deno.addSignalListener("SIGINT", onInterrupt!);
    try {
      const result = await Promise.race([this.#reader.next(), timeout, interrupted]);
      if (result === "timeout" || result === "interrupt") this.#reader.cancel();
      return result;
    } finally {
      clearTimeout(timer);
      Deno.removeSignalListener("SIGINT", onInterrupt!);
    }
  }

  /** Adds the host to the profile file; returns null, or why it could not. */
  async #saveAlways(miss: AskMiss, file: string): Promise<string | null> {
    try {
      let text = "";
      try {
        text = await Deno.readTextFile(file);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        await Deno.mkdir(dirname(file), { recursive: true });
      }
      const merged = mergeLearnedHosts(
        text,
        [{ host: miss.host, ports: [miss.port], protocols: [miss.protocol], count: 1 }],
        {
          file,
          command: this.#options.command ?? [],
          profile: this.#options.profile ?? undefined,
        },
      );
      if (merged.text !== text) {
        const temp = `${file}.sandbox-${crypto.randomUUID()}.tmp`;
        try {
          writeTextNoFollow(temp, merged.text, { mode: 0o644, what: "profile" });
          await Deno.rename(temp, file);
        } catch (error) {
          await Deno.remove(temp).catch(() => {});
          throw error;
        }
      }
      return null;
    } catch (error) {
      return errorMessage(error);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#tty.close();
    } catch {
      // Already closed.
    }
    await this.#reader.done;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

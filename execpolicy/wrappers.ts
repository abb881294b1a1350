/**
 * Transparent wrappers: `env`, `nice`, `nohup`, `timeout`, `stdbuf`,
 * `command` and `exec` run another command with the same argv tail. Their
 * options are parsed exactly; an option this parser does not know (or a word
 * whose value is only known at run time) makes the result `uncertain`, and
 * the caller then considers every plausible reading.
 *
 * @module
 */
import { programName } from "./match.ts";
import type { ScriptWord } from "./script.ts";

/** What a wrapper runs. */
export type WrapperResult =
  /** Not a wrapper. */
  | { readonly kind: "none" }
  /** The wrapper runs no command (`env` alone, `command -v x`). */
  | { readonly kind: "no-command" }
  /** The wrapper runs `words`. */
  | { readonly kind: "inner"; readonly words: readonly ScriptWord[] }
  /** The options could not be parsed with certainty; `extra` are readings beyond argv suffixes. */
  | {
    readonly kind: "uncertain";
    readonly reason: string;
    readonly extra: readonly (readonly ScriptWord[])[];
  };

/** Names of the wrappers looked through. */
export const WRAPPERS: readonly string[] = [
  "env",
  "nice",
  "nohup",
  "timeout",
  "stdbuf",
  "command",
  "exec",
];

interface OptionSpec {
  /** Short options without an argument. */
  readonly flags: string;
  /** Short options that take an argument (attached or next word). */
  readonly withArg: string;
  /** Long options without an argument. */
  readonly longFlags: readonly string[];
  /** Long options that take an argument (`--x=V` or `--x V`). */
  readonly longWithArg: readonly string[];
  /** Long options whose argument is optional (only `--x=V`). */
  readonly longOptionalArg?: readonly string[];
  /** Short options after which nothing runs. */
  readonly noCommand?: string;
  /** `-N` (digits) is an option, as in `nice -10`. */
  readonly numeric?: boolean;
  /** Positional words the wrapper itself takes before the command (`timeout DURATION`). */
  readonly positionals?: number;
  /** Skip `NAME=VALUE` words before the command (`env`). */
  readonly assignments?: boolean;
}

const SPECS: Readonly<Record<string, OptionSpec>> = {
  env: {
    flags: "i0v",
    withArg: "uCS",
    longFlags: ["--ignore-environment", "--null", "--debug", "--list-signal-handling"],
    longWithArg: ["--unset", "--chdir", "--split-string"],
    longOptionalArg: ["--default-signal", "--ignore-signal", "--block-signal"],
    assignments: true,
  },
  nice: { flags: "", withArg: "n", longFlags: [], longWithArg: ["--adjustment"], numeric: true },
  nohup: { flags: "", withArg: "", longFlags: [], longWithArg: [] },
  timeout: {
    flags: "v",
    withArg: "sk",
    longFlags: ["--preserve-status", "--foreground", "--verbose"],
    longWithArg: ["--signal", "--kill-after"],
    positionals: 1,
  },
  stdbuf: {
    flags: "",
    withArg: "ioe",
    longFlags: [],
    longWithArg: ["--input", "--output", "--error"],
  },
  command: { flags: "p", withArg: "", longFlags: [], longWithArg: [], noCommand: "vV" },
  exec: { flags: "cl", withArg: "a", longFlags: [], longWithArg: [] },
};

/**
 * Looks through one wrapper at the start of `words`.
 *
 * @example
 * ```ts
 * unwrap(words("env -i FOO=1 curl x")); // { kind: "inner", words: [curl, x] }
 * ```
 */
export function unwrap(words: readonly ScriptWord[]): WrapperResult {
  const head = words[0];
  if (head === undefined || head.kind !== "literal") return { kind: "none" };
  const spec = SPECS[programName(head.text)];
  if (spec === undefined) return { kind: "none" };
  const extra: ScriptWord[][] = [];
  const uncertain = (reason: string): WrapperResult => ({ kind: "uncertain", reason, extra });
  let i = 1;
  // The word after the option as its value (moving past it), or why it cannot be known.
  const nextValue = (option: string): string | WrapperResult => {
    i++;
    const next = words[i];
    if (next === undefined) return uncertain(`"${option}" has no value`);
    if (next.kind !== "literal") return uncertain(`"${next.text}" is only known at run time`);
    return next.text;
  };
  for (; i < words.length; i++) {
    const w = words[i];
    if (w.kind !== "literal") return uncertain(`"${w.text}" is only known at run time`);
    const t = w.text;
    if (t === "--") {
      i++;
      break;
    }
    if (!t.startsWith("-") || t === "-") {
      if (t === "-" && spec.assignments) continue; // `env -` is `env -i`
      break;
    }
    if (t.startsWith("--")) {
      const [name, value] = splitLong(t);
      if (spec.longFlags.includes(name) && value === null) continue;
      if (spec.longOptionalArg?.includes(name)) continue;
      if (spec.longWithArg.includes(name)) {
        const arg = value ?? nextValue(t);
        if (typeof arg !== "string") return arg;
        if (name === "--split-string") extra.push(splitString(arg, words.slice(i + 1)));
        continue;
      }
      return uncertain(`unknown option "${t}" of "${head.text}"`);
    }
    if (spec.numeric && /^-[0-9]+$/.test(t)) continue;
    // A cluster of short options, the last of which may take an argument.
    for (let j = 1; j < t.length; j++) {
      const c = t[j];
      if (spec.noCommand?.includes(c)) return { kind: "no-command" };
      if (spec.flags.includes(c)) continue;
      if (spec.withArg.includes(c)) {
        const arg = j + 1 < t.length ? t.slice(j + 1) : nextValue(`-${c}`);
        if (typeof arg !== "string") return arg;
        if (c === "S" && head.text.endsWith("env")) {
          extra.push(splitString(arg, words.slice(i + 1)));
        }
        break;
      }
      return uncertain(`unknown option "-${c}" of "${head.text}"`);
    }
  }
  if (spec.assignments) {
    while (i < words.length && words[i].kind === "literal" && words[i].text.includes("=")) i++;
    if (i < words.length && words[i].kind !== "literal") {
      return uncertain(`"${words[i].text}" is only known at run time`);
    }
  }
  for (let p = 0; p < (spec.positionals ?? 0); p++, i++) {
    if (i >= words.length) return { kind: "no-command" };
  }
  if (extra.length > 0) {
    // `env -S` splits its argument itself (with its own escapes): read it both ways.
    return uncertain(`"${head.text} -S" splits its argument at run time`);
  }
  if (i >= words.length) return { kind: "no-command" };
  return { kind: "inner", words: words.slice(i) };
}

function splitLong(option: string): [string, string | null] {
  const eq = option.indexOf("=");
  return eq === -1 ? [option, null] : [option.slice(0, eq), option.slice(eq + 1)];
}

function splitString(value: string, rest: readonly ScriptWord[]): ScriptWord[] {
  const words: ScriptWord[] = value.split(/[ \t\n]+/).filter((w) => w !== "").map((text) => ({
    kind: "literal",
    text,
  }));
  return [...words, ...rest];
}

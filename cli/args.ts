/**
 * Command-line parsing shared by every subcommand: the options of
 * `../shared/CLI.md` that run, proxy, policy, learn and profile have in
 * common, and a strict parser that turns every mistake into a
 * {@linkcode UsageError} naming the command and the option.
 *
 * The parser is our own rather than `node:util`'s `parseArgs`: importing any
 * `node:` module switches on Deno's Node compatibility layer, which costs
 * every `sandbox run` several milliseconds of start-up (see bench/run_bench.ts).
 *
 * @module
 */
import type { ConfigFlags } from "../profiles/flags.ts";
import { UsageError } from "../errors.ts";

/** How one option is written and what it holds. */
export interface OptionSpec {
  /** `"string"` takes a value (`--name VALUE` or `--name=VALUE`); `"boolean"` takes none. */
  readonly type: "string" | "boolean";
  /** Repeatable: the values are collected in an array. Otherwise the last one wins. */
  readonly multiple?: boolean;
  /** A one-character alias, written `-X`. */
  readonly short?: string;
}

/** Option specs by long name (without the leading `--`). */
export type OptionSpecs = { readonly [name: string]: OptionSpec };

/** Options shared by run, proxy, policy, learn and profile (CLI.md). */
export const SHARED_OPTIONS = {
  config: { type: "string", multiple: true },
  profile: { type: "string" },
  allow: { type: "string", multiple: true },
  deny: { type: "string", multiple: true },
  preset: { type: "string", multiple: true },
  mode: { type: "string" },
  mitm: { type: "boolean" },
  "allow-local-binding": { type: "boolean" },
  "allow-unix-socket": { type: "string", multiple: true },
  resolve: { type: "string", multiple: true },
  rules: { type: "string", multiple: true },
  log: { type: "string" },
  "ca-dir": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionSpecs;

/** Values of the shared options after parsing: the loader's {@linkcode ConfigFlags}. */
export type SharedValues = ConfigFlags;

/** Options for {@linkcode parseCommandArgs}. */
export interface ParseCommandArgsOptions {
  /** Accept positionals (otherwise any positional is a usage error). */
  allowPositionals?: boolean;
}

/** Parsed option values by long name; absent options are absent. */
export type ParsedValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

/** What {@linkcode parseCommandArgs} returns. */
export interface ParsedCommandArgs {
  /** Option values by long name (a null-prototype object). */
  values: ParsedValues;
  /** Arguments before `--` that are not options, in order. */
  positionals: string[];
  /** Everything after the first lone `--`, untouched; null when there is no `--`. */
  rest: string[] | null;
}

/**
 * Parses `args` strictly against `specs`. Everything after a lone `--` is
 * returned untouched in `rest` (the command to run), never interpreted.
 *
 * Before `--`: `--name VALUE`, `--name=VALUE` (the only way to give a value
 * that starts with `-`), `-X` for an option with `short: "X"` (boolean
 * short options may be grouped: `-XY`), and positionals when
 * `allowPositionals` is set (`-` alone is a positional). An unknown option,
 * a missing value, a value given to a boolean, or an unexpected positional
 * is a {@linkcode UsageError} that names the command and the option.
 *
 * @example
 * ```ts
 * const { values, rest } = parseCommandArgs("run", ["--allow", "a.test", "--", "curl", "-v"], SHARED_OPTIONS);
 * // values.allow = ["a.test"], rest = ["curl", "-v"]
 * ```
 */
export function parseCommandArgs<T extends OptionSpecs>(
  command: string,
  args: readonly string[],
  specs: T,
  options: ParseCommandArgsOptions = {},
): ParsedCommandArgs {
  const dashDash = args.indexOf("--");
  const head = dashDash === -1 ? args : args.slice(0, dashDash);
  const rest = dashDash === -1 ? null : args.slice(dashDash + 1);
  function fail(detail: string): never {
    throw new UsageError(`Invalid arguments for "sandbox ${command}": ${detail}`, { command });
  }
  const values: ParsedValues = Object.create(null);
  const positionals: string[] = [];
  const store = (name: string, spec: OptionSpec, value: string | boolean): void => {
    if (spec.multiple !== true) {
      values[name] = value;
      return;
    }
    const list = (values[name] ??= []) as (string | boolean)[];
    list.push(value);
  };
  // The value of a string option written as a separate argument at head[i + 1].
  const nextValue = (i: number, written: string): string => {
    const value = head[i + 1];
    if (value === undefined) {
      fail(`missing value for "${written}": write "${written} VALUE" or "${written}=VALUE"`);
    }
    if (value.length > 1 && value.startsWith("-")) {
      fail(
        `missing value for "${written}": "${value}" looks like an option; ` +
          `write "${written}=${value}" if it is the value`,
      );
    }
    return value;
  };

  for (let i = 0; i < head.length; i++) {
    const arg = head[i];
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq === -1 ? undefined : eq);
      const written = `--${name}`;
      const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
      if (spec === undefined) fail(unknownOption(written, specs));
      else if (spec.type === "boolean") {
        if (eq !== -1) {
          fail(`option "${written}" takes no value: write "${written}" instead of "${arg}"`);
        }
        store(name, spec, true);
      } else if (eq !== -1) {
        store(name, spec, arg.slice(eq + 1));
      } else {
        store(name, spec, nextValue(i, written));
        i++;
      }
    } else if (arg.startsWith("-") && arg !== "-") {
      // One short option, or a group of them (`-XY`); a string one takes the rest of the group
      // (`-Xvalue`) or, at the end of it, the next argument.
      for (let j = 1; j < arg.length; j++) {
        const char = arg[j];
        const found = Object.entries(specs).find(([, spec]) => spec.short === char);
        if (found === undefined) {
          fail(
            char === "=" && j > 1
              ? `option "-${arg[j - 1]}" takes no value: write "-${arg[j - 1]}" instead of "${arg}"`
              : unknownShort(arg, char, specs),
          );
        }
        const [name, spec] = found;
        if (spec.type === "boolean") {
          store(name, spec, true);
        } else if (j + 1 < arg.length) {
          store(name, spec, arg.slice(j + 1));
          break;
        } else {
          store(name, spec, nextValue(i, `-${char}`));
          i++;
        }
      }
    } else if (options.allowPositionals === true) {
      positionals.push(arg);
    } else {
      fail(
        `unexpected argument "${arg}": "sandbox ${command}" takes only options before a lone "--"`,
      );
    }
  }
  return { values, positionals, rest };
}

function unknownOption(written: string, specs: OptionSpecs): string {
  const suggestion = closestOption(written.slice(2), Object.keys(specs));
  return suggestion === null
    ? `unknown option "${written}"`
    : `unknown option "${written}": did you mean "--${suggestion}"?`;
}

function unknownShort(arg: string, char: string, specs: OptionSpecs): string {
  const where = arg.length === 2 ? "" : ` in "${arg}"`;
  // `-allow` is a common slip for `--allow`.
  const long = arg.slice(1);
  if (arg.length > 2 && Object.hasOwn(specs, long)) {
    return `unknown option "-${char}"${where}: did you mean "--${long}"?`;
  }
  return `unknown option "-${char}"${where}`;
}

/**
 * The known option closest to `name`: the only one it is a prefix of, or
 * the nearest by edit distance (case-insensitive, a swap of two neighbours
 * counting once) within about a third of its length; null when none is close.
 */
function closestOption(name: string, known: readonly string[]): string | null {
  if (name.length >= 3) {
    const extending = known.filter((k) => k.startsWith(name));
    if (extending.length === 1) return extending[0];
  }
  const limit = Math.max(1, Math.floor(name.length / 3));
  let best: string | null = null;
  let bestDistance = limit + 1;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[i].push(j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2][j - 2] + 1);
      }
      rows[i].push(d);
    }
  }
  return rows[a.length][b.length];
}

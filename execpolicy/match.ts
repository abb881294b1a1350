/**
 * Execpolicy patterns: a pattern is shell-split into words, each word is a
 * glob matched against the argv word in the same place, a final lone `*`
 * matches zero or more remaining words, and otherwise the word counts must
 * be equal. The first word also matches the basename of a program path
 * (`/usr/bin/curl` and `./curl` both match `curl`).
 *
 * Matching also works on words whose value is not known before run time
 * (`"$URL"`, `$ARGS`, `*.txt` in a `sh -c` script): it answers `sure` when
 * the pattern matches whatever they turn out to be, `possible` when it
 * matches for some values, and `no` when it matches for none.
 *
 * @module
 */
import { compileGlob, GlobError, type WordGlob } from "./glob.ts";
import type { ScriptWord } from "./script.ts";
import { shellSplit, ShellSplitError } from "./shell_split.ts";

/** A compiled pattern. */
export interface CompiledPattern {
  /** The pattern as written. */
  readonly source: string;
  /** One glob per word, without the final lone `*`. */
  readonly words: readonly WordGlob[];
  /** The pattern ends in a lone `*`: any number of further words match. */
  readonly trailingStar: boolean;
}

/** Thrown by {@linkcode compilePattern} for a pattern that cannot be used. */
export class PatternError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PatternError";
  }
}

/** How a pattern matches a command whose words may be unknown. */
export type MatchResult = "sure" | "possible" | "no";

/**
 * Compiles a pattern. Throws {@linkcode PatternError} when it is empty,
 * cannot be shell-split (an unclosed quote) or has a bad glob.
 *
 * @example
 * ```ts
 * const p = compilePattern("git push *");
 * matchArgv(p, ["/usr/bin/git", "push", "origin"]); // true
 * ```
 */
export function compilePattern(pattern: string): CompiledPattern {
  let split;
  try {
    split = shellSplit(pattern);
  } catch (error) {
    if (error instanceof ShellSplitError) {
      throw new PatternError(`The pattern cannot be split into words: ${error.message}`, {
        cause: error,
      });
    }
    throw error;
  }
  if (split.length === 0) {
    throw new PatternError('The pattern is empty: write the command\'s words, e.g. "git push *"');
  }
  const last = split[split.length - 1];
  const trailingStar = last.glob === "*";
  const globs = trailingStar ? split.slice(0, -1) : split;
  try {
    return { source: pattern, words: globs.map((w) => compileGlob(w.glob)), trailingStar };
  } catch (error) {
    if (error instanceof GlobError) throw new PatternError(error.message, { cause: error });
    throw error;
  }
}

/** The basename of a program path (`/usr/bin/curl` -> `curl`). */
export function programName(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

function testWord(glob: WordGlob, word: string, first: boolean): boolean {
  if (glob.test(word)) return true;
  return first && word.includes("/") && glob.test(programName(word));
}

/** Whether the pattern's first word matches `name` (a program name or path). */
export function matchesProgram(pattern: CompiledPattern, name: string): boolean {
  if (pattern.words.length === 0) return pattern.trailingStar;
  return testWord(pattern.words[0], name, true);
}

/**
 * Matches a pattern against words, some of which may be unknown until run
 * time (see the module doc).
 */
export function matchWords(pattern: CompiledPattern, items: readonly ScriptWord[]): MatchResult {
  const m = pattern.words.length;
  const n = items.length;
  const memo = new Map<number, boolean>();
  const go = (sure: boolean, pi: number, ai: number): boolean => {
    const key = (sure ? 1 : 0) + 2 * (pi * (n + 1) + ai);
    const cached = memo.get(key);
    if (cached !== undefined) return cached;
    let result: boolean;
    if (ai === n) {
      result = pi === m;
    } else if (pi === m) {
      result = pattern.trailingStar || (!sure && items.slice(ai).every((w) => w.kind === "multi"));
    } else {
      const item = items[ai];
      const glob = pattern.words[pi];
      if (item.kind === "literal") {
        result = testWord(glob, item.text, ai === 0) && go(sure, pi + 1, ai + 1);
      } else if (item.kind === "single") {
        result = (!sure || glob.matchesAll) && go(sure, pi + 1, ai + 1);
      } else {
        // Any number of words of any value: only a trailing `*` covers it surely.
        result = !sure && (go(false, pi, ai + 1) || go(false, pi + 1, ai));
      }
    }
    memo.set(key, result);
    return result;
  };
  if (go(true, 0, 0)) return "sure";
  return go(false, 0, 0) ? "possible" : "no";
}

/** Whether the pattern matches a fully known argv. */
export function matchArgv(pattern: CompiledPattern, argv: readonly string[]): boolean {
  return matchWords(pattern, argv.map((text) => ({ kind: "literal", text }))) === "sure";
}

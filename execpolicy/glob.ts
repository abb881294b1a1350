/**
 * Word globs for execpolicy patterns: `*` (any run of characters), `?` (one
 * character), `[…]` (a set with ranges, negated by a leading `!` or `^`) and
 * `\x` for a literal `x`. A glob matches one whole argv word.
 *
 * @module
 */

/** A compiled glob for one argv word. */
export interface WordGlob {
  /** The glob source as compiled (quoted specials escaped with `\`). */
  readonly source: string;
  /** True when the glob has no wildcard: it only matches `literal`. */
  readonly literal: string | null;
  /** True when the glob matches every word (it is `*`). */
  readonly matchesAll: boolean;
  /** How many characters of the glob stand for themselves (its specificity inside one word). */
  readonly literalChars: number;
  /** Whether `word` matches the glob as a whole. */
  test(word: string): boolean;
}

/** Thrown by {@linkcode compileGlob} for a glob that cannot be compiled. */
export class GlobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GlobError";
  }
}

// Only syntax characters: with the `u` flag, escaping anything else (e.g. `-`) is an error.
const REGEX_SPECIAL = /[\\^$.*+?()[\]{}|/]/g;

function escapeRegex(char: string): string {
  return char.replace(REGEX_SPECIAL, "\\$&");
}

/**
 * Compiles one glob word. Throws {@linkcode GlobError} for a bad range such
 * as `[z-a]`.
 *
 * @example
 * ```ts
 * compileGlob("v[0-9]*").test("v1.2"); // true
 * ```
 */
export function compileGlob(source: string): WordGlob {
  const chars = Array.from(source);
  let regex = "";
  let literal = "";
  let wild = false;
  let fixed = 0;
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === "\\") {
      // A trailing backslash stands for itself.
      const next = chars[i + 1] ?? "\\";
      if (i + 1 < chars.length) i++;
      regex += escapeRegex(next);
      literal += next;
      fixed++;
    } else if (c === "*") {
      wild = true;
      regex += "[^]*";
    } else if (c === "?") {
      wild = true;
      regex += "[^]";
    } else if (c === "[") {
      const parsed = parseBracket(chars, i);
      if (parsed === null) {
        regex += escapeRegex(c);
        literal += c;
        fixed++;
      } else {
        wild = true;
        regex += parsed.regex;
        i = parsed.end;
      }
    } else {
      regex += escapeRegex(c);
      literal += c;
      fixed++;
    }
  }
  let compiled: RegExp;
  try {
    compiled = new RegExp(`^(?:${regex})$`, "u");
  } catch (error) {
    throw new GlobError(
      `The glob "${source}" cannot be compiled: ${error instanceof Error ? error.message : error}`,
    );
  }
  const matchesAll = source === "*";
  return {
    source,
    literal: wild ? null : literal,
    matchesAll,
    literalChars: fixed,
    test: wild ? (word) => compiled.test(word) : (word) => word === literal,
  };
}

/** Parses `[…]` starting at `start`; null when there is no closing `]` (then `[` is literal). */
function parseBracket(chars: string[], start: number): { regex: string; end: number } | null {
  let i = start + 1;
  let negate = false;
  if (chars[i] === "!" || chars[i] === "^") {
    negate = true;
    i++;
  }
  const items: string[] = [];
  let first = true;
  while (i < chars.length) {
    let c = chars[i];
    if (c === "]" && !first) {
      const body = items.join("");
      // An empty set cannot happen (a leading `]` is literal), so the class is valid.
      return { regex: negate ? `[^${body}]` : `[${body}]`, end: i };
    }
    first = false;
    if (c === "\\" && i + 1 < chars.length) {
      i++;
      c = chars[i];
    }
    if (chars[i + 1] === "-" && i + 2 < chars.length && chars[i + 2] !== "]") {
      let hi = chars[i + 2];
      let skip = 2;
      if (hi === "\\" && i + 3 < chars.length) {
        hi = chars[i + 3];
        skip = 3;
      }
      if (hi.codePointAt(0)! < c.codePointAt(0)!) {
        throw new GlobError(`The range "${c}-${hi}" in "${chars.join("")}" is backwards`);
      }
      items.push(`${escapeClass(c)}-${escapeClass(hi)}`);
      i += skip + 1;
      continue;
    }
    items.push(escapeClass(c));
    i++;
  }
  return null;
}

function escapeClass(char: string): string {
  return /[\\\]^-]/.test(char) ? `\\${char}` : char;
}

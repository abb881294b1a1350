/**
 * A small POSIX-style word splitter for execpolicy patterns and their
 * `match`/`not_match` examples: blanks separate words, `'…'` quotes
 * literally, `"…"` quotes with `\` escaping `"`, `\`, `$` and `` ` ``, and an
 * unquoted `\` escapes the next character. Nothing is expanded: `$`, `|`,
 * `;` and friends are ordinary characters here, because a pattern describes
 * argv words, not a shell script.
 *
 * @module
 */

/** One word of a split pattern. */
export interface SplitWord {
  /** The word's value, quotes removed (what argv would hold). */
  readonly text: string;
  /** The word as a glob: quoted `*`, `?`, `[`, `]` and `\` are escaped with `\`. */
  readonly glob: string;
}

/** Thrown by {@linkcode shellSplit} for input that cannot be split. */
export class ShellSplitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ShellSplitError";
  }
}

const GLOB_SPECIAL = new Set(["*", "?", "[", "]", "\\"]);
const BLANK = new Set([" ", "\t", "\n", "\r"]);

/**
 * Splits `input` into words the way a POSIX shell would, without any
 * expansion. Throws {@linkcode ShellSplitError} for an unclosed quote or a
 * trailing backslash.
 *
 * @example
 * ```ts
 * shellSplit(`git commit -m "a b"`).map((w) => w.text); // ["git", "commit", "-m", "a b"]
 * ```
 */
export function shellSplit(input: string): SplitWord[] {
  const chars = Array.from(input);
  const words: SplitWord[] = [];
  let text = "";
  let glob = "";
  let inWord = false;
  const quoted = (c: string) => {
    text += c;
    glob += GLOB_SPECIAL.has(c) ? `\\${c}` : c;
  };
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (BLANK.has(c)) {
      if (inWord) words.push({ text, glob });
      text = "";
      glob = "";
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === "'") {
      const end = chars.indexOf("'", i + 1);
      if (end === -1) throw new ShellSplitError(`Unclosed single quote at offset ${i}`);
      for (const q of chars.slice(i + 1, end)) quoted(q);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < chars.length && chars[j] !== '"'; j++) {
        if (chars[j] === "\\" && j + 1 < chars.length && '"\\$`\n'.includes(chars[j + 1])) {
          j++;
          if (chars[j] !== "\n") quoted(chars[j]);
        } else {
          quoted(chars[j]);
        }
      }
      if (j >= chars.length) throw new ShellSplitError(`Unclosed double quote at offset ${i}`);
      i = j;
    } else if (c === "\\") {
      if (i + 1 >= chars.length) {
        throw new ShellSplitError("Trailing backslash with nothing to escape");
      }
      i++;
      if (chars[i] === "\n") {
        // Line continuation: removed, and it does not start a word by itself.
        if (text === "" && glob === "") inWord = false;
        continue;
      }
      quoted(chars[i]);
    } else {
      text += c;
      glob += c;
    }
  }
  if (inWord) words.push({ text, glob });
  return words;
}

/**
 * Renders argv as one line a POSIX shell would split back into the same
 * words (single quotes where needed). For messages.
 *
 * @example
 * ```ts
 * shellJoin(["echo", "a b"]); // "echo 'a b'"
 * ```
 */
export function shellJoin(argv: readonly string[]): string {
  return argv.map((word) =>
    word !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)
      ? word
      : `'${word.replaceAll("'", `'\\''`)}'`
  ).join(" ");
}

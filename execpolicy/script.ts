/**
 * Splits a `sh -c` script into its simple commands, or refuses. The splitter
 * knows the separators `&&`, `||`, `;`, `|`, `|&`, `&` and newlines, quotes,
 * escapes, comments, plain redirections and here-documents with a quoted
 * delimiter. Anything it cannot be sure of makes the whole script opaque,
 * with the reason: command or process substitution, subshells and function
 * definitions, brace groups and other keywords, `eval`/`source`/`.` and
 * other builtins that run strings, here-documents with expansion, parameter
 * expansion in the command word, arithmetic. It never guesses.
 *
 * Words that the shell would expand at run time are kept, marked as unknown:
 * `single` (exactly one word, unknown text, e.g. `"$URL"`) or `multi` (any
 * number of words, e.g. `$ARGS` or `*.txt`), so that matching can consider
 * every value they could take.
 *
 * @module
 */

/** One word of a simple command in a script. */
export type ScriptWord =
  | { readonly kind: "literal"; readonly text: string }
  | { readonly kind: "single" | "multi"; readonly text: string };

/** What {@linkcode parseScript} found. */
export type ScriptParse =
  | { readonly kind: "split"; readonly commands: readonly (readonly ScriptWord[])[] }
  | { readonly kind: "opaque"; readonly reason: string };

/** Shell keywords: a command starting with one is compound syntax this splitter does not follow. */
const KEYWORDS = new Set([
  "if",
  "then",
  "else",
  "elif",
  "fi",
  "for",
  "while",
  "until",
  "do",
  "done",
  "case",
  "esac",
  "in",
  "function",
  "select",
  "time",
  "coproc",
  "{",
  "}",
  "[[",
  "]]",
  "!",
  "repeat",
  "foreach",
  "end",
]); // deno-fmt-ignore

/** Builtins that run a string as code, change how names resolve, or evaluate arithmetic. */
const OPAQUE_BUILTINS = new Set([
  "eval", "source", ".", "alias", "trap", "builtin", "hash", "enable", "fc", "mapfile",
  "readarray", "let", "declare", "typeset", "local", "autoload", "emulate", "noglob",
  "nocorrect", "sched", "zmodload",
]); // deno-fmt-ignore

/** Builtins that evaluate an array subscript in a name argument (bash arithmetic runs code). */
const SUBSCRIPT_BUILTINS = new Set([
  "read", "unset", "printf", "test", "[", "wait", "getopts", "export", "readonly", "print",
]); // deno-fmt-ignore

class Refusal extends Error {}

interface LexedWord {
  text: string;
  raw: string;
  kind: "literal" | "single" | "multi";
  quoted: boolean;
}

const BLANKS = new Set([" ", "\t"]);
const WORD_END = new Set([" ", "\t", "\n", ";", "&", "|", "<", ">", "(", ")"]);
const SIMPLE_PARAM =
  /^(?:#?[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])(?:(?::?[-=+?])[^'"\\{}$`()[\]]*)?$/;

/**
 * Splits `script` into simple commands (each a list of words, leading
 * `VAR=value` assignments kept; a command of assignments only is left out),
 * or returns why it cannot.
 *
 * @example
 * ```ts
 * parseScript("npm ci && npm test"); // { kind: "split", commands: [[npm, ci], [npm, test]] }
 * parseScript("curl $(cat url)"); // { kind: "opaque", reason: "command substitution …" }
 * ```
 */
export function parseScript(script: string): ScriptParse {
  const found = findSubstitution(script);
  if (found !== null) return { kind: "opaque", reason: found };
  try {
    return { kind: "split", commands: split(Array.from(script)) };
  } catch (error) {
    if (error instanceof Refusal) return { kind: "opaque", reason: error.message };
    throw error;
  }
}

/** Substitutions are refused wherever they appear, even inside single quotes:
 * bash evaluates array subscripts in arithmetic, so a quoted `$(…)` can still run. */
function findSubstitution(script: string): string | null {
  const checks: [RegExp, string][] = [
    [/\$\(/, 'command substitution "$("'],
    [/`/, "command substitution with backquotes"],
    [/[<>=]\(/, "process substitution or array assignment"],
    [/\$\[/, 'arithmetic expansion "$["'],
  ];
  for (const [pattern, what] of checks) {
    const match = pattern.exec(script);
    if (match !== null) return `${what} at offset ${match.index}`;
  }
  return null;
}

function split(chars: string[]): ScriptWord[][] {
  const commands: ScriptWord[][] = [];
  let current: LexedWord[] = [];
  const heredocs: { delimiter: string; stripTabs: boolean }[] = [];
  let i = 0;

  const endCommand = () => {
    const words = current;
    current = [];
    let start = 0;
    while (start < words.length && isAssignment(words[start])) start++;
    const rest = words.slice(start);
    if (rest.length === 0) return;
    const head = rest[0];
    if (head.kind !== "literal") {
      throw new Refusal(`expansion in the command word "${head.raw}"`);
    }
    if (KEYWORDS.has(head.text)) throw new Refusal(`shell keyword "${head.text}"`);
    if (OPAQUE_BUILTINS.has(head.text)) {
      throw new Refusal(`the builtin "${head.text}" can run or redefine code`);
    }
    if (SUBSCRIPT_BUILTINS.has(head.text)) {
      const bad = rest.slice(1).find((w) => w.raw.includes("[") || w.raw === "-v");
      if (bad !== undefined) {
        throw new Refusal(`"${head.text} ${bad.raw}" may evaluate an array subscript`);
      }
    }
    // Assignments stay in front: they set the command's environment (GIT_CONFIG_*).
    commands.push(
      words.map((w) => ({ kind: w.kind, text: w.kind === "literal" ? w.text : w.raw })),
    );
  };

  const readHeredocBodies = () => {
    while (heredocs.length > 0) {
      const { delimiter, stripTabs } = heredocs.shift()!;
      while (i < chars.length) {
        let end = chars.indexOf("\n", i);
        if (end === -1) end = chars.length;
        let line = chars.slice(i, end).join("");
        i = end + 1;
        if (stripTabs) line = line.replace(/^\t+/, "");
        if (line === delimiter) break;
      }
    }
  };

  const readWord = (): LexedWord | null => {
    const start = i;
    let text = "";
    let single = false;
    let multi = false;
    let quoted = false;
    while (i < chars.length && !WORD_END.has(chars[i])) {
      const c = chars[i];
      if (c === "'") {
        const end = chars.indexOf("'", i + 1);
        if (end === -1) throw new Refusal(`unclosed single quote at offset ${i}`);
        text += chars.slice(i + 1, end).join("");
        quoted = true;
        i = end + 1;
      } else if (c === '"') {
        quoted = true;
        i++;
        for (;;) {
          if (i >= chars.length) throw new Refusal(`unclosed double quote at offset ${start}`);
          const d = chars[i];
          if (d === '"') {
            i++;
            break;
          }
          if (d === "\\" && i + 1 < chars.length && '"\\$`\n'.includes(chars[i + 1])) {
            if (chars[i + 1] !== "\n") text += chars[i + 1];
            i += 2;
          } else if (d === "$") {
            const kind = readDollar(true);
            if (kind === "multi") multi = true;
            else if (kind === "single") single = true;
            else text += "$";
          } else {
            text += d;
            i++;
          }
        }
      } else if (c === "\\") {
        quoted = true;
        if (i + 1 >= chars.length) {
          text += "\\";
          i++;
        } else {
          if (chars[i + 1] !== "\n") text += chars[i + 1];
          i += 2;
        }
      } else if (c === "$") {
        const kind = readDollar(false);
        if (kind === "literal") text += "$";
        else if (kind === "single") single = true;
        else multi = true;
      } else if (c === "*" || c === "?") {
        multi = true; // pathname expansion
        text += c;
        i++;
      } else if (c === "[" && hasLater(chars, i, "]")) {
        multi = true;
        text += c;
        i++;
      } else if (c === "{" && hasLater(chars, i, "}")) {
        multi = true; // brace expansion (bash, zsh)
        text += c;
        i++;
      } else if ((c === "~" || c === "=") && i === start) {
        single = true; // tilde expansion; zsh's `=cmd`
        text += c;
        i++;
      } else {
        text += c;
        i++;
      }
    }
    if (i === start) return null;
    const raw = chars.slice(start, i).join("");
    return { text, raw, kind: multi ? "multi" : single ? "single" : "literal", quoted };
  };

  /** At a `$`: consumes the expansion; says whether it is literal, one word or many. */
  const readDollar = (inDoubleQuotes: boolean): "literal" | "single" | "multi" => {
    const next = chars[i + 1];
    const unquotedKind = inDoubleQuotes ? "single" : "multi";
    if (next === undefined) {
      i++;
      return "literal";
    }
    if (!inDoubleQuotes && (next === "'" || next === '"')) {
      // $'…' (ANSI-C) and $"…" (locale): their value depends on the shell.
      const close = next === "'" ? findAnsiClose(chars, i + 2) : chars.indexOf('"', i + 2);
      if (close === -1) throw new Refusal(`unclosed quote at offset ${i + 1}`);
      i = close + 1;
      return "single";
    }
    if (next === "{") {
      const close = chars.indexOf("}", i + 2);
      if (close === -1) throw new Refusal(`unclosed "\${" at offset ${i}`);
      const body = chars.slice(i + 2, close).join("");
      if (!SIMPLE_PARAM.test(body)) {
        throw new Refusal(`parameter expansion "\${${body}}" is too complex to follow`);
      }
      i = close + 1;
      return inDoubleQuotes && body.startsWith("@") ? "multi" : unquotedKind;
    }
    if (/[A-Za-z_]/.test(next)) {
      i += 2;
      while (i < chars.length && /[A-Za-z0-9_]/.test(chars[i])) i++;
      return unquotedKind;
    }
    if (/[0-9@*#?$!-]/.test(next)) {
      i += 2;
      return inDoubleQuotes && next === "@" ? "multi" : unquotedKind;
    }
    i++;
    return "literal";
  };

  const readRedirect = () => {
    const c = chars[i];
    const two = chars.slice(i, i + 2).join("");
    const three = chars.slice(i, i + 3).join("");
    let op: string;
    if (c === "&") op = three === "&>>" ? "&>>" : "&>";
    else if (three === "<<<") op = "<<<";
    else if (three === "<<-") op = "<<-";
    else if (["<<", "<>", "<&", ">>", ">|", ">&"].includes(two)) op = two;
    else op = c;
    i += op.length;
    while (i < chars.length && BLANKS.has(chars[i])) i++;
    const target = readWord();
    if (target === null) throw new Refusal(`redirection "${op}" without a target`);
    if (op === "<<" || op === "<<-") {
      if (!target.quoted) {
        throw new Refusal(`here-document "${op}${target.raw}" with expansion`);
      }
      heredocs.push({ delimiter: target.text, stripTabs: op === "<<-" });
    }
  };

  while (i < chars.length) {
    const c = chars[i];
    const next = chars[i + 1];
    if (BLANKS.has(c)) {
      i++;
    } else if (c === "\\" && next === "\n") {
      i += 2;
    } else if (c === "\n") {
      endCommand();
      i++;
      readHeredocBodies();
    } else if (c === "#") {
      while (i < chars.length && chars[i] !== "\n") i++;
    } else if (c === ";") {
      if (next === ";" || next === "&") throw new Refusal(`case terminator at offset ${i}`);
      endCommand();
      i++;
    } else if (c === "&") {
      if (next === ">") {
        readRedirect();
      } else {
        endCommand();
        i += next === "&" ? 2 : 1;
      }
    } else if (c === "|") {
      endCommand();
      i += next === "|" || next === "&" ? 2 : 1;
    } else if (c === "(" || c === ")") {
      throw new Refusal(`subshell, function definition or arithmetic "${c}" at offset ${i}`);
    } else if (c === "<" || c === ">") {
      readRedirect();
    } else {
      const word = readWord();
      if (word === null) throw new Refusal(`unexpected "${c}" at offset ${i}`);
      if (chars[i] === "<" || chars[i] === ">") {
        if (/^[0-9]+$/.test(word.raw)) {
          readRedirect(); // `2>file`: the digits name a file descriptor
          continue;
        }
        if (/^\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(word.raw)) {
          throw new Refusal(`named file descriptor redirection "${word.raw}"`);
        }
      }
      current.push(word);
    }
  }
  endCommand();
  return commands;
}

function isAssignment(word: LexedWord): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*\+?=/.test(word.raw);
}

function hasLater(chars: string[], from: number, close: string): boolean {
  for (let j = from + 1; j < chars.length && !WORD_END.has(chars[j]); j++) {
    if (chars[j] === close) return true;
  }
  return false;
}

function findAnsiClose(chars: string[], from: number): number {
  for (let j = from; j < chars.length; j++) {
    if (chars[j] === "\\") j++;
    else if (chars[j] === "'") return j;
  }
  return -1;
}

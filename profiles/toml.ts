/**
 * TOML text to `unknown`, with problems (not exceptions) for bad syntax and
 * duplicate keys, and a best-effort map from key paths back to the lines
 * that wrote them, so that every validation problem can say `FILE:LINE`.
 *
 * @module
 */
import type { ConfigProblem } from "../errors.ts";
import { parsePlainToml, type PlainTomlOptions } from "./_toml_fast.ts";

/** The result of {@linkcode parseTomlText}: the parsed value, or the syntax problem. */
export type ParsedToml =
  | { readonly ok: true; readonly value: Record<string, unknown>; readonly lines: KeyLines }
  | { readonly ok: false; readonly problems: readonly ConfigProblem[] };

/**
 * Parses `text` (read from `file`). Duplicate keys and redefined tables are
 * errors, as the TOML spec says; they come back as a problem with the line.
 * `options.entries` (for the config validator only): a plain file's
 * `domains` tables come back as `PlainEntries` (see profiles/_toml_fast.ts).
 *
 * Asynchronous because the TOML parser (smol-toml) is imported on the first
 * call: a run without a config file never loads it, which keeps it out of
 * `sandbox run`'s start-up.
 *
 * @example
 * ```ts
 * const parsed = await parseTomlText('a = 1\na = 2\n', "x.toml");
 * // { ok: false, problems: [{ file: "x.toml", line: 2, keyPath: "", message: "Duplicate key or table: …" }] }
 * ```
 */
export async function parseTomlText(
  text: string,
  file: string,
  options: PlainTomlOptions = {},
): Promise<ParsedToml> {
  // Plain files (and large allowlists are plain) are read without loading smol-toml at all.
  const plain = parsePlainToml(text, options);
  if (plain !== null) return { ok: true, value: plain, lines: lazyKeyLines(text) };
  const { parse, TomlError } = await import("smol-toml");
  let value: unknown;
  try {
    value = parse(text);
  } catch (error) {
    if (error instanceof TomlError) {
      const first = error.message.split("\n")[0].replace(/^Invalid TOML document: /, "");
      const duplicate = /redefine an already defined/.test(first);
      const unclosed = duplicate ? null : findUnclosedBracket(text, error.line);
      return {
        ok: false,
        problems: [{
          file,
          line: unclosed?.line ?? error.line,
          keyPath: "",
          message: duplicate
            ? "Duplicate key or table: each key and table may be defined only once (TOML forbids redefinition)"
            : unclosed !== null
            ? `Invalid TOML: ${unclosed.message}`
            : `Invalid TOML: ${first}`,
        }],
      };
    }
    return {
      ok: false,
      problems: [{ file, keyPath: "", message: `Invalid TOML: ${String(error)}` }],
    };
  }
  return { ok: true, value: value as Record<string, unknown>, lines: lazyKeyLines(text) };
}

/**
 * The line index is only needed to place a problem: built on the first
 * question, not on every load (it costs as much as parsing for a
 * 10,000-rule allowlist).
 */
function lazyKeyLines(text: string): KeyLines {
  let index: KeyLines | null = null;
  return { lineOf: (path) => (index ??= indexKeyLines(text)).lineOf(path) };
}

/** A bracket the parser found unclosed: the line it was opened on and a sentence for the user. */
interface UnclosedBracket {
  readonly line: number;
  readonly message: string;
}

/**
 * Looks for the usual cause of a parse error at `errorLine`: a table header
 * without its closing `]` (`[permissions.ci`), or an array or inline table
 * whose `]` or `}` never comes. The parser itself reports these as "illegal
 * character in key" or "expected comma or end of structure" somewhere later,
 * which does not say what is missing; this names it and where it was opened.
 * Returns null when the text up to the error has no such bracket.
 */
function findUnclosedBracket(text: string, errorLine: number): UnclosedBracket | null {
  const lines = text.split(/\r?\n/);
  // Open value brackets: [char, line, key] of each `[`/`{` not yet closed, outside strings and comments.
  const open: { char: string; line: number; key: string }[] = [];
  let key = "";
  for (let i = 0; i < lines.length && i < errorLine; i++) {
    const raw = lines[i];
    const trimmed = raw.trim();
    let start = 0;
    if (open.length === 0) {
      if (trimmed === "" || trimmed.startsWith("#")) continue;
      if (trimmed.startsWith("[")) {
        const double = trimmed.startsWith("[[");
        const close = double ? "]]" : "]";
        const body = stripComment(trimmed);
        if (!body.endsWith(close) || (!double && body.endsWith("]]") && !body.startsWith("[["))) {
          const name = body.replace(/^\[\[?/, "").replace(/\]+$/, "").trim();
          return {
            line: i + 1,
            message:
              `The table header "${body}" on line ${i + 1} is missing its closing "${close}": ` +
              `write ${double ? "[[" : "["}${name}${close}`,
          };
        }
        continue;
      }
      const eq = findAssignment(trimmed);
      if (eq === -1) continue;
      key = trimmed.slice(0, eq).trim();
      start = raw.indexOf("=") + 1;
    }
    let quote: string | null = null;
    for (let j = start; j < raw.length; j++) {
      const c = raw[j];
      if (quote !== null) {
        if (c === "\\" && quote === '"') j++;
        else if (c === quote) quote = null;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === "#") break;
      else if (c === "[" || c === "{") open.push({ char: c, line: i + 1, key });
      else if (c === "]" || c === "}") open.pop();
    }
  }
  const innermost = open[open.length - 1];
  if (innermost === undefined) return null;
  const what = innermost.char === "[" ? "array" : "inline table";
  const close = innermost.char === "[" ? "]" : "}";
  return {
    line: innermost.line,
    message: `The ${what} of key "${innermost.key}" opened on line ${innermost.line} is missing ` +
      `its closing "${close}" (the parser gave up on line ${errorLine})`,
  };
}

function stripComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== null) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#") return line.slice(0, i).trim();
  }
  return line.trim();
}

/** Line numbers of key paths in one TOML text; see {@linkcode indexKeyLines}. */
export interface KeyLines {
  /** The 1-based line of `path`, or of its longest written prefix, or undefined. */
  lineOf(path: readonly string[]): number | undefined;
}

/**
 * Scans TOML text for table headers and `key = value` lines and records the
 * line each full key path was written on. Best effort: keys inside inline
 * tables and multi-line values fall back to the line of their nearest parent.
 */
export function indexKeyLines(text: string): KeyLines {
  const map = new Map<string, number>();
  let table: string[] = [];
  let multiline: string | null = null;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (multiline !== null) {
      if (raw.includes(multiline)) multiline = null;
      continue;
    }
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[\[?(.*?)\]\]?\s*(#.*)?$/.exec(line);
    if (header !== null && !line.includes("=")) {
      const keys = splitDottedKey(header[1]);
      if (keys !== null) {
        table = keys;
        remember(map, table, i + 1);
      }
      continue;
    }
    const eq = findAssignment(line);
    if (eq === -1) continue;
    const keys = splitDottedKey(line.slice(0, eq));
    if (keys === null) continue;
    const full = [...table, ...keys];
    // The table's own prefixes were recorded at its header.
    remember(map, full, i + 1, table.length);
    const rest = line.slice(eq + 1).trim();
    // Record keys of a one-line inline table (`k = { a = 1, b = 2 }`) on the same line.
    if (rest.startsWith("{")) recordInline(map, full, rest, i + 1);
    for (const quote of ['"""', "'''"]) {
      const at = rest.indexOf(quote);
      if (at !== -1 && rest.indexOf(quote, at + 3) === -1) multiline = quote;
    }
  }
  return {
    lineOf(path) {
      for (let n = path.length; n > 0; n--) {
        const hit = map.get(JSON.stringify(path.slice(0, n)));
        if (hit !== undefined) return hit;
      }
      return undefined;
    },
  };
}

function remember(
  map: Map<string, number>,
  path: readonly string[],
  line: number,
  known = 0,
): void {
  // Record every prefix too (a dotted key `a.b.c = 1` defines a and a.b on that line), first write
  // wins. The keys are JSON.stringify(path.slice(0, n)), built up one part at a time.
  let key = "[";
  for (let n = 1; n <= path.length; n++) {
    key += (n > 1 ? "," : "") + JSON.stringify(path[n - 1]);
    if (n <= known) continue;
    const full = key + "]";
    if (!map.has(full)) map.set(full, line);
  }
}

function recordInline(map: Map<string, number>, base: string[], text: string, line: number): void {
  const inner = text.slice(1);
  const re =
    /(?:^|,)\s*((?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*)\s*=/g;
  for (const match of inner.matchAll(re)) {
    const keys = splitDottedKey(match[1]);
    if (keys !== null) remember(map, [...base, ...keys], line);
  }
}

/** Index of the `=` that ends the key part of a `key = value` line, or -1. */
function findAssignment(line: string): number {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== null) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "=") return i;
    else if (c === "#") return -1;
  }
  return -1;
}

/** Splits a TOML dotted key (`a."b.c".'d'`) into its parts, or null when it is not one. */
export function splitDottedKey(text: string): string[] | null {
  const parts: string[] = [];
  let i = 0;
  const s = text.trim();
  while (i < s.length) {
    while (s[i] === " " || s[i] === "\t") i++;
    if (s[i] === '"') {
      let j = i + 1;
      let out = "";
      while (j < s.length && s[j] !== '"') {
        if (s[j] === "\\") {
          const esc = s[j + 1];
          const simple: Record<string, string> = {
            n: "\n",
            t: "\t",
            '"': '"',
            "\\": "\\",
            r: "\r",
          };
          if (esc in simple) {
            out += simple[esc];
            j += 2;
            continue;
          }
          if (esc === "u" || esc === "U") {
            const len = esc === "u" ? 4 : 8;
            out += String.fromCodePoint(parseInt(s.slice(j + 2, j + 2 + len), 16));
            j += 2 + len;
            continue;
          }
          return null;
        }
        out += s[j++];
      }
      if (j >= s.length) return null;
      parts.push(out);
      i = j + 1;
    } else if (s[i] === "'") {
      const j = s.indexOf("'", i + 1);
      if (j === -1) return null;
      parts.push(s.slice(i + 1, j));
      i = j + 1;
    } else {
      const m = /^[A-Za-z0-9_-]+/.exec(s.slice(i));
      if (m === null) return null;
      parts.push(m[0]);
      i += m[0].length;
    }
    while (s[i] === " " || s[i] === "\t") i++;
    if (i >= s.length) break;
    if (s[i] !== ".") return null;
    i++;
  }
  return parts.length > 0 ? parts : null;
}

/**
 * Renders a key path the way a user writes it: bare keys as they are, any
 * other key quoted, e.g. `permissions.ci.network.domains."*"`.
 */
export function formatKeyPath(path: readonly string[]): string {
  return path.map((k) => /^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k)).join(".");
}

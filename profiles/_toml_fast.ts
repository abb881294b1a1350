/**
 * A fast reader for the plain subset of TOML that large config files are
 * written in (a managed allowlist of 100,000 `"host" = "allow"` lines):
 * blank and comment lines, `[table.header]` lines, and `key = value` lines
 * with one bare or quoted key and a string, boolean or decimal integer
 * value. It returns null for anything else (arrays, inline tables, dotted
 * keys, escapes, other value types, non-ASCII text, a redefined key or
 * table), and the caller then parses the text with smol-toml: so every
 * error and every unusual construct is still judged by the full parser, and
 * whatever this reader accepts parses to the same value there (a property
 * test holds the two together). smol-toml spends several microseconds per
 * key on bookkeeping that this subset does not need.
 *
 * @module
 */

// Printable ASCII without `"` and `\`: a basic string with no escapes.
const PLAIN = "[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]";
const KEY = `(?:[A-Za-z0-9_-]+|"${PLAIN}*")`;
const COMMENT = "(?:#[\\t\\x20-\\x7e]*)?";
const END = "[ \\t]*" + COMMENT + "(?:\\r?\\n|$)";
const BLANK = new RegExp(END, "y");
const HEADER = new RegExp(`[ \\t]*\\[(${KEY}(?:\\.${KEY})*)\\]${END}`, "y");
const PAIR = new RegExp(
  `[ \\t]*(?:([A-Za-z0-9_-]+)|"(${PLAIN}*)")[ \\t]*=[ \\t]*` +
    `(?:"((?:${PLAIN}|\\t)*)"|(true|false)|(0|-?[1-9][0-9]{0,14}))${END}`,
  "y",
);
const HEADER_KEY = new RegExp(`([A-Za-z0-9_-]+)|"(${PLAIN}*)"`, "y");

type Table = Record<string, unknown>;

function newTable(): Table {
  return Object.create(null) as Table;
}

function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null;
}

/** The parts of a header's dotted key (already known to match `KEY(.KEY)*`). */
function headerParts(inner: string): string[] {
  const parts: string[] = [];
  HEADER_KEY.lastIndex = 0;
  for (;;) {
    const match = HEADER_KEY.exec(inner)!;
    parts.push(match[1] ?? match[2]);
    if (HEADER_KEY.lastIndex >= inner.length) return parts;
    HEADER_KEY.lastIndex++; // The dot.
  }
}

/**
 * Parses `text` if it is written entirely in the plain subset; null
 * otherwise (then parse it with a full TOML parser).
 *
 * @example
 * ```ts
 * parsePlainToml('[network.domains]\n"a.test" = "allow"\n');
 * // { network: { domains: { "a.test": "allow" } } } (null-prototype objects)
 * parsePlainToml("a = [1, 2]\n"); // null
 * ```
 */
export function parsePlainToml(text: string): Record<string, unknown> | null {
  if (text.charCodeAt(0) === 0xfeff) return null;
  const root = newTable();
  const explicit = new Set<Table>();
  let current = root;
  let at = 0;
  while (at < text.length) {
    const first = text.charCodeAt(at);
    // A key line starts with a letter, digit, quote, `_` or `-` (after any indent).
    PAIR.lastIndex = at;
    const pair = first === 0x5b || first === 0x23 || first === 0x0a || first === 0x0d
      ? null
      : PAIR.exec(text);
    if (pair !== null) {
      const key = pair[1] ?? pair[2];
      if (key === "__proto__" || Object.hasOwn(current, key)) return null;
      current[key] = pair[3] !== undefined
        ? pair[3]
        : pair[4] !== undefined
        ? pair[4] === "true"
        : Number(pair[5]);
      at = PAIR.lastIndex;
      continue;
    }
    BLANK.lastIndex = at;
    if (BLANK.exec(text) !== null) {
      at = BLANK.lastIndex;
      continue;
    }
    HEADER.lastIndex = at;
    const header = HEADER.exec(text);
    if (header === null) return null;
    at = HEADER.lastIndex;
    const parts = headerParts(header[1]);
    let table = root;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part === "__proto__") return null;
      const found = table[part];
      if (found === undefined) {
        const made = newTable();
        table[part] = made;
        table = made;
      } else if (isTable(found)) {
        table = found;
      } else {
        return null; // A value, not a table.
      }
    }
    if (explicit.has(table)) return null; // Defined twice.
    explicit.add(table);
    current = table;
  }
  return root;
}

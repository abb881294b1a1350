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

/** `"` and `\`, the two printable ASCII characters a plain basic string may not hold. */
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Printable ASCII except `"` and `\`. */
function isPlainChar(code: number): boolean {
  return code >= 0x20 && code <= 0x7e && code !== QUOTE && code !== BACKSLASH;
}

/** A bare key character: `A-Za-z0-9_-`. */
function isBareKeyChar(code: number): boolean {
  return (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x30 && code <= 0x39) || code === 0x5f || code === 0x2d;
}

function skipBlanks(text: string, at: number): number {
  let code = text.charCodeAt(at);
  while (code === 0x20 || code === 0x09) code = text.charCodeAt(++at);
  return at;
}

/**
 * The end of a line after a value: blanks, an optional comment, then a line
 * break or the end of the text. Returns where the next line starts, or -1.
 */
function lineEnd(text: string, at: number): number {
  at = skipBlanks(text, at);
  let code = text.charCodeAt(at);
  if (code === 0x23) { // `#`: printable ASCII or tabs up to the line break.
    code = text.charCodeAt(++at);
    while ((code >= 0x20 && code <= 0x7e) || code === 0x09) code = text.charCodeAt(++at);
  }
  if (code === 0x0a) return at + 1;
  if (code === 0x0d) return text.charCodeAt(at + 1) === 0x0a ? at + 2 : -1;
  return at >= text.length ? at : -1;
}

// The key and value of the last line `scanPair` accepted (no result object per line).
let pairKey = "";
let pairValue: string | boolean | number = "";

/**
 * Reads a `key = value` line of the subset at `at` (the scanner behind the
 * fast path: a large allowlist is 100,000 of these). Returns where the next
 * line starts and sets `pairKey`/`pairValue`, or returns -1 when the line is
 * not such a line (then it may be blank, a header, or outside the subset).
 * Accepts exactly: blanks, a bare key (`A-Za-z0-9_-`) or a quoted key of
 * printable ASCII without `"` and `\`, blanks, `=`, blanks, then a string of
 * those characters and tabs, `true`, `false`, or a decimal integer of at
 * most 15 digits without leading zero or `+`, then {@linkcode lineEnd}.
 */
function scanPair(text: string, at: number): number {
  at = skipBlanks(text, at);
  let code = text.charCodeAt(at);
  const keyStart = at;
  if (code === QUOTE) {
    code = text.charCodeAt(++at);
    while (isPlainChar(code)) code = text.charCodeAt(++at);
    if (code !== QUOTE) return -1;
    pairKey = text.slice(keyStart + 1, at);
    at++;
  } else {
    while (isBareKeyChar(code)) code = text.charCodeAt(++at);
    if (at === keyStart) return -1;
    pairKey = text.slice(keyStart, at);
  }
  at = skipBlanks(text, at);
  if (text.charCodeAt(at) !== 0x3d) return -1; // `=`
  at = skipBlanks(text, at + 1);
  code = text.charCodeAt(at);
  const valueStart = at;
  if (code === QUOTE) {
    code = text.charCodeAt(++at);
    while (isPlainChar(code) || code === 0x09) code = text.charCodeAt(++at);
    if (code !== QUOTE) return -1;
    pairValue = plainString(text, valueStart + 1, at);
    at++;
  } else if (code === 0x74 && text.startsWith("true", at)) {
    pairValue = true;
    at += 4;
  } else if (code === 0x66 && text.startsWith("false", at)) {
    pairValue = false;
    at += 5;
  } else if (code === 0x30) { // `0`: alone.
    pairValue = 0;
    at++;
  } else {
    if (code === 0x2d) code = text.charCodeAt(++at); // `-`
    if (!(code >= 0x31 && code <= 0x39)) return -1;
    const digits = at;
    code = text.charCodeAt(++at);
    while (code >= 0x30 && code <= 0x39 && at - digits < 15) code = text.charCodeAt(++at);
    pairValue = Number(text.slice(valueStart, at));
  }
  return lineEnd(text, at);
}

/** The string between `start` and `end`; the rule actions share one string each. */
function plainString(text: string, start: number, end: number): string {
  const length = end - start;
  if (length === 5 && text.startsWith("allow", start)) return "allow";
  if (length === 4 && text.startsWith("deny", start)) return "deny";
  return text.slice(start, end);
}

/**
 * The entries of a `[….domains]` table as the reader found them, in order,
 * instead of an object: see {@linkcode PlainTomlOptions.entries}. Keys are
 * distinct, none is `__proto__` or an array index (which an object would
 * enumerate first), so iterating `keys` visits the entries exactly as
 * `Object.keys` would visit the object's.
 */
export class PlainEntries {
  /** The keys, in file order. */
  readonly keys: string[] = [];
  /** The value of each key. */
  readonly values: unknown[] = [];
}

/** Options for {@linkcode parsePlainToml}. */
export interface PlainTomlOptions {
  /**
   * Every table whose header ends in `domains` becomes a
   * {@linkcode PlainEntries} instead of an object. Building an object of
   * 100,000 keys costs V8 a string hash and a dictionary insert per key
   * (most of a large allowlist's start-up); the entries are checked for
   * duplicates with a hash in plain JavaScript instead. Only for a reader
   * that understands them (the config validator); {@linkcode materializeEntries}
   * turns them into objects.
   */
  readonly entries?: boolean;
}

/** A canonical array index (`0`, `17`, …): an object enumerates such keys first. */
function isIndexKey(key: string): boolean {
  const first = key.charCodeAt(0);
  if (!(first >= 0x30 && first <= 0x39)) return false;
  return /^(?:0|[1-9][0-9]*)$/.test(key) && Number(key) < 4294967295;
}

/**
 * Whether `keys` holds a duplicate (FNV-1a in an open-addressed table of
 * positions), or null when the probing runs long (a crafted set of keys:
 * let the full parser decide).
 */
function hasDuplicate(keys: readonly string[]): boolean | null {
  let size = 16;
  while (size < keys.length * 2) size *= 2;
  const mask = size - 1;
  const slots = new Int32Array(size).fill(-1);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    let hash = 0x811c9dc5;
    for (let j = 0; j < key.length; j++) hash = Math.imul(hash ^ key.charCodeAt(j), 0x01000193);
    let slot = hash & mask;
    for (let probe = 0;; probe++) {
      const held = slots[slot];
      if (held === -1) {
        slots[slot] = i;
        break;
      }
      if (keys[held] === key) return true;
      if (probe > 64) return null;
      slot = (slot + 1) & mask;
    }
  }
  return false;
}

/**
 * A parsed value with every {@linkcode PlainEntries} turned into the object
 * it stands for (null prototype, as the reader's other tables).
 */
export function materializeEntries(value: unknown): unknown {
  if (value instanceof PlainEntries) {
    const table = newTable();
    for (let i = 0; i < value.keys.length; i++) table[value.keys[i]] = value.values[i];
    return table;
  }
  if (isTable(value)) {
    for (const key of Object.keys(value)) {
      const inner = value[key];
      if (isTable(inner)) value[key] = materializeEntries(inner);
    }
  }
  return value;
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
export function parsePlainToml(
  text: string,
  options: PlainTomlOptions = {},
): Record<string, unknown> | null {
  if (text.charCodeAt(0) === 0xfeff) return null;
  const root = newTable();
  const explicit = new Set<Table>();
  const entryTables: PlainEntries[] = [];
  let current: Table = root;
  let entries: PlainEntries | null = null; // Set while `current` is an entries table.
  let at = 0;
  while (at < text.length) {
    const first = text.charCodeAt(at);
    // A key line starts with a letter, digit, quote, `_` or `-` (after any indent).
    const next = first === 0x5b || first === 0x23 || first === 0x0a || first === 0x0d
      ? -1
      : scanPair(text, at);
    if (next !== -1) {
      const key = pairKey;
      if (entries !== null) {
        // Duplicates are looked for once the whole text is read.
        if (key === "__proto__" || isIndexKey(key)) return null;
        entries.keys.push(key);
        entries.values.push(pairValue);
      } else {
        if (key === "__proto__" || Object.hasOwn(current, key)) return null;
        current[key] = pairValue;
      }
      at = next;
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
    entries = null;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part === "__proto__") return null;
      const found = table[part];
      if (found instanceof PlainEntries) {
        return null; // Defined twice, or a table under it: the full parser says which.
      } else if (found === undefined) {
        if (options.entries === true && i === parts.length - 1 && part === "domains") {
          entries = new PlainEntries();
          entryTables.push(entries);
          table[part] = entries;
          break;
        }
        const made = newTable();
        table[part] = made;
        table = made;
      } else if (isTable(found)) {
        table = found;
      } else {
        return null; // A value, not a table.
      }
    }
    if (entries !== null) continue;
    if (explicit.has(table)) return null; // Defined twice.
    explicit.add(table);
    current = table;
  }
  for (const table of entryTables) {
    if (hasDuplicate(table.keys) !== false) return null;
  }
  return root;
}

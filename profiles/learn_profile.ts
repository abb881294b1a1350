/**
 * What `sandbox learn` writes, as pure functions: the hosts a run used
 * become a TOML profile ({@linkcode renderLearnedProfile}), or are added to
 * an existing profile by editing its text ({@linkcode mergeLearnedHosts}), so
 * that the file keeps its comments, its layout and every other key.
 *
 * @module
 */
import { isDeepStrictEqual } from "node:util";
import { parse, TomlError } from "smol-toml";
import { ConfigError } from "../errors.ts";

/** One allowed host. */
export interface AllowedHost {
  /** The host. */
  readonly host: string;
  /** Ports used, sorted. */
  readonly ports: readonly number[];
  /** Protocols used, sorted. */
  readonly protocols: readonly string[];
  /** How many connections or requests were allowed. */
  readonly count: number;
}

/** The profile name `sandbox learn` uses when none is given or set. */
export const LEARNED_PROFILE_NAME = "learned";

/** Renders a TOML key: bare when it can be, otherwise a quoted basic string. */
export function tomlKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : tomlString(key);
}

/** Renders a TOML basic string, escaping quotes, backslashes and control characters. */
export function tomlString(text: string): string {
  let out = '"';
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (char === '"') out += '\\"';
    else if (char === "\\") out += "\\\\";
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += char;
  }
  return out + '"';
}

function commentText(text: string): string {
  // A comment ends at the line end and may not hold control characters.
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]+/g, " ");
}

/** A one-line description of how a host was used, for the comment beside its entry. */
export function describeUse(host: AllowedHost): string {
  const connections = `${host.count} connection${host.count === 1 ? "" : "s"}`;
  const ports = `port${host.ports.length === 1 ? "" : "s"} ${host.ports.join(", ")}`;
  return `${connections}; ${ports}; ${host.protocols.join(", ")}`;
}

/** Formats a command line for a comment: arguments with spaces or quotes are quoted. */
export function describeCommand(command: readonly string[]): string {
  return command.map((arg) =>
    /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`
  )
    .join(" ");
}

/** Options for {@linkcode renderLearnedProfile}. */
export interface RenderLearnedProfileOptions {
  /** The command that was learned. */
  readonly command: readonly string[];
  /** The profile name; {@linkcode LEARNED_PROFILE_NAME} unless set. */
  readonly profile?: string;
  /** The time written in the header comment (RFC 3339); now unless set. */
  readonly time?: string;
}

function sortHosts(hosts: readonly AllowedHost[]): AllowedHost[] {
  return [...hosts].sort((a, b) => a.host < b.host ? -1 : a.host > b.host ? 1 : 0);
}

function entryLines(hosts: readonly AllowedHost[], eol: string): string {
  return sortHosts(hosts).map((h) =>
    `${tomlString(h.host)} = "allow" # ${commentText(describeUse(h))}${eol}`
  ).join("");
}

/**
 * A complete profile that allows exactly `hosts` (sorted), each with a
 * comment of how it was used, selected by `default_permissions` so that
 * `sandbox run --config FILE` uses it.
 *
 * @example
 * ```ts
 * renderLearnedProfile(
 *   [{ host: "a.test", ports: [443], protocols: ["https-connect"], count: 2 }],
 *   { command: ["npm", "ci"], time: "2025-01-01T00:00:00.000Z" },
 * );
 * // # Written by `sandbox learn` at 2025-01-01T00:00:00.000Z for: npm ci
 * // …
 * // [permissions.learned.network.domains]
 * // "a.test" = "allow" # 2 connections; port 443; https-connect
 * ```
 */
export function renderLearnedProfile(
  hosts: readonly AllowedHost[],
  options: RenderLearnedProfileOptions,
): string {
  const profile = options.profile ?? LEARNED_PROFILE_NAME;
  const time = options.time ?? new Date().toISOString();
  const total = hosts.reduce((sum, h) => sum + h.count, 0);
  const table = `permissions.${tomlKey(profile)}.network`;
  const header = [
    `# Written by \`sandbox learn\` at ${time} for: ${
      commentText(describeCommand(options.command))
    }`,
    `# An allowlist of exactly the ${hosts.length} host${
      hosts.length === 1 ? "" : "s"
    } the command used (${total} connection${total === 1 ? "" : "s"} in all).`,
    "# Use it with: sandbox run --config THIS_FILE -- COMMAND",
    "# Add hosts with: sandbox learn --merge THIS_FILE -- COMMAND",
  ];
  const body = hosts.length === 0 ? "# (the command used no network)\n" : entryLines(hosts, "\n");
  return `${header.join("\n")}\n\ndefault_permissions = ${
    tomlString(profile)
  }\n\n[${table}]\nenabled = true\n\n[${table}.domains]\n${body}`;
}

/** Options for {@linkcode mergeLearnedHosts}. */
export interface MergeLearnedHostsOptions {
  /** The file the text came from, for messages. */
  readonly file: string;
  /** The command that was learned. */
  readonly command: readonly string[];
  /** The profile to add to: this, else the file's `default_permissions`, else a new `learned` profile. */
  readonly profile?: string;
  /** The time written in the comment above the added entries; now unless set. */
  readonly time?: string;
}

/** What {@linkcode mergeLearnedHosts} did. */
export interface MergeResult {
  /** The new file text (equal to the input when nothing was added). */
  readonly text: string;
  /** The profile the hosts went into. */
  readonly profile: string;
  /** Hosts added, sorted. */
  readonly added: readonly string[];
  /** Hosts that already had an `allow` entry. */
  readonly alreadyAllowed: readonly string[];
  /** Hosts the file denies: left as they are (a learned use never overrides a deny). */
  readonly keptDenied: readonly string[];
}

/**
 * Adds `hosts` as `"host" = "allow"` entries to the domains table of a
 * profile in `text`, by editing the text: entries go after the last entry of
 * an existing `[permissions.NAME.network.domains]` table, or into a new table
 * appended at the end. Comments, order and every other key stay as written.
 * The result is parsed again and compared with the original plus the new
 * entries; anything else is refused rather than written.
 *
 * Throws a {@linkcode ConfigError} when the text is not valid TOML, when the
 * domains of the profile are written in a form that cannot be extended in
 * place (an inline table), or when no profile can be chosen.
 *
 * @example
 * ```ts
 * const { text, added } = mergeLearnedHosts(
 *   '# mine\ndefault_permissions = "ci"\n[permissions.ci.network.domains]\n"a.test" = "allow"\n',
 *   [{ host: "b.test", ports: [80], protocols: ["http"], count: 1 }],
 *   { file: "ci.toml", command: ["make"] },
 * );
 * // added = ["b.test"]; text keeps "# mine" and gains '"b.test" = "allow" # 1 connection; port 80; http'
 * ```
 */
export function mergeLearnedHosts(
  text: string,
  hosts: readonly AllowedHost[],
  options: MergeLearnedHostsOptions,
): MergeResult {
  const file = options.file;
  const original = parseOrThrow(text, file);
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  const permissions = asTable(original.permissions);
  const defaultName = typeof original.default_permissions === "string"
    ? original.default_permissions
    : null;
  let profile: string;
  let addDefault = false;
  if (options.profile !== undefined) profile = options.profile;
  else if (defaultName !== null) profile = defaultName;
  else if (permissions === null || Object.keys(permissions).length === 0) {
    profile = LEARNED_PROFILE_NAME;
    addDefault = true;
  } else {
    throw new ConfigError([{
      file,
      keyPath: "default_permissions",
      message: `Cannot tell which profile to add the learned hosts to: the file defines ${
        Object.keys(permissions).map((p) => `"${p}"`).join(", ")
      } and no default_permissions: pass --profile NAME`,
    }]);
  }
  const network = asTable(asTable(permissions?.[profile])?.network);
  const domains = network?.domains;
  if (domains !== undefined && asTable(domains) === null) {
    throw new ConfigError([{
      file,
      keyPath: `permissions.${tomlKey(profile)}.network.domains`,
      message: 'Expected a table of "pattern" = "allow" | "deny"',
    }]);
  }
  const existing = new Map<string, unknown>();
  for (const [key, value] of Object.entries(asTable(domains) ?? {})) {
    existing.set(canonicalPattern(key), value);
  }
  const toAdd: AllowedHost[] = [];
  const alreadyAllowed: string[] = [];
  const keptDenied: string[] = [];
  for (const host of sortHosts(hosts)) {
    const value = existing.get(canonicalPattern(host.host));
    if (value === undefined) toAdd.push(host);
    else if (value === "deny") keptDenied.push(host.host);
    else alreadyAllowed.push(host.host);
  }
  const result = { profile, alreadyAllowed, keptDenied };
  if (toAdd.length === 0) return { ...result, text, added: [] };

  const time = options.time ?? new Date().toISOString();
  const note = `# Added by \`sandbox learn\` at ${time} for: ${
    commentText(describeCommand(options.command))
  }${eol}`;
  const entries = note + entryLines(toAdd, eol);
  const tablePath = ["permissions", profile, "network", "domains"];
  const scan = scanToml(text);
  const header = scan.headers.find((h) => !h.array && isDeepStrictEqual(h.keys, tablePath));
  let merged: string;
  if (header !== undefined) {
    const next = scan.headers.find((h) => h.start > header.start);
    const bodyEnd = next?.start ?? text.length;
    const lastContent = scan.contentLineEnds.filter((end) => end > header.start && end <= bodyEnd)
      .at(-1) ?? header.lineEnd;
    const at = lastContent;
    const before = text.slice(0, at);
    const after = text.slice(at);
    // `at` is the end of a line (before its line break) or the end of the text.
    merged = at >= text.length && !before.endsWith("\n")
      ? `${before}${eol}${entries}${after}`
      : `${before}${eol}${entries.slice(0, -eol.length)}${after}`;
  } else if (domains !== undefined) {
    throw new ConfigError([{
      file,
      keyPath: `permissions.${tomlKey(profile)}.network.domains`,
      message:
        `Cannot add to domains written inline or as dotted keys: write them as a [permissions.${
          tomlKey(profile)
        }.network.domains] table and run learn again`,
    }]);
  } else {
    const table = `permissions.${tomlKey(profile)}.network`;
    let block = "";
    if (network === null) block += `[${table}]${eol}enabled = true${eol}${eol}`;
    block += `[${table}.domains]${eol}${entries}`;
    const base = text === "" || text.endsWith(eol + eol)
      ? text
      : text.endsWith(eol)
      ? text + eol
      : text + eol + eol;
    merged = base + block;
  }
  if (addDefault) {
    merged = insertRootKey(merged, `default_permissions = ${tomlString(profile)}${eol}`, eol);
  }

  const expected = toPlain(original) as Record<string, unknown>;
  if (addDefault) expected.default_permissions = profile;
  const permissionsOut = (expected.permissions ??= {}) as Record<string, unknown>;
  const profileOut = (permissionsOut[profile] ??= {}) as Record<string, unknown>;
  const networkOut = (profileOut.network ??= { enabled: true }) as Record<string, unknown>;
  const domainsOut = (networkOut.domains ??= {}) as Record<string, unknown>;
  for (const host of toAdd) domainsOut[host.host] = "allow";
  const reparsed = parseOrThrow(merged, file);
  if (!isDeepStrictEqual(toPlain(reparsed), expected)) {
    throw new ConfigError([{
      file,
      keyPath: `permissions.${tomlKey(profile)}.network.domains`,
      message:
        "Cannot add the learned hosts without changing other keys of the file: add them by hand or write a new profile with --out",
    }]);
  }
  return { ...result, text: merged, added: toAdd.map((h) => h.host) };
}

/** A deep copy with ordinary prototypes (smol-toml returns null-prototype tables). */
function toPlain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toPlain);
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toPlain(v)]));
  }
  return value;
}

function canonicalPattern(pattern: string): string {
  return pattern.trim().toLowerCase().replace(/\.+$/, "");
}

function asTable(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
      !(value instanceof Date)
    ? value as Record<string, unknown>
    : null;
}

function parseOrThrow(text: string, file: string): Record<string, unknown> {
  try {
    return parse(text) as Record<string, unknown>;
  } catch (error) {
    const first = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new ConfigError([{
      file,
      line: error instanceof TomlError ? error.line : undefined,
      keyPath: "",
      message: `Invalid TOML: ${first.replace(/^Invalid TOML document: /, "")}`,
    }], { cause: error });
  }
}

/** Inserts a root-level `key = value` line before the first table header. */
function insertRootKey(text: string, line: string, eol: string): string {
  const scan = scanToml(text);
  const first = scan.headers[0];
  if (first === undefined) {
    return text === "" || text.endsWith("\n") ? text + line : text + eol + line;
  }
  const lastRoot = scan.contentLineEnds.filter((end) => end < first.start).at(-1);
  if (lastRoot !== undefined) {
    return `${text.slice(0, lastRoot)}${eol}${line.slice(0, -eol.length)}${text.slice(lastRoot)}`;
  }
  // No root keys: put it above the comment block that belongs to the first table.
  let at = first.start;
  while (at > 0) {
    const prevEnd = at - 1; // the line break before `at`
    const prevStart = text.lastIndexOf("\n", prevEnd - 1) + 1;
    const prevLine = text.slice(prevStart, prevEnd).trim();
    if (!prevLine.startsWith("#")) break;
    at = prevStart;
  }
  return `${text.slice(0, at)}${line}${eol}${text.slice(at)}`;
}

/** A table header line found by {@linkcode scanToml}. */
export interface TomlHeader {
  /** The key path of the header. */
  readonly keys: readonly string[];
  /** `[[array.of.tables]]` rather than `[table]`. */
  readonly array: boolean;
  /** Offset of the start of the header's line. */
  readonly start: number;
  /** Offset of the end of the header's line (before its line break). */
  readonly lineEnd: number;
}

/** The structure {@linkcode scanToml} finds. */
export interface TomlScan {
  /** Table headers in order. */
  readonly headers: readonly TomlHeader[];
  /** End offsets (before the line break) of lines that hold anything but blanks and comments. */
  readonly contentLineEnds: readonly number[];
}

/**
 * Finds the table headers of TOML text, and which lines hold content, with a
 * small lexer that knows strings (basic, literal, multi-line), comments and
 * bracket nesting, so that a `[` inside a string or a multi-line array is
 * never taken for a header. The text is assumed to parse (check first).
 */
export function scanToml(text: string): TomlScan {
  const headers: TomlHeader[] = [];
  const contentLineEnds: number[] = [];
  let depth = 0;
  let i = 0;
  let lineHasContent = false;
  const endLine = (at: number) => {
    if (lineHasContent) contentLineEnds.push(at > 0 && text[at - 1] === "\r" ? at - 1 : at);
    lineHasContent = false;
  };
  let atLineStart = true;
  while (i < text.length) {
    const c = text[i];
    if (atLineStart) {
      atLineStart = false;
      let j = i;
      while (text[j] === " " || text[j] === "\t") j++;
      if (depth === 0 && text[j] === "[") {
        const parsed = parseHeader(text, j);
        if (parsed !== null) {
          let end = text.indexOf("\n", parsed.end);
          if (end === -1) end = text.length;
          const lineEnd = end > 0 && text[end - 1] === "\r" ? end - 1 : end;
          headers.push({ keys: parsed.keys, array: parsed.array, start: i, lineEnd });
          lineHasContent = true;
          i = end;
          continue;
        }
      }
    }
    if (c === "\n") {
      endLine(i);
      atLineStart = true;
      i++;
    } else if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (c === " " || c === "\t" || c === "\r") {
      i++;
    } else if (c === '"' || c === "'") {
      lineHasContent = true;
      const triple = text.startsWith(c.repeat(3), i);
      if (triple) {
        i += 3;
        while (i < text.length) {
          if (c === '"' && text[i] === "\\") {
            i += 2;
            continue;
          }
          if (text.startsWith(c.repeat(3), i)) {
            i += 3;
            while (text[i] === c) i++; // up to two quotes may end the content
            break;
          }
          if (text[i] === "\n") {
            endLine(i);
            lineHasContent = true;
          }
          i++;
        }
      } else {
        i++;
        while (i < text.length && text[i] !== c && text[i] !== "\n") {
          i += c === '"' && text[i] === "\\" ? 2 : 1;
        }
        i++;
      }
    } else {
      lineHasContent = true;
      if (c === "[" || c === "{") depth++;
      else if ((c === "]" || c === "}") && depth > 0) depth--;
      i++;
    }
  }
  endLine(text.length);
  return { headers, contentLineEnds };
}

function parseHeader(
  text: string,
  start: number,
): { keys: string[]; array: boolean; end: number } | null {
  const array = text.startsWith("[[", start);
  let i = start + (array ? 2 : 1);
  const keys: string[] = [];
  const skip = () => {
    while (text[i] === " " || text[i] === "\t") i++;
  };
  while (true) {
    skip();
    const c = text[i];
    if (c === '"') {
      let out = "";
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === "\n") return null;
        if (text[i] === "\\") {
          const esc = text[i + 1];
          const simple: Record<string, string> = {
            b: "\b",
            t: "\t",
            n: "\n",
            f: "\f",
            r: "\r",
            '"': '"',
            "\\": "\\",
          };
          if (esc in simple) {
            out += simple[esc];
            i += 2;
          } else if (esc === "u" || esc === "U") {
            const len = esc === "u" ? 4 : 8;
            out += String.fromCodePoint(parseInt(text.slice(i + 2, i + 2 + len), 16));
            i += 2 + len;
          } else return null;
        } else out += text[i++];
      }
      if (text[i] !== '"') return null;
      i++;
      keys.push(out);
    } else if (c === "'") {
      const close = text.indexOf("'", i + 1);
      const newline = text.indexOf("\n", i + 1);
      if (close === -1 || (newline !== -1 && newline < close)) return null;
      keys.push(text.slice(i + 1, close));
      i = close + 1;
    } else {
      const m = /^[A-Za-z0-9_-]+/.exec(text.slice(i, i + 256));
      if (m === null) return null;
      keys.push(m[0]);
      i += m[0].length;
    }
    skip();
    if (text[i] === ".") {
      i++;
      continue;
    }
    if (array ? text.startsWith("]]", i) : text[i] === "]") {
      return { keys, array, end: i + (array ? 2 : 1) };
    }
    return null;
  }
}

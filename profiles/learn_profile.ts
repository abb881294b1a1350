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
import { parse as parseToml, patch as patchToml } from "@decimalturn/toml-patch";
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
  /** Why the entry is written, for its comment instead of the use (e.g. a host refused while learning). */
  readonly note?: string;
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
  /** Writable paths the run needed (`filesystem.writable`, as written: `~/` kept). */
  readonly writable?: readonly string[];
}

function sortHosts(hosts: readonly AllowedHost[]): AllowedHost[] {
  return [...hosts].sort((a, b) => a.host < b.host ? -1 : a.host > b.host ? 1 : 0);
}

function entryLines(hosts: readonly AllowedHost[], eol: string): string {
  return sortHosts(hosts).map((h) =>
    `${tomlString(h.host)} = "allow" # ${commentText(h.note ?? describeUse(h))}${eol}`
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
  const writable = [...new Set(options.writable ?? [])];
  const files = writable.length === 0
    ? ""
    : `\n[permissions.${
      tomlKey(profile)
    }.filesystem]\n# Paths the run was given to write (--writable)\nwritable = [${
      writable.map(tomlString).join(", ")
    }]\n`;
  return `${header.join("\n")}\n\ndefault_permissions = ${
    tomlString(profile)
  }\n\n[${table}]\nenabled = true\n\n[${table}.domains]\n${body}${files}`;
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
  /** Writable paths the run needed, added to the profile's `filesystem.writable` (as written: `~/` kept). */
  readonly writable?: readonly string[];
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
  /** Writable paths added. */
  readonly addedWritable: readonly string[];
}

/**
 * Adds `hosts` as `"host" = "allow"` entries to the domains table of a
 * profile in `text` (and `options.writable` to its `filesystem.writable`).
 * The edit is made by `@decimalturn/toml-patch`, a TOML editor that keeps
 * comments, whitespace and layout: it changes the parsed document and writes
 * back only what differs, as new lines at the end of the right table (new
 * tables as `[sections]`). Each added host then gets a comment of how it was
 * used, and a note above them says when and for which command. The result is
 * parsed again and compared with the original plus the additions; anything
 * else is refused rather than written.
 *
 * Throws a {@linkcode ConfigError} when the text is not valid TOML, when the
 * profile's domains or writable paths are not a table or a list, or when no
 * profile can be chosen.
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
  const profileKey = `permissions.${tomlKey(profile)}`;
  const profileTable = permissions?.[profile];
  if (profileTable !== undefined && asTable(profileTable) === null) {
    throw notTable(file, profileKey, "a table");
  }
  const networkValue = asTable(profileTable)?.network;
  if (networkValue !== undefined && asTable(networkValue) === null) {
    throw notTable(file, `${profileKey}.network`, "a table");
  }
  const domains = asTable(networkValue)?.domains;
  if (domains !== undefined && asTable(domains) === null) {
    throw notTable(
      file,
      `${profileKey}.network.domains`,
      'a table of "pattern" = "allow" | "deny"',
    );
  }
  const filesystemValue = asTable(profileTable)?.filesystem;
  if (filesystemValue !== undefined && asTable(filesystemValue) === null) {
    throw notTable(file, `${profileKey}.filesystem`, "a table");
  }
  const writableValue = asTable(filesystemValue)?.writable;
  if (writableValue !== undefined && !Array.isArray(writableValue)) {
    throw notTable(file, `${profileKey}.filesystem.writable`, "a list of paths");
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
  const writableBefore = (writableValue ?? []) as unknown[];
  const addedWritable = [...new Set(options.writable ?? [])].filter((path) =>
    !writableBefore.includes(path)
  );
  const result = { profile, alreadyAllowed, keptDenied, addedWritable };
  if (toAdd.length === 0 && addedWritable.length === 0) return { ...result, text, added: [] };

  // A profile without a domains table gets an empty one at the end first (as sections, which
  // read better than the inline tables the editor would make), when that still parses.
  let base = text;
  if (toAdd.length > 0 && domains === undefined) {
    const table = `${profileKey}.network`;
    const head = networkValue === undefined ? `[${table}]${eol}enabled = true${eol}${eol}` : "";
    const seeded = `${text}${
      text === "" || text.endsWith(eol + eol) ? "" : text.endsWith(eol) ? eol : eol + eol
    }${head}[${table}.domains]${eol}`;
    if (parsesTo(seeded, original, profile, networkValue === undefined)) base = seeded;
  }
  // The structural edit: the editor's own reading of the file, changed, written back.
  const updated = parseToml(base) as Record<string, unknown>;
  if (addDefault) updated.default_permissions = profile;
  const permissionsOut = (updated.permissions ??= {}) as Record<string, unknown>;
  const profileOut = (permissionsOut[profile] ??= {}) as Record<string, unknown>;
  if (toAdd.length > 0) {
    const networkOut = (profileOut.network ??= { enabled: true }) as Record<string, unknown>;
    const domainsOut = (networkOut.domains ??= {}) as Record<string, unknown>;
    for (const host of toAdd) domainsOut[host.host] = "allow";
  }
  if (addedWritable.length > 0) {
    const filesystemOut = (profileOut.filesystem ??= {}) as Record<string, unknown>;
    filesystemOut.writable = [...writableBefore, ...addedWritable];
  }
  let merged: string;
  try {
    merged = patchToml(base, updated, { newLine: eol });
  } catch (error) {
    throw new ConfigError([{
      file,
      keyPath: `${profileKey}.network.domains`,
      message: `Cannot edit the file: ${
        errorText(error)
      }: add the hosts by hand or write a new profile with --out`,
    }], { cause: error });
  }
  merged = commentAddedEntries(base, merged, toAdd, {
    eol,
    note: `# Added by \`sandbox learn\` at ${options.time ?? new Date().toISOString()} for: ${
      commentText(describeCommand(options.command))
    }`,
  });

  const expected = toPlain(original) as Record<string, unknown>;
  if (addDefault) expected.default_permissions = profile;
  const plainPermissions = (expected.permissions ??= {}) as Record<string, unknown>;
  const plainProfile = (plainPermissions[profile] ??= {}) as Record<string, unknown>;
  if (toAdd.length > 0) {
    const plainNetwork = (plainProfile.network ??= { enabled: true }) as Record<string, unknown>;
    const plainDomains = (plainNetwork.domains ??= {}) as Record<string, unknown>;
    for (const host of toAdd) plainDomains[host.host] = "allow";
  }
  if (addedWritable.length > 0) {
    const plainFilesystem = (plainProfile.filesystem ??= {}) as Record<string, unknown>;
    plainFilesystem.writable = [...writableBefore, ...addedWritable];
  }
  const reparsed = parseOrThrow(merged, file);
  if (!isDeepStrictEqual(toPlain(reparsed), expected)) {
    throw new ConfigError([{
      file,
      keyPath: `${profileKey}.network.domains`,
      message:
        "Cannot add the learned hosts without changing other keys of the file: add them by hand or write a new profile with --out",
    }]);
  }
  return { ...result, text: merged, added: toAdd.map((h) => h.host) };
}

/** Whether `text` parses to `original` plus an empty domains table (and network table) for `profile`. */
function parsesTo(
  text: string,
  original: Record<string, unknown>,
  profile: string,
  withNetwork: boolean,
): boolean {
  let parsed: unknown;
  try {
    parsed = parse(text);
  } catch {
    return false;
  }
  const expected = toPlain(original) as Record<string, unknown>;
  const permissions = (expected.permissions ??= {}) as Record<string, unknown>;
  const table = (permissions[profile] ??= {}) as Record<string, unknown>;
  if (withNetwork) table.network = { enabled: true };
  (table.network as Record<string, unknown>).domains = {};
  return isDeepStrictEqual(toPlain(parsed), expected);
}

function notTable(file: string, keyPath: string, what: string): ConfigError {
  return new ConfigError([{ file, keyPath, message: `Expected ${what}` }]);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message.split("\n")[0] : String(error);
}

/**
 * Puts the comments on the entries the editor added: the lines of `after`
 * that are not in `before` (a longest common subsequence of lines) and are
 * `KEY = "allow"` for an added host get their use as a trailing comment, and
 * the first of them a note line above it. Entries added inside an inline
 * table have no line of their own and stay without comments.
 */
function commentAddedEntries(
  before: string,
  after: string,
  added: readonly AllowedHost[],
  options: { eol: string; note: string },
): string {
  if (added.length === 0) return after;
  const oldLines = before.split(/\r?\n/);
  const newLines = after.split(/\r?\n/);
  const fresh = newLinesOf(oldLines, newLines);
  const byKey = new Map(added.map((host) => [host.host, host]));
  let noted = false;
  const out: string[] = [];
  newLines.forEach((line, index) => {
    const host = fresh.has(index) ? byKey.get(entryKey(line) ?? "\u0000") : undefined;
    if (host === undefined) {
      out.push(line);
      return;
    }
    byKey.delete(host.host);
    if (!noted) {
      noted = true;
      out.push(`${line.match(/^\s*/)![0]}${options.note}`);
    }
    out.push(`${line} # ${commentText(host.note ?? describeUse(host))}`);
  });
  return liftAboveNextTableComments(out, fresh, newLines).join(options.eol);
}

/**
 * The editor appends a table's new rows after the blank lines and comments
 * that belong to the next table; lifts each such run of added lines above
 * them, so that they follow the table's last row.
 */
function liftAboveNextTableComments(
  lines: string[],
  freshInNew: ReadonlySet<number>,
  newLines: readonly string[],
): string[] {
  // Map fresh indexes of newLines onto `lines` (which only has note lines inserted).
  const fresh = new Set<number>();
  let j = 0;
  for (let i = 0; i < lines.length; i++) {
    if (j < newLines.length && lines[i].startsWith(newLines[j])) {
      if (freshInNew.has(j)) fresh.add(i);
      j++;
    } else {
      fresh.add(i); // a note line
    }
  }
  const out = [...lines];
  let i = 0;
  while (i < out.length) {
    if (!fresh.has(i)) {
      i++;
      continue;
    }
    let end = i;
    while (end + 1 < out.length && fresh.has(end + 1)) end++;
    const next = out[end + 1];
    let start = i;
    while (start > 0 && !fresh.has(start - 1) && /^\s*(#.*)?$/.test(out[start - 1])) start--;
    if (start < i && next !== undefined && /^\s*\[/.test(next)) {
      const block = out.slice(i, end + 1);
      const between = out.slice(start, i);
      out.splice(start, end + 1 - start, ...block, ...between);
      // Fresh indexes moved with the block.
      for (let k = start; k <= end; k++) fresh.delete(k);
      for (let k = start; k < start + block.length; k++) fresh.add(k);
    }
    i = end + 1;
  }
  return out;
}

/** The key of a `KEY = "allow"` line, unquoted, or null. */
function entryKey(line: string): string | null {
  const match = /^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*=\s*"allow"\s*$/.exec(line);
  if (match === null) return null;
  try {
    return Object.keys(parseToml(`${match[1]} = 1`))[0] ?? null;
  } catch {
    return null;
  }
}

/** Indexes of `next`'s lines that are not part of a longest common subsequence with `prev`. */
function newLinesOf(prev: readonly string[], next: readonly string[]): Set<number> {
  const n = prev.length;
  const m = next.length;
  const table: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i][j] = prev[i] === next[j]
        ? table[i + 1][j + 1] + 1
        : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const fresh = new Set<number>();
  let i = 0;
  let j = 0;
  while (j < m) {
    if (i < n && prev[i] === next[j]) {
      i++;
      j++;
    } else if (i < n && table[i + 1][j] >= table[i][j + 1]) {
      i++;
    } else {
      fresh.add(j);
      j++;
    }
  }
  return fresh;
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

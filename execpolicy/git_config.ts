/**
 * Where git would find an alias: `-c alias.NAME=VALUE`, `--config-env`,
 * `GIT_CONFIG_PARAMETERS`, `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/
 * `GIT_CONFIG_VALUE_n`, and the config files (system, global, the
 * repository's, and every `include.path`/`includeIf.*.path` they name).
 * Only the `alias` section is read; everything else in a file is skipped.
 *
 * @module
 */

/** What the alias lookup may read. */
export interface GitLookup {
  /** The environment git starts with. */
  readonly env: Readonly<Record<string, string>>;
  /** The directory git starts in (before `-C`), or null when unknown. */
  readonly cwd: string | null;
  /** Reads a file; null when it cannot be read. */
  readonly readTextFile: (path: string) => string | null;
}

/** Alias definitions found in config files, in the order git reads them. */
export function aliasesFromFiles(
  lookup: GitLookup,
  dirs: { readonly workDir: string | null; readonly gitDir: string | null },
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const env = lookup.env;
  const home = env.HOME ?? null;
  const files: string[] = [];
  if (env.GIT_CONFIG_NOSYSTEM === undefined || env.GIT_CONFIG_NOSYSTEM === "") {
    files.push(env.GIT_CONFIG_SYSTEM ?? "/etc/gitconfig");
  }
  if (env.GIT_CONFIG_GLOBAL !== undefined) files.push(env.GIT_CONFIG_GLOBAL);
  else {
    const xdg = env.XDG_CONFIG_HOME ?? (home === null ? null : `${home}/.config`);
    if (xdg !== null) files.push(`${xdg}/git/config`);
    if (home !== null) files.push(`${home}/.gitconfig`);
  }
  const gitDir = dirs.gitDir ?? findGitDir(lookup, dirs.workDir);
  if (gitDir !== null) {
    files.push(`${gitDir}/config`);
    const common = lookup.readTextFile(`${gitDir}/commondir`);
    if (common !== null) files.push(`${resolvePath(gitDir, common.trim())}/config`);
  }
  const seen = new Set<string>();
  for (const file of files) readConfig(lookup, file, home, out, seen, 0);
  return out;
}

function findGitDir(lookup: GitLookup, workDir: string | null): string | null {
  if (lookup.env.GIT_DIR !== undefined) return resolvePath(lookup.cwd ?? "/", lookup.env.GIT_DIR);
  if (workDir === null) return null;
  let dir = workDir.replace(/\/+$/, "") || "/";
  for (let i = 0; i < 64; i++) {
    if (lookup.readTextFile(`${dir}/.git/config`) !== null) return `${dir}/.git`;
    if (lookup.readTextFile(`${dir}/.git/HEAD`) !== null) return `${dir}/.git`;
    const link = lookup.readTextFile(`${dir}/.git`);
    if (link !== null) {
      const m = /^gitdir:\s*(.+?)\s*$/m.exec(link);
      if (m !== null) return resolvePath(dir, m[1]);
    }
    if (dir === "/") break;
    dir = dir.slice(0, dir.lastIndexOf("/")) || "/";
  }
  return null;
}

/** `base` joined with `path` unless `path` is absolute. */
export function resolvePath(base: string, path: string): string {
  if (path.startsWith("/")) return path;
  return `${base.replace(/\/+$/, "")}/${path}`;
}

function readConfig(
  lookup: GitLookup,
  file: string,
  home: string | null,
  out: Map<string, string[]>,
  seen: Set<string>,
  depth: number,
): void {
  if (depth > 10 || seen.has(file)) return;
  seen.add(file);
  const text = lookup.readTextFile(file);
  if (text === null) return;
  const dir = file.slice(0, file.lastIndexOf("/")) || "/";
  for (const [section, key, value] of parseGitConfig(text)) {
    if (section === "alias" && value !== null) {
      const list = out.get(key) ?? [];
      list.push(value);
      out.set(key, list);
    } else if ((section === "include" || section.startsWith("includeif.")) && key === "path") {
      // Every include counts, whatever its condition: an alias it defines could apply.
      if (value === null) continue;
      const path = value.startsWith("~/") && home !== null
        ? `${home}/${value.slice(2)}`
        : resolvePath(dir, value);
      readConfig(lookup, path, home, out, seen, depth + 1);
    }
  }
}

/**
 * The `[section "sub"] key = value` entries of a git config file: section
 * (lowercased, `section.sub` with the subsection as written), key
 * (lowercased) and value (null for a bare key). Lines it cannot read are
 * skipped, as git would refuse the file anyway.
 */
export function parseGitConfig(text: string): [string, string, string | null][] {
  const out: [string, string, string | null][] = [];
  let section = "";
  const lines = text.replace(/\\\r?\n/g, "").split(/\r?\n/);
  for (const raw of lines) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    if (line.startsWith("[")) {
      const m = /^\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]/.exec(line);
      if (m === null) continue;
      section = m[1].toLowerCase() + (m[2] === undefined ? "" : `.${m[2].replace(/\\(.)/g, "$1")}`);
      continue;
    }
    const m = /^([A-Za-z][A-Za-z0-9-]*)\s*(?:=(.*))?$/.exec(line);
    if (m === null) continue;
    out.push([section, m[1].toLowerCase(), m[2] === undefined ? null : configValue(m[2])]);
  }
  return out;
}

function configValue(raw: string): string {
  let out = "";
  let quoted = false;
  let pendingSpace = "";
  const s = raw.trimStart();
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (!quoted && (c === "#" || c === ";")) break;
    if (c === '"') {
      quoted = !quoted;
      continue;
    }
    if (c === "\\" && i + 1 < s.length) {
      const n = s[++i];
      out += pendingSpace + (n === "n" ? "\n" : n === "t" ? "\t" : n === "b" ? "\b" : n);
      pendingSpace = "";
      continue;
    }
    if (!quoted && (c === " " || c === "\t")) {
      pendingSpace += c;
      continue;
    }
    out += pendingSpace + c;
    pendingSpace = "";
  }
  return out;
}

/** `-c`-style `key=value` definitions git reads from the environment, in order. */
export function envConfig(env: Readonly<Record<string, string>>): [string, string][] {
  const out: [string, string][] = [];
  const params = env.GIT_CONFIG_PARAMETERS;
  if (params !== undefined) {
    // Git writes each as 'key'='value' (older: 'key=value'), separated by spaces.
    const re = /'((?:[^']|'\\'')*)'(?:=('(?:[^']|'\\'')*'))?/g;
    for (const m of params.matchAll(re)) {
      const unq = (s: string) => s.replaceAll("'\\''", "'");
      if (m[2] !== undefined) out.push([unq(m[1]), unq(m[2].slice(1, -1))]);
      else {
        const kv = unq(m[1]);
        const eq = kv.indexOf("=");
        if (eq > 0) out.push([kv.slice(0, eq), kv.slice(eq + 1)]);
      }
    }
  }
  const count = Number.parseInt(env.GIT_CONFIG_COUNT ?? "", 10);
  if (Number.isFinite(count) && count > 0) {
    for (let i = 0; i < Math.min(count, 1000); i++) {
      const key = env[`GIT_CONFIG_KEY_${i}`];
      const value = env[`GIT_CONFIG_VALUE_${i}`];
      if (key !== undefined && value !== undefined) out.push([key, value]);
    }
  }
  return out;
}

/**
 * `expandDenyGlobs()`: the paths on the host that match absolute glob
 * patterns such as `/work/app/**\/*.env`, found by walking the directories
 * the pattern can reach when a run starts. bwrap can only hide paths that
 * exist, so a deny glob is enforced by hiding each match; a file created
 * after the walk (by the command itself) is not hidden during that run.
 *
 * Grammar: `*` any run of characters within one path part, `?` one
 * character, `[abc]`/`[a-z]`/`[!a]` one character of a set, `**` as a whole
 * part: zero or more directories. Symlinked directories are not descended
 * into (a match that is a symlink is returned; the plan hides its target).
 *
 * @module
 */

/** Options for {@linkcode expandDenyGlobs}. */
export interface ExpandDenyGlobsOptions {
  /**
   * How many directories below the pattern's fixed prefix a `**` may reach
   * (Codex's `glob_scan_max_depth`); null or absent: no limit.
   */
  readonly maxDepth?: number | null;
}

/** Directories never walked: the sandbox gets fresh ones, and walking them never ends. */
const NOT_WALKED = ["/proc", "/sys", "/dev"];

/**
 * Returns every existing path matching one of `patterns` (absolute), sorted,
 * without duplicates.
 *
 * @example
 * ```ts
 * const hidden = expandDenyGlobs(["/work/app/**\/*.env"]);
 * ```
 */
export function expandDenyGlobs(
  patterns: readonly string[],
  options: ExpandDenyGlobsOptions = {},
): string[] {
  const found = new Set<string>();
  for (const pattern of patterns) {
    if (!pattern.startsWith("/")) continue;
    const parts = pattern.split("/").filter((part) => part !== "");
    const firstGlob = parts.findIndex((part) => /[*?[]/.test(part));
    if (firstGlob === -1) {
      if (exists(pattern)) found.add(pattern);
      continue;
    }
    const base = `/${parts.slice(0, firstGlob).join("/")}`;
    const matchers = parts.slice(firstGlob).map((part) => part === "**" ? "**" : partRegex(part));
    walk(base === "/" ? "" : base, matchers, 0, options.maxDepth ?? null, found);
  }
  return [...found].sort();
}

type Matcher = RegExp | "**";

function walk(
  dir: string,
  matchers: readonly Matcher[],
  depth: number,
  maxDepth: number | null,
  found: Set<string>,
): void {
  if (matchers.length === 0) return;
  const [head, ...rest] = matchers;
  if (head === "**") {
    // Zero directories: the rest applies here.
    walk(dir, rest, depth, maxDepth, found);
    if (maxDepth !== null && depth >= maxDepth) return;
    for (const entry of list(dir)) {
      if (entry.isDirectory && !entry.isSymlink) {
        walk(`${dir}/${entry.name}`, matchers, depth + 1, maxDepth, found);
      }
    }
    return;
  }
  for (const entry of list(dir)) {
    if (!head.test(entry.name)) continue;
    const path = `${dir}/${entry.name}`;
    if (rest.length === 0) found.add(path);
    else if (entry.isDirectory && !entry.isSymlink) {
      walk(path, rest, depth + 1, maxDepth, found);
    }
  }
}

function list(dir: string): Deno.DirEntry[] {
  const path = dir === "" ? "/" : dir;
  if (NOT_WALKED.includes(path)) return [];
  try {
    return [...Deno.readDirSync(path)];
  } catch {
    return []; // missing or unreadable: nothing there to hide from this user's commands
  }
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A regular expression for one path part of a glob. Dot files match `*` (as in Codex's globs). */
function partRegex(part: string): RegExp {
  let out = "";
  for (let i = 0; i < part.length; i++) {
    const c = part[i];
    if (c === "*") out += "[^/]*";
    else if (c === "?") out += "[^/]";
    else if (c === "[") {
      const end = part.indexOf("]", i + 2);
      if (end === -1) out += "\\[";
      else {
        let set = part.slice(i + 1, end);
        if (set.startsWith("!")) set = `^${set.slice(1)}`;
        out += `[${set.replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else out += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}

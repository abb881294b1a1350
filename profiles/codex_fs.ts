/**
 * `compileCodexFilesystem()`: what a Codex profile's filesystem entries mean
 * in this sandbox, once `extends` is merged. The sandbox's view is: the
 * whole filesystem read-only, the workspace roots writable or not, extra
 * writable paths, read-only carve-outs inside writable ones, and hidden
 * paths and globs (a private `/tmp` always). What an entry asks for that
 * this view cannot give (writing `/`, reading only `:minimal`, hiding the
 * workspace, a deny on an unknown special path) comes back as a problem: a
 * run with that profile is refused rather than run with the entry dropped.
 *
 * @module
 */
import type { ConfigProblem } from "../errors.ts";
import { formatKeyPath } from "./toml.ts";
import { type FsEntry, KNOWN_SPECIAL_PATHS } from "./validate.ts";
import type { WorkspaceConfig } from "./types.ts";

/**
 * What Codex's `:minimal` makes readable on Linux (its platform read roots):
 * the system's programs, libraries and configuration.
 */
export const MINIMAL_READ_ROOTS: readonly string[] = Object.freeze([
  "/bin",
  "/sbin",
  "/usr",
  "/etc",
  "/lib",
  "/lib64",
  "/nix/store",
  "/run/current-system/sw",
]);

/** The result of {@linkcode compileCodexFilesystem}, paths as written (`~` not yet expanded). */
export interface CodexFilesystem {
  /** Extra writable paths. */
  readonly writable: string[];
  /** Hidden paths. */
  readonly denyRead: string[];
  /** Hidden globs (absolute or `~/`). */
  readonly denyGlobs: string[];
  /** Read-only carve-outs. */
  readonly readOnly: string[];
  /** null: the whole filesystem is readable (`:root` = "read"); else the only readable places besides the workspace. */
  readonly readRoots: string[] | null;
  /** Workspace access and per-root rules (roots are added by the caller). */
  readonly workspace: Omit<WorkspaceConfig, "roots">;
  /** Entries that cannot be enforced. */
  readonly problems: ConfigProblem[];
  /** Entries ignored on purpose (never a deny), one sentence each. */
  readonly notices: string[];
}

/** Options for {@linkcode compileCodexFilesystem}. */
export interface CompileCodexFilesystemOptions {
  /** The profile's name, for messages. */
  readonly profile: string;
  /** The file each entry came from, by entry id (for problems). */
  readonly fileOf: (entry: FsEntry) => string;
}

/**
 * Compiles merged entries (each id once, the child's entry having replaced
 * its parent's).
 *
 * @example
 * ```ts
 * const fs = compileCodexFilesystem(builtInEntries(":workspace")!, { profile: ":workspace", fileOf: () => "x" });
 * fs.workspace.writable; // true
 * ```
 */
export function compileCodexFilesystem(
  entries: readonly FsEntry[],
  options: CompileCodexFilesystemOptions,
): CodexFilesystem {
  const out: CodexFilesystem = {
    writable: [],
    denyRead: [],
    denyGlobs: [],
    readOnly: [],
    readRoots: null,
    workspace: { writable: false, rules: [] },
    problems: [],
    notices: [],
  };
  const rules: { subpath: string; access: "read" | "write" | "deny"; glob: boolean }[] = [];
  let workspaceWritable = false;
  let workspaceAccess: "read" | "write" | null = null;
  let rootRead = false;
  let minimal = false;
  const refuse = (entry: FsEntry, why: string) => {
    out.problems.push({
      file: options.fileOf(entry),
      ...(entry.line === undefined ? {} : { line: entry.line }),
      keyPath: formatKeyPath(entry.keyPath),
      message: `Profile "${options.profile}" cannot be enforced: ${why}`,
    });
  };
  for (const entry of entries) {
    const { target, access } = entry;
    if (target.kind === "path") {
      if (access === "write") out.writable.push(target.path);
      else if (access === "deny") out.denyRead.push(target.path);
      else out.readOnly.push(target.path);
      continue;
    }
    if (target.kind === "glob") {
      // Parsing lets only "deny" reach here with a glob.
      out.denyGlobs.push(target.pattern);
      continue;
    }
    const { name, subpath } = target;
    if (!KNOWN_SPECIAL_PATHS.includes(name)) {
      if (access === "deny") {
        refuse(
          entry,
          `"${name}" is a special path this version does not know, so its "deny" cannot be applied: remove it or name the path`,
        );
      } else {
        out.notices.push(
          `Profile "${options.profile}": ignored ${
            formatKeyPath(entry.keyPath)
          } = "${access}": "${name}" is a special path this version does not know (granting less than asked)`,
        );
      }
      continue;
    }
    if (name === ":workspace_roots") {
      if (subpath === undefined || subpath === ".") {
        if (access === "deny") {
          refuse(
            entry,
            'hiding the workspace roots (":workspace_roots" = "deny") is not supported: run the command from another directory',
          );
        } else {
          workspaceWritable = access === "write";
          workspaceAccess = access;
        }
        continue;
      }
      rules.push({ subpath, access, glob: /[*?[\]]/.test(subpath) });
      continue;
    }
    if (name === ":root" || name === ":minimal") {
      if (access === "read") {
        if (name === ":root") rootRead = true;
        else minimal = true;
        continue;
      }
      refuse(
        entry,
        access === "write"
          ? `"${name}" = "write" would make the whole filesystem writable; the sandbox keeps it read-only: list the directories to write instead`
          : `"${name}" = "deny" would hide the whole filesystem; the sandbox always shows it read-only: deny the paths that must stay hidden instead`,
      );
      continue;
    }
    // ":tmpdir" and ":slash_tmp": the command always gets a private, empty /tmp that is
    // discarded after the run, whatever the access; nothing of the host's /tmp is shown.
  }
  let readRoots: string[] | null = null;
  if (!rootRead) {
    // Reads limited to what the profile lists (Codex's restricted read): the sandbox's root is an
    // empty tmpfs with only these bound in, read-only, besides the workspace and writable paths.
    readRoots = [...(minimal ? MINIMAL_READ_ROOTS : []), ...out.readOnly];
    if (workspaceAccess === null) {
      const first = entries[0];
      out.problems.push({
        file: first === undefined ? options.profile : options.fileOf(first),
        ...(first?.line === undefined ? {} : { line: first.line }),
        keyPath: first === undefined ? "" : formatKeyPath(first.keyPath.slice(0, 4)),
        message:
          `Profile "${options.profile}" cannot be enforced: it limits reads (no ":root" = "read") and gives the workspace no access, so the command could not even start in its working directory: add ":workspace_roots" = { "." = "read" } (or "write")`,
      });
    }
  }
  return { ...out, readRoots, workspace: { writable: workspaceWritable, rules } };
}

/**
 * Codex's built-in permission profiles and what each means here.
 *
 * | name | Codex | here |
 * |---|---|---|
 * | `:workspace` | read everything, write the workspace roots (but `.git`, `.agents`, `.codex` in them), `$TMPDIR` and `/tmp` | the same: whole filesystem read-only, working dir and workspace roots writable with those three kept read-only, a private `/tmp` |
 * | `:read-only` | read everything, write nothing | whole filesystem read-only, the working dir too; a private `/tmp` |
 * | `:danger-full-access` | no sandbox | refused: `sandbox` always sandboxes |
 *
 * The filesystem entries are the ones Codex writes for each (so that a
 * profile that `extends` one of them overrides them key by key, as in Codex).
 *
 * @module
 */
import type { FsEntry } from "./validate.ts";

/** The names of Codex's built-in profiles. */
export const BUILT_IN_PROFILE_NAMES: readonly string[] = Object.freeze([
  ":read-only",
  ":workspace",
  ":danger-full-access",
]);

/** Whether `name` is one of Codex's built-in profile names. */
export function isBuiltInProfileName(name: string): boolean {
  return BUILT_IN_PROFILE_NAMES.includes(name);
}

/** Workspace metadata Codex keeps read-only in every workspace root of `:workspace`. */
export const PROTECTED_WORKSPACE_METADATA: readonly string[] = Object.freeze([
  ".git",
  ".agents",
  ".codex",
]);

function entry(name: string, access: FsEntry["access"], subpath?: string): FsEntry {
  return {
    target: subpath === undefined ? { kind: "special", name } : { kind: "special", name, subpath },
    access,
    id: subpath === undefined ? name : `${name}/${subpath}`,
    keyPath: ["permissions", name],
  };
}

/**
 * The filesystem entries of a built-in profile that can be extended
 * (`:read-only`, `:workspace`), or null for any other name.
 *
 * @example
 * ```ts
 * builtInEntries(":read-only"); // [{ target: { kind: "special", name: ":root" }, access: "read", … }]
 * ```
 */
export function builtInEntries(name: string): readonly FsEntry[] | null {
  if (name === ":read-only") return [entry(":root", "read")];
  if (name === ":workspace") {
    return [
      entry(":root", "read"),
      entry(":workspace_roots", "write", "."),
      ...PROTECTED_WORKSPACE_METADATA.map((dir) => entry(":workspace_roots", "read", dir)),
      entry(":tmpdir", "write"),
      entry(":slash_tmp", "write"),
    ];
  }
  return null;
}

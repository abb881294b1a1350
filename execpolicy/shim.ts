/**
 * Shims keep `deny` rules in force for programs started inside the sandbox
 * (an `npm` postinstall that runs `curl`). For every program a deny rule
 * names, each copy found on the sandbox's PATH (and in the usual system
 * dirs) is covered, in the sandbox's file view only, by a small generated
 * `#!/bin/sh` script; the real program is bound at a hidden path under the
 * run dir so that the shim can still run it when the argv is allowed.
 *
 * - A program denied whatever its arguments (`curl *`, and no other rule
 *   for it) gets a shim that prints the rule and exits 126 without starting
 *   anything else.
 * - A program with conditional rules (`git push *`, or `curl *` beside an
 *   exact `curl -fsSL URL` exception) gets a shim that runs
 *   `sandbox __shim --rules FILE --real PATH --name NAME -- ARGV…`, which
 *   decides the argv and either refuses (126) or runs the real program.
 *
 * The shim covers the real file (symlinks resolved), so `/bin/curl` on a
 * merged-/usr system and `/usr/bin/curl` both reach it. Limits (a copied,
 * renamed or self-built binary, a direct `execve` of the hidden path) are in
 * the README: the network boundary stays the hard one.
 *
 * @module
 */
import type { SelfInvocation } from "../self.ts";
import type { ExecPolicyConfig, ExecRule } from "./types.ts";
import { type CompiledPattern, compilePattern, programName } from "./match.ts";

/** Dirs searched besides the sandbox's PATH. */
export const COMMON_BIN_DIRS: readonly string[] = [
  "/usr/local/sbin",
  "/usr/local/bin",
  "/usr/sbin",
  "/usr/bin",
  "/sbin",
  "/bin",
];

/** A read-only bind mount for `SandboxPlan.extraBinds` (host path -> sandbox path). */
export interface ShimBind {
  /** Host path. */
  readonly source: string;
  /** Path inside the sandbox. */
  readonly target: string;
}

/** Options for {@linkcode prepareShims}. */
export interface PrepareShimsOptions {
  /** The run's private dir on the host; shims go under `RUNDIR/execpolicy`. */
  readonly runDir: string;
  /** The sandbox's PATH, split (relative entries are ignored). */
  readonly pathDirs: readonly string[];
  /** How to start this program again (for `__shim`). */
  readonly self: SelfInvocation;
  /** Dirs searched besides `pathDirs` (default {@linkcode COMMON_BIN_DIRS}). */
  readonly extraDirs?: readonly string[];
}

interface DenyTarget {
  readonly rule: ExecRule;
  readonly pattern: CompiledPattern;
  /** The rule denies every argv of this program. */
  readonly unconditional: boolean;
}

interface ShimGroup {
  /** The real file (symlinks resolved). */
  readonly real: string;
  /** Names under which a deny rule targets it, with the rules. */
  readonly names: Map<string, DenyTarget[]>;
}

/** One file-system step of a {@linkcode ShimPlan}, applied in order by {@linkcode writeShims}. */
export type ShimFile =
  | { readonly kind: "dir"; readonly path: string }
  | { readonly kind: "file"; readonly path: string; readonly text: string; readonly mode: number }
  | { readonly kind: "symlink"; readonly path: string; readonly target: string };

/** What {@linkcode planShims} found: the bind mounts and the files that back them. */
export interface ShimPlan {
  /** Bind mounts in the order they must be applied (see {@linkcode prepareShims}). */
  readonly binds: readonly ShimBind[];
  /** Files to create under `RUNDIR/execpolicy` before the binds can be mounted. */
  readonly files: readonly ShimFile[];
}

/**
 * Finds what the shims for `policy`'s deny rules need, without writing
 * anything: reads the PATH dirs and resolves symlinks, and returns the bind
 * mounts with the files that back them. `sandbox run --dry-run` shows the
 * binds; a real run writes the files with {@linkcode writeShims}. The plan
 * is empty when no deny rule names a program found.
 *
 * @example
 * ```ts
 * const shims = await planShims(config.execpolicy, { runDir, pathDirs: env.PATH.split(":"), self: selfInvocation() });
 * await writeShims(shims);
 * ```
 */
export async function planShims(
  policy: ExecPolicyConfig,
  options: PrepareShimsOptions,
): Promise<ShimPlan> {
  const none: ShimPlan = { binds: [], files: [] };
  const targets: DenyTarget[] = [];
  for (const rule of policy.rules) {
    if (rule.decision !== "deny") continue;
    const pattern = compilePattern(rule.pattern);
    // A pattern with no program word (`*`) names no program to cover.
    if (pattern.words.length === 0) continue;
    targets.push({
      rule,
      pattern,
      unconditional: pattern.words.length === 1 && pattern.trailingStar,
    });
  }
  if (targets.length === 0) return none;
  // Rules that may let some argv of a denied program through (`curl -fsSL URL` =
  // allow-network beside `curl *` = deny): such a program is decided per argv.
  const others: { rule: ExecRule; pattern: CompiledPattern }[] = [];
  for (const rule of policy.rules) {
    if (rule.decision === "deny") continue;
    const pattern = compilePattern(rule.pattern);
    if (pattern.words.length > 0) others.push({ rule, pattern });
  }
  const dirs = unique([...options.pathDirs, ...(options.extraDirs ?? COMMON_BIN_DIRS)])
    .filter((d) => d.startsWith("/"));
  // The shims run on /bin/sh and (conditional ones) on this program: covering
  // either would make every shim run itself.
  const excluded = new Set<string>();
  for (const path of ["/bin/sh", options.self.argv[0]]) {
    try {
      excluded.add(await Deno.realPath(path));
    } catch {
      // not there: nothing to protect
    }
  }
  const groups = new Map<string, ShimGroup>();
  for (const dir of dirs) {
    const entries = await listNames(dir, targets);
    for (const name of entries) {
      const matching = targets.filter((t) => programGlobMatches(t.pattern, name));
      if (matching.length === 0) continue;
      let real: string;
      try {
        real = await Deno.realPath(`${dir}/${name}`);
        if (excluded.has(real) || !(await Deno.stat(real)).isFile) continue;
      } catch {
        continue; // dangling link or vanished file: nothing to cover
      }
      const group: ShimGroup = groups.get(real) ?? { real, names: new Map() };
      groups.set(real, group);
      const list: DenyTarget[] = group.names.get(name) ?? [];
      const excepted = others.some((o) => programGlobMatches(o.pattern, name));
      for (const t of matching) {
        if (list.some((x) => x.rule === t.rule)) continue;
        list.push(excepted && t.unconditional ? { ...t, unconditional: false } : t);
      }
      group.names.set(name, list);
    }
  }
  if (groups.size === 0) return none;

  const base = `${options.runDir.replace(/\/+$/, "")}/execpolicy`;
  const files: ShimFile[] = [
    { kind: "dir", path: `${base}/real` },
    { kind: "dir", path: `${base}/shims` },
  ];
  const rulesFile = `${base}/rules.json`;
  // Every rule that names a program, so that the most specific one decides inside as it did
  // outside; only "deny" matters there (the network was decided for the whole run).
  const shimRules: ExecPolicyConfig = {
    default: "allow-network",
    rules: policy.rules.filter((r) =>
      targets.some((t) => t.rule === r) || others.some((o) => o.rule === r)
    ),
  };
  files.push({ kind: "file", path: rulesFile, text: JSON.stringify(shimRules), mode: 0o644 });

  const realBinds: ShimBind[] = [];
  const shimBinds: ShimBind[] = [];
  let index = 0;
  for (const group of groups.values()) {
    const hiddenDir = `${base}/real/${index}`;
    files.push({ kind: "dir", path: hiddenDir });
    const realBase = programName(group.real);
    const hidden = `${hiddenDir}/${realBase}`;
    files.push({ kind: "file", path: hidden, text: "", mode: 0o755 }); // mount point
    realBinds.push({ source: group.real, target: hidden });
    const shared = ![...group.names.keys()].some((n) => isVariantOf(realBase, n));
    const links = new Set<string>();
    if (shared) {
      // A multi-call binary (busybox): every name of it needs its own link so
      // that it still sees the name it was called by.
      for (const name of await namesOf(group.real, dirs)) links.add(name);
    }
    for (const name of group.names.keys()) if (shared) links.add(name);
    links.delete(realBase);
    for (const name of links) {
      if (name.includes("/") || name === "." || name === "..") continue;
      files.push({ kind: "symlink", path: `${hiddenDir}/${name}`, target: realBase });
    }
    const shim = `${base}/shims/${index}`;
    files.push({
      kind: "file",
      path: shim,
      text: renderShim(group, { shared, hiddenDir, realBase, rulesFile, self: options.self }),
      mode: 0o755,
    });
    shimBinds.push({ source: shim, target: group.real });
    index++;
  }
  return { binds: [{ source: base, target: base }, ...realBinds, ...shimBinds], files };
}

/**
 * Creates the files of a {@linkcode ShimPlan}, in order. Files are written
 * with their mode set after creation (the umask may have narrowed it).
 *
 * @example
 * ```ts
 * await writeShims(await planShims(policy, options));
 * ```
 */
export async function writeShims(plan: ShimPlan): Promise<void> {
  for (const file of plan.files) {
    if (file.kind === "dir") {
      await Deno.mkdir(file.path, { recursive: true });
    } else if (file.kind === "symlink") {
      await Deno.symlink(file.target, file.path);
    } else {
      await Deno.writeTextFile(file.path, file.text, { mode: file.mode });
      await Deno.chmod(file.path, file.mode);
    }
  }
}

/**
 * Writes the shims for `policy`'s deny rules under `RUNDIR/execpolicy` and
 * returns the bind mounts, in the order they must be applied: the shim dir
 * itself, the real programs at their hidden paths, then each shim over a
 * real program. Returns `[]` when no deny rule names a program found.
 * The same as {@linkcode planShims} followed by {@linkcode writeShims}.
 *
 * @example
 * ```ts
 * const binds = await prepareShims(config.execpolicy, { runDir, pathDirs: env.PATH.split(":"), self: selfInvocation() });
 * const plan = buildSandboxPlan(config, argv, { extraBinds: binds, ... });
 * ```
 */
export async function prepareShims(
  policy: ExecPolicyConfig,
  options: PrepareShimsOptions,
): Promise<ShimBind[]> {
  const plan = await planShims(policy, options);
  await writeShims(plan);
  return [...plan.binds];
}

function unique(list: readonly string[]): string[] {
  return [...new Set(list.map((d) => d.replace(/\/+$/, "") || "/"))];
}

/** Names in `dir` worth checking: literal program names directly, globs by listing. */
async function listNames(dir: string, targets: readonly DenyTarget[]): Promise<string[]> {
  const names = new Set<string>();
  let needList = false;
  for (const t of targets) {
    const literal = t.pattern.words[0].literal;
    if (literal === null) needList = true;
    else names.add(programName(literal));
  }
  if (needList) {
    try {
      for await (const entry of Deno.readDir(dir)) names.add(entry.name);
    } catch {
      // A PATH dir that does not exist holds nothing to cover.
    }
  }
  return [...names].filter((n) => n !== "");
}

function programGlobMatches(pattern: CompiledPattern, name: string): boolean {
  const glob = pattern.words[0];
  return glob.test(name) || (glob.literal !== null && programName(glob.literal) === name);
}

/** `python3.11` is a variant of `python3`; `busybox` is not a variant of `wget`. */
function isVariantOf(realBase: string, name: string): boolean {
  return realBase === name || realBase.startsWith(`${name}.`) || realBase.startsWith(`${name}-`) ||
    /^[0-9.]+$/.test(realBase.slice(name.length)) && realBase.startsWith(name);
}

/** Every name in `dirs` that resolves to `real`. */
async function namesOf(real: string, dirs: readonly string[]): Promise<string[]> {
  const names = new Set<string>();
  for (const dir of dirs) {
    try {
      for await (const entry of Deno.readDir(dir)) {
        if (!entry.isSymlink && !entry.isFile) continue;
        try {
          if (await Deno.realPath(`${dir}/${entry.name}`) === real) names.add(entry.name);
        } catch {
          // dangling link
        }
      }
    } catch {
      // missing dir
    }
  }
  return [...names];
}

/** Quotes a string for a POSIX shell. */
function q(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

interface RenderOptions {
  readonly shared: boolean;
  readonly hiddenDir: string;
  readonly realBase: string;
  readonly rulesFile: string;
  readonly self: SelfInvocation;
}

function denyLines(targets: readonly DenyTarget[]): string {
  return targets.filter((t) => t.unconditional).map((t) =>
    `  denied by rule "${t.rule.pattern}" from ${t.rule.source}` +
    (t.rule.justification === null ? "" : `: ${t.rule.justification}`)
  ).join("\n");
}

function refuse(targets: readonly DenyTarget[]): string {
  return `printf 'sandbox: Command denied by execpolicy: %s\\n%s\\n' "\${0##*/} $*" ${
    q(denyLines(targets))
  } >&2; exit 126`;
}

function viaShim(names: readonly string[], real: string, o: RenderOptions): string {
  const nameArgs = names.map((n) => `--name ${q(n)}`).join(" ");
  return `exec ${o.self.argv.map(q).join(" ")} __shim --rules ${q(o.rulesFile)} --real ${
    q(real)
  } ${nameArgs} -- "$0" "$@"`;
}

/** The `#!/bin/sh` shim for one real program. */
function renderShim(group: ShimGroup, o: RenderOptions): string {
  const lines = [
    "#!/bin/sh",
    "# Generated by sandbox (execpolicy): see the README section execpolicy.",
  ];
  const all = [...group.names.values()].flat();
  const realPath = `${o.hiddenDir}/${o.realBase}`;
  if (!o.shared) {
    // One program under one or more names: decide for every name, whatever $0 says
    // (a symlink with another name must not slip through).
    if (all.some((t) => t.unconditional)) lines.push(refuse(all));
    else lines.push(viaShim([...group.names.keys()], realPath, o));
    return lines.join("\n") + "\n";
  }
  lines.push('case "${0##*/}" in');
  for (const [name, targets] of group.names) {
    const branch = targets.some((t) => t.unconditional)
      ? refuse(targets)
      : viaShim([name], `${o.hiddenDir}/${name}`, o);
    lines.push(`  ${q(name)}) ${branch};;`);
  }
  lines.push("esac");
  lines.push(
    `if [ -L ${q(o.hiddenDir)}/"\${0##*/}" ]; then exec ${q(o.hiddenDir)}/"\${0##*/}" "$@"; fi`,
  );
  lines.push(`exec ${q(realPath)} "$@"`);
  return lines.join("\n") + "\n";
}

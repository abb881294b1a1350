/**
 * Program-aware words: for tools whose subcommand decides the network, the
 * options written before the subcommand are looked past, so that
 * `git -C repo push` is matched as `git push` too and `npm --prefix app ci`
 * as `npm ci`. A git alias is decided as what it expands to.
 *
 * - git: the global options (`-C`, `-c`, `--git-dir`, `--work-tree`,
 *   `--namespace`, `--config-env`, `--no-pager`, `--bare`, …), and aliases
 *   from `-c alias.*`, `--config-env`, `GIT_CONFIG_PARAMETERS`,
 *   `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n` and the config files.
 * - npm, pnpm, yarn: their global options before the subcommand.
 *
 * @module
 */
import { aliasesFromFiles, envConfig, type GitLookup, resolvePath } from "./git_config.ts";
import { programName } from "./match.ts";
import type { ScriptWord } from "./script.ts";
import { shellJoin, shellSplit } from "./shell_split.ts";

export type { GitLookup } from "./git_config.ts";

/** What the program-aware reading found. */
export type ProgramReading =
  /** Nothing to add: match the words as they are. */
  | { readonly kind: "none" }
  /** Match these forms as well as the words themselves (options before the subcommand dropped). */
  | { readonly kind: "forms"; readonly forms: readonly (readonly ScriptWord[])[] }
  /** A git alias: decide what it expands to instead (each reading; a `!` alias is a `sh -c`). */
  | {
    readonly kind: "expand";
    readonly readings: readonly (readonly ScriptWord[])[];
    readonly note: string;
  };

/** Programs whose words are read this way. */
export const PROGRAM_AWARE: readonly string[] = ["git", "npm", "pnpm", "yarn"];

const GIT_WITH_ARG = new Set([
  "-C",
  "-c",
  "--git-dir",
  "--work-tree",
  "--namespace",
  "--config-env",
  "--attr-source",
  "--super-prefix",
  "--list-cmds",
]); // deno-fmt-ignore
const GIT_FLAGS = new Set([
  "-p", "-P", "--paginate", "--no-pager", "--no-replace-objects", "--no-lazy-fetch",
  "--no-optional-locks", "--no-advice", "--bare", "--literal-pathspecs", "--glob-pathspecs",
  "--noglob-pathspecs", "--icase-pathspecs", "--exec-path", "--html-path", "--man-path",
  "--info-path", "-v", "--version", "-h", "--help",
]); // deno-fmt-ignore

/** Git commands an alias cannot hide (git ignores such aliases), builtin or commonly installed. */
const GIT_COMMANDS = new Set(
  `add am annotate apply archive bisect blame branch bugreport bundle cat-file check-attr
check-ignore check-mailmap check-ref-format checkout checkout-index cherry cherry-pick citool
clean clone column commit commit-graph commit-tree config count-objects credential describe diff
diff-files diff-index diff-tree difftool fast-export fast-import fetch fetch-pack filter-branch
fmt-merge-msg for-each-ref for-each-repo format-patch fsck gc get-tar-commit-id grep gui
hash-object help http-backend http-fetch http-push index-pack init instaweb interpret-trailers lfs
log ls-files ls-remote ls-tree mailinfo mailsplit maintenance merge merge-base merge-file
merge-index merge-tree mergetool mktag mktree multi-pack-index mv notes p4 pack-objects
pack-refs prune prune-packed pull push range-diff read-tree rebase receive-pack reflog remote
repack replace request-pull rerere reset restore rev-list rev-parse revert rm send-email
send-pack shortlog show show-branch show-index show-ref sparse-checkout stage stash status
stripspace submodule subtree svn switch symbolic-ref tag unpack-file unpack-objects
update-index update-ref update-server-info upload-archive upload-pack var verify-commit
verify-pack verify-tag version whatchanged worktree write-tree`.split(/\s+/),
);

interface PackageManagerSpec {
  /** Options that take the next word as their value (unless written `--x=v`). */
  readonly withArg: ReadonlySet<string>;
  /** Options known to take no value. */
  readonly flags: ReadonlySet<string>;
}

const set = (words: string) => new Set(words.split(/\s+/).filter((w) => w !== ""));

const PACKAGE_MANAGERS: Readonly<Record<string, PackageManagerSpec>> = {
  npm: {
    withArg: set(`-C --prefix --registry --cache --userconfig --globalconfig --loglevel -w
      --workspace --tag --otp --scope --omit --include --cafile --cert --key --proxy --https-proxy
      --noproxy --access --auth-type --before --location -L --install-strategy --script-shell`),
    flags: set(`-g --global -s --silent -q --quiet -d -dd -ddd --verbose --ws --workspaces -y
      --yes -f --force --offline --prefer-offline --prefer-online --no-audit --no-fund
      --ignore-scripts --no-progress --json --parseable -p --color --no-color --dry-run
      --legacy-peer-deps --strict-peer-deps --include-workspace-root --no-update-notifier`),
  },
  pnpm: {
    withArg: set(`-C --dir -F --filter --reporter --loglevel --store-dir --virtual-store-dir
      --registry --workspace-concurrency --test-pattern --changed-files-ignore-pattern`),
    flags: set(`-r --recursive -w --workspace-root -s --silent --verbose --frozen-lockfile
      --offline --prefer-offline --ignore-scripts --no-color --color --stream --parallel
      --aggregate-output --shamefully-hoist -g --global --fail-if-no-match`),
  },
  yarn: {
    withArg: set(`--cwd --registry --cache-folder --modules-folder --network-timeout --mutex
      --link-folder --global-folder --preferred-cache-folder --use-yarnrc`),
    flags: set(`-s --silent --verbose --offline --frozen-lockfile --immutable --prefer-offline
      --ignore-scripts --non-interactive --no-progress --no-default-rc --json --ignore-engines
      --pure-lockfile --check-files --production --prod`),
  },
};

const MAX_AMBIGUOUS = 4;

/**
 * Reads `words` as the program it names would.
 *
 * @example
 * ```ts
 * readProgram(lit("git -C repo push"), lookup); // forms: [git push]
 * readProgram(lit("git -c alias.p=push p"), lookup); // expand: [git -c alias.p=push push]
 * ```
 */
export function readProgram(words: readonly ScriptWord[], lookup: GitLookup): ProgramReading {
  const head = words[0];
  if (head === undefined || head.kind !== "literal") return { kind: "none" };
  const name = programName(head.text);
  if (name === "git") return readGit(words, lookup);
  const spec = PACKAGE_MANAGERS[name];
  if (spec !== undefined) return readPackageManager(words, spec);
  return { kind: "none" };
}

function readGit(words: readonly ScriptWord[], lookup: GitLookup): ProgramReading {
  let workDir = lookup.cwd;
  let gitDir: string | null = null;
  const defs: [string, string][] = [...envConfig(lookup.env)];
  let unknownConfig = false;
  let i = 1;
  for (; i < words.length; i++) {
    const w = words[i];
    if (w.kind !== "literal") break;
    const t = w.text;
    if (!t.startsWith("-")) break;
    if (t === "--") {
      i++;
      break;
    }
    const eq = t.startsWith("--") ? t.indexOf("=") : -1;
    const name = eq === -1 ? t : t.slice(0, eq);
    if (GIT_FLAGS.has(name) && eq === -1) continue;
    if (name === "--exec-path") continue;
    if (!GIT_WITH_ARG.has(name)) return { kind: "none" }; // git refuses an unknown option: nothing runs
    let value: ScriptWord | undefined;
    if (eq !== -1) value = { kind: "literal", text: t.slice(eq + 1) };
    else value = words[++i];
    if (value === undefined) return { kind: "none" };
    const known = value.kind === "literal" ? value.text : null;
    switch (name) {
      case "-C":
        workDir = known === null || workDir === null ? null : resolvePath(workDir, known);
        break;
      case "--git-dir":
        gitDir = known === null ? null : resolvePath(workDir ?? "/", known);
        break;
      case "-c":
        if (known === null) unknownConfig = true;
        else {
          const at = known.indexOf("=");
          defs.push(at === -1 ? [known, "true"] : [known.slice(0, at), known.slice(at + 1)]);
        }
        break;
      case "--config-env": {
        if (known === null) unknownConfig = true;
        else {
          const at = known.indexOf("=");
          if (at !== -1) {
            const v = lookup.env[known.slice(at + 1)];
            if (v !== undefined) defs.push([known.slice(0, at), v]);
          }
        }
        break;
      }
    }
  }
  const sub = words[i];
  if (sub === undefined || sub.kind !== "literal") return { kind: "none" };
  const rest = words.slice(i + 1);
  const canonical: ScriptWord[] = [words[0], sub, ...rest];
  const forms = i > 1 ? [canonical] : [];
  if (GIT_COMMANDS.has(sub.text)) {
    return forms.length > 0 ? { kind: "forms", forms } : { kind: "none" };
  }
  const key = `alias.${sub.text}`.toLowerCase();
  const given = defs.filter(([k]) => k.toLowerCase() === key).map(([, v]) => v);
  let values: string[];
  let where: string;
  if (given.length > 0) {
    values = [given[given.length - 1]];
    where = "the command line or environment";
  } else {
    if (unknownConfig) {
      // `git -c "$X" name`: the alias could be anything; the shims decide it at run time.
      return forms.length > 0 ? { kind: "forms", forms } : { kind: "none" };
    }
    const files = aliasesFromFiles(lookup, { workDir, gitDir });
    values = [...new Set(files.get(sub.text.toLowerCase()) ?? [])];
    where = "git config files";
  }
  if (values.length === 0) return forms.length > 0 ? { kind: "forms", forms } : { kind: "none" };
  const readings: ScriptWord[][] = [];
  for (const value of values) {
    if (value.startsWith("!")) {
      const tail = rest.every((w) => w.kind === "literal")
        ? shellJoin(rest.map((w) => w.text))
        : '"$@"';
      readings.push(
        ["sh", "-c", `${value.slice(1)}${tail === "" ? "" : ` ${tail}`}`].map((text) => ({
          kind: "literal",
          text,
        })),
      );
      continue;
    }
    let expansion: ScriptWord[];
    try {
      expansion = shellSplit(value).map((w) => ({ kind: "literal", text: w.text }));
    } catch {
      expansion = [{ kind: "single", text: value }];
    }
    readings.push([...words.slice(0, i), ...expansion, ...rest]);
  }
  return {
    kind: "expand",
    readings,
    note: `"git ${sub.text}" is an alias (from ${where}): decided as what it expands to`,
  };
}

function readPackageManager(
  words: readonly ScriptWord[],
  spec: PackageManagerSpec,
): ProgramReading {
  // Each way of reading the options gives one subcommand position.
  let positions: number[] = [1];
  let ambiguous = 0;
  const done = new Set<number>();
  while (positions.length > 0) {
    const next: number[] = [];
    for (const i of positions) {
      const w = words[i];
      if (w === undefined || w.kind !== "literal" || !w.text.startsWith("-") || w.text === "-") {
        done.add(i);
        continue;
      }
      const t = w.text;
      if (t === "--") {
        done.add(i + 1);
        continue;
      }
      const name = t.includes("=") ? t.slice(0, t.indexOf("=")) : t;
      if (t.includes("=") || spec.flags.has(name)) next.push(i + 1);
      else if (spec.withArg.has(name)) next.push(i + 2);
      else {
        // An option we do not know: it may or may not take the next word.
        if (++ambiguous > MAX_AMBIGUOUS) return { kind: "none" };
        next.push(i + 1, i + 2);
      }
    }
    positions = [...new Set(next)];
  }
  const forms: ScriptWord[][] = [];
  for (const i of done) {
    if (i <= 1 || i >= words.length) continue;
    forms.push([words[0], ...words.slice(i)]);
  }
  return forms.length > 0 ? { kind: "forms", forms } : { kind: "none" };
}

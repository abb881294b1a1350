/**
 * The execpolicy decision for one command line: `deny` (refuse to run),
 * `allow` (run sandboxed without any network) or `allow-network` (run
 * sandboxed with the proxy). `docs/execpolicy.md` has the rules in prose; in
 * short:
 *
 * - the most specific matching rule decides (`./precedence.ts`); rules of
 *   equal specificity combine strictest first (deny > allow > allow-network);
 *   no matching rule means the table's default. A rule from the managed file
 *   is a floor: when one matches, a user rule cannot loosen its decision;
 * - `VAR=value` prefixes and the wrappers of `./wrappers.ts` are looked through;
 *   a wrapper with an option we do not know is read every plausible way;
 * - git, npm, pnpm and yarn are read as the program would (`./programs.ts`):
 *   options before the subcommand are looked past and git aliases expanded;
 * - `sh -c SCRIPT` is split into its simple commands (`./script.ts`); a
 *   script is denied if any part is denied, else gets `allow-network` if any
 *   part needs it, else `allow`. A script that cannot be split safely is
 *   decided by the rules of every program named as a word inside it (a named
 *   denied program denies it, a named allow-network program gives it
 *   network), and otherwise by the table's default.
 *
 * Anything that throws while deciding denies (fail closed).
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import type { ExecDecision, ExecPolicyConfig, ExecRule } from "./types.ts";
import {
  type CompiledPattern,
  compilePattern,
  matchesProgram,
  matchWords,
  programName,
} from "./match.ts";
import { compareSpecificity, mostSpecific } from "./precedence.ts";
import { type GitLookup, readProgram } from "./programs.ts";
import { parseScript, type ScriptParse, type ScriptWord } from "./script.ts";
import { loadShellParser, type ShellParser } from "./bash_parser.ts";
import { shellJoin } from "./shell_split.ts";
import { unwrap } from "./wrappers.ts";

/** One rule, as shown to people and in `--json` output. */
export interface ExecMatch {
  /** The rule's pattern as written. */
  pattern: string;
  /** What the rule decides. */
  decision: ExecDecision;
  /** Where the rule came from (`user:/…/config.toml`). */
  source: string;
  /** Why the rule exists, or null. */
  justification: string | null;
  /** The hosts its network is bound to, or null when the profile's domain rules alone decide. */
  hosts: string[] | null;
  /** Present (true) for a Codex `prompt` rule: it denies unless the user approves. */
  prompt?: boolean;
}

/** How a command's decision came about. */
export type ExecBasis =
  /** One or more rules matched the command. */
  | "rule"
  /** No rule matched: the table's default applies. */
  | "default"
  /** No execpolicy is configured: the decision follows the network setting. */
  | "no-policy"
  /** A wrapper or shell invocation matched a rule as a whole (its inner commands are listed too). */
  | "wrapper"
  /** A shell script that cannot be split safely, decided as one command. */
  | "opaque"
  /** Deciding failed; denied to fail closed. */
  | "error";

/** The decision for one command (a script has one per part). */
export interface ExecCommandVerdict {
  /** The command's words; words only known at run time appear as written (`"$URL"`). */
  argv: string[];
  /** The decision for this command. */
  decision: ExecDecision;
  /** Every rule that matched it. */
  matched: ExecMatch[];
  /** The rules that decided it: the most specific match(es), and a managed floor when it applied. */
  decidedBy: ExecMatch[];
  /** Rules that matched but lost to a more specific one. */
  beat: ExecMatch[];
  /** How the decision came about. */
  basis: ExecBasis;
  /** A sentence for people (why a script is opaque, …), or null. */
  note: string | null;
  /** For `allow-network`: the hosts the deciding rules bind the network to, or null for no binding. */
  hosts: string[] | null;
}

/** The decision for a whole command line. */
export interface ExecVerdict {
  /** `deny` if any command is denied, else `allow-network` if any needs it, else `allow`. */
  decision: ExecDecision;
  /** Every rule that matched anywhere, without repeats. */
  matched: ExecMatch[];
  /** Every command decided: the real command behind wrappers, each part of a script. */
  commands: ExecCommandVerdict[];
  /** The command line as given. */
  argv: string[];
  /**
   * For `allow-network`: the only hosts the run may reach (the union over the
   * parts that need network), or null when some part's network is not bound.
   */
  hosts: string[] | null;
}

/** Options for {@linkcode decideCommand}. */
export interface DecideCommandOptions {
  /** Whether the network profile is enabled (the decision when no execpolicy is configured). */
  networkEnabled: boolean;
  /** The environment the command starts with (git aliases from `GIT_CONFIG_*`); this process's unless set. */
  env?: Readonly<Record<string, string>>;
  /** The directory the command starts in (a repository's git aliases); this process's unless set. */
  cwd?: string | null;
  /** Reads a git config file, null when it cannot; `Deno.readTextFileSync` unless set. */
  readTextFile?: (path: string) => string | null;
  /**
   * The shell grammar for scripts the hand-written splitter refuses (see
   * {@linkcode decideCommandLazily}, which loads it when needed); without it
   * such scripts are opaque.
   */
  shellParser?: ShellParser;
  /** Called when a script was refused by the hand-written splitter and no `shellParser` was given. */
  onParserWanted?: () => void;
}

const RANK: Readonly<Record<ExecDecision, number>> = { "allow-network": 0, allow: 1, deny: 2 };

/** The stricter of decisions (deny > allow > allow-network); `allow-network` for none. */
export function strictest(decisions: Iterable<ExecDecision>): ExecDecision {
  let best: ExecDecision = "allow-network";
  for (const d of decisions) if (RANK[d] > RANK[best]) best = d;
  return best;
}

/**
 * How the parts of one command line combine: `deny` if any part is denied,
 * else `allow-network` if any part needs it, else `allow` (also for none).
 */
export function combineParts(decisions: Iterable<ExecDecision>): ExecDecision {
  let network = false;
  for (const d of decisions) {
    if (d === "deny") return "deny";
    if (d === "allow-network") network = true;
  }
  return network ? "allow-network" : "allow";
}

/** Shells whose `-c` scripts are split (POSIX-like syntax). */
const SPLIT_SHELLS = new Set(["sh", "bash", "zsh", "dash", "ash", "ksh", "mksh", "posh", "yash"]);
/** Shells with another syntax: their `-c` scripts are always opaque. */
const OTHER_SHELLS = new Set(["fish", "csh", "tcsh", "nu", "elvish", "xonsh"]);
const SHELL_FLAGS = "abefhkmnptuvxBCEHPTlirsXdgqwyFIJLMNQRSVYZ";
const SHELL_LONG_FLAGS = new Set([
  "--norc",
  "--noprofile",
  "--login",
  "--posix",
  "--noediting",
  "--verbose",
  "--restricted",
  "--no-rcs",
  "--no-globalrcs",
  "--emacs",
  "--vi",
  "--interactive",
  "--no-config",
]); // deno-fmt-ignore
const SHELL_LONG_WITH_ARG = new Set(["--rcfile", "--init-file"]);
const MAX_DEPTH = 8;
const MAX_STEPS = 256;
const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)(\+?)=/;

interface CompiledRule {
  readonly rule: ExecRule;
  readonly pattern: CompiledPattern;
  readonly managed: boolean;
}

interface Context {
  readonly rules: readonly CompiledRule[];
  readonly fallback: ExecDecision;
  readonly lookup: GitLookup;
  readonly parser: ShellParser | null;
  readonly wantParser: () => void;
  steps: number;
}

/**
 * Decides how `argv` may run under `policy` (null: no execpolicy configured).
 * Never throws: a failure while deciding gives `deny`.
 *
 * @example
 * ```ts
 * const policy = {
 *   default: "allow" as const,
 *   rules: [{ pattern: "curl *", decision: "deny" as const, justification: null, match: [], notMatch: [], source: "user:/c.toml" }],
 * };
 * decideCommand(policy, ["sh", "-c", "npm ci && curl -s x"], { networkEnabled: true }).decision; // "deny"
 * ```
 */
export function decideCommand(
  policy: ExecPolicyConfig | null,
  argv: readonly string[],
  options: DecideCommandOptions,
): ExecVerdict {
  const given = [...argv];
  if (policy === null) {
    const decision: ExecDecision = options.networkEnabled ? "allow-network" : "allow";
    const note = `No execpolicy is configured, so the network setting decides (network ${
      options.networkEnabled ? "enabled" : "disabled"
    })`;
    return {
      decision,
      matched: [],
      commands: [{
        argv: given,
        decision,
        matched: [],
        decidedBy: [],
        beat: [],
        basis: "no-policy",
        note,
        hosts: null,
      }],
      argv: given,
      hosts: null,
    };
  }
  try {
    const ctx: Context = {
      rules: policy.rules.map((rule) => ({
        rule,
        pattern: compilePattern(rule.pattern),
        managed: rule.source.startsWith("managed:"),
      })),
      fallback: policy.default,
      lookup: {
        env: options.env ?? processEnv(),
        cwd: options.cwd === undefined ? processCwd() : options.cwd,
        readTextFile: options.readTextFile ?? readTextFileOrNull,
      },
      parser: options.shellParser ?? null,
      wantParser: options.onParserWanted ?? (() => {}),
      steps: 0,
    };
    if (!(policy.default in RANK)) throw new Error(`unknown default decision "${policy.default}"`);
    for (const { rule } of ctx.rules) {
      if (!(rule.decision in RANK)) {
        throw new Error(`rule "${rule.pattern}" has an unknown decision "${rule.decision}"`);
      }
    }
    const words = literalWords(given);
    const out: ExecCommandVerdict[] = [];
    decideWords(ctx, words, 0, out, {});
    if (out.length === 0) out.push(leaf(ctx, words, null));
    return summarize(given, out);
  } catch (error) {
    const message = errorMessage(error);
    const note = `Deciding failed, so the command is denied: ${message}`;
    return {
      decision: "deny",
      matched: [],
      commands: [{
        argv: given,
        decision: "deny",
        matched: [],
        decidedBy: [],
        beat: [],
        basis: "error",
        note,
        hosts: null,
      }],
      argv: given,
      hosts: null,
    };
  }
}

/**
 * {@linkcode decideCommand}, loading the shell grammar (tree-sitter-bash,
 * `./bash_parser.ts`) only when a script must be split that the
 * hand-written splitter refuses. When the grammar cannot be loaded, such
 * scripts stay opaque (and the note says so).
 *
 * @example
 * ```ts
 * const verdict = await decideCommandLazily(policy, ["bash", "-lc", "for f in *.js; do node \"$f\"; done"], { networkEnabled: true });
 * ```
 */
export async function decideCommandLazily(
  policy: ExecPolicyConfig | null,
  argv: readonly string[],
  options: DecideCommandOptions,
): Promise<ExecVerdict> {
  let wanted = false;
  const first = decideCommand(policy, argv, { ...options, onParserWanted: () => wanted = true });
  if (!wanted || options.shellParser !== undefined) return first;
  const parser = await loadShellParser();
  if ("error" in parser) {
    for (const c of first.commands) {
      if (c.basis === "opaque") {
        c.note = `${c.note}. The shell grammar could not be loaded: ${parser.error}`;
      }
    }
    return first;
  }
  return decideCommand(policy, argv, { ...options, shellParser: parser });
}

function processEnv(): Record<string, string> {
  try {
    return Deno.env.toObject();
  } catch {
    return {}; // no env permission: only what the command line itself sets is known
  }
}

function processCwd(): string | null {
  try {
    return Deno.cwd();
  } catch {
    return null;
  }
}

function readTextFileOrNull(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

function literalWords(argv: readonly string[]): ScriptWord[] {
  return argv.map((text) => ({ kind: "literal", text }));
}

function summarize(argv: string[], commands: ExecCommandVerdict[]): ExecVerdict {
  const matched: ExecMatch[] = [];
  for (const c of commands) {
    for (const m of c.matched) {
      if (!matched.some((x) => x.pattern === m.pattern && x.source === m.source)) matched.push(m);
    }
  }
  const decision = combineParts(commands.map((c) => c.decision));
  return { decision, matched, commands, argv, hosts: unionHosts(decision, commands) };
}

/** The union of the parts' host bindings; null when a part that needs network has none. */
function unionHosts(
  decision: ExecDecision,
  parts: readonly { decision: ExecDecision; hosts: string[] | null }[],
): string[] | null {
  if (decision !== "allow-network") return null;
  const hosts = new Set<string>();
  for (const p of parts) {
    if (p.decision !== "allow-network") continue;
    if (p.hosts === null) return null;
    for (const h of p.hosts) hosts.add(h);
  }
  return [...hosts];
}

function toMatch(rule: ExecRule): ExecMatch {
  return {
    pattern: rule.pattern,
    decision: rule.decision,
    source: rule.source,
    justification: rule.justification,
    hosts: rule.hosts === undefined || rule.hosts === null ? null : [...rule.hosts],
    ...(rule.prompt === true ? { prompt: true } : {}),
  };
}

/**
 * Whether a denied verdict was denied only by `prompt` rules (Codex's
 * "ask first"), so that approving it on the terminal may let it run.
 */
export function deniedOnlyByPrompts(verdict: ExecVerdict): boolean {
  if (verdict.decision !== "deny") return false;
  return verdict.commands.every((c) =>
    c.decision !== "deny" ||
    (c.decidedBy.length > 0 && c.decidedBy.every((m) => m.decision !== "deny" || m.prompt === true))
  );
}

/**
 * The table with its `prompt` rules approved for this run: each takes the
 * network posture (`allow-network` when the network is enabled, else `allow`).
 */
export function approvePrompts(
  policy: ExecPolicyConfig,
  networkEnabled: boolean,
): ExecPolicyConfig {
  const posture: ExecDecision = networkEnabled ? "allow-network" : "allow";
  return {
    ...policy,
    rules: policy.rules.map((r) =>
      r.prompt === true ? { ...r, decision: posture, prompt: false } : r
    ),
  };
}

function display(words: readonly ScriptWord[]): string[] {
  return words.map((w) => w.text);
}

function decideWords(
  ctx: Context,
  input: readonly ScriptWord[],
  depth: number,
  out: ExecCommandVerdict[],
  env: Readonly<Record<string, string>>,
): void {
  let start = 0;
  const assigned: Record<string, string> = { ...env };
  while (start < input.length) {
    const m = ASSIGNMENT.exec(input[start].text);
    if (m === null) break;
    if (input[start].kind === "literal") assigned[m[1]] = input[start].text.slice(m[0].length);
    else delete assigned[m[1]]; // known only at run time
    start++;
  }
  const words = input.slice(start);
  if (words.length === 0) return;
  ctx.steps++;
  if (depth > MAX_DEPTH || ctx.steps > MAX_STEPS) {
    out.push(opaque(ctx, words, "wrappers or shells are nested too deeply to follow", []));
    return;
  }
  const head = words[0];
  if (head.kind !== "literal") {
    out.push(opaque(ctx, words, `the program "${head.text}" is only known at run time`, []));
    return;
  }
  const wrapped = unwrap(words);
  switch (wrapped.kind) {
    case "inner": {
      const whole = explicit(ctx, words, "The wrapper itself matches a rule");
      if (whole !== null) out.push(whole);
      const inner: Record<string, string> = { ...assigned };
      if (programName(head.text) === "env") {
        for (const w of words.slice(1, words.length - wrapped.words.length)) {
          const m = w.kind === "literal" ? ASSIGNMENT.exec(w.text) : null;
          if (m !== null) inner[m[1]] = w.text.slice(m[0].length);
        }
      }
      decideWords(ctx, wrapped.words, depth + 1, out, inner);
      return;
    }
    case "no-command":
      out.push(leaf(ctx, words, null));
      return;
    case "uncertain": {
      out.push(
        leaf(
          ctx,
          words,
          `Cannot read the wrapper with certainty (${wrapped.reason}): every reading is decided`,
        ),
      );
      for (let j = 1; j < words.length; j++) {
        decideWords(ctx, words.slice(j), depth + 1, out, assigned);
      }
      for (const reading of wrapped.extra) decideWords(ctx, reading, depth + 1, out, assigned);
      return;
    }
    case "none":
      break;
  }
  const name = programName(head.text);
  const reading = readProgram(words, { ...ctx.lookup, env: { ...ctx.lookup.env, ...assigned } });
  if (reading.kind === "expand") {
    for (const expanded of reading.readings) {
      const before = out.length;
      decideWords(ctx, expanded, depth + 1, out, assigned);
      for (const c of out.slice(before)) {
        c.note = c.note === null ? reading.note : `${reading.note}. ${c.note}`;
      }
    }
    return;
  }
  const forms = reading.kind === "forms" ? reading.forms : [];
  if (OTHER_SHELLS.has(name) && words.some((w) => w.text === "-c")) {
    out.push(opaque(ctx, words, `scripts of "${name}" are not split`));
    return;
  }
  if (!SPLIT_SHELLS.has(name)) {
    out.push(leaf(ctx, words, null, forms));
    return;
  }
  const shell = parseShellArgs(words);
  if (shell.kind === "no-script") {
    out.push(leaf(ctx, words, null));
    return;
  }
  if (shell.kind === "uncertain") {
    out.push(opaque(ctx, words, shell.reason));
    return;
  }
  if (shell.script.kind !== "literal") {
    out.push(
      opaque(ctx, words, `the script "${shell.script.text}" is only known at run time`),
    );
    return;
  }
  let parsed: ScriptParse = parseScript(shell.script.text);
  if (parsed.kind === "opaque") {
    if (ctx.parser === null) ctx.wantParser();
    else {
      const deeper = ctx.parser.split(shell.script.text);
      parsed = deeper.kind === "split"
        ? deeper
        : { kind: "opaque", reason: `${parsed.reason}; the shell grammar: ${deeper.reason}` };
    }
  }
  if (parsed.kind === "opaque") {
    out.push(
      opaque(ctx, words, `the script cannot be split safely: ${parsed.reason}`),
    );
    return;
  }
  const whole = explicit(ctx, words, "The shell invocation itself matches a rule");
  if (whole !== null) out.push(whole);
  const before = out.length;
  for (const command of parsed.commands) decideWords(ctx, command, depth + 1, out, assigned);
  if (whole === null && out.length === before) {
    out.push(leaf(ctx, words, "The script runs no command"));
  }
}

interface Choice {
  readonly decision: ExecDecision;
  /** The rules that decided (the most specific sure matches and the possible ones as specific). */
  readonly deciders: readonly CompiledRule[];
  /** No rule surely matched: the default counted. */
  readonly usedDefault: boolean;
}

/**
 * The most specific of the surely matching rules decides; a rule that only
 * possibly matches (words known at run time) and is at least as specific
 * counts too, strictest first, and so does the default when nothing surely
 * matches. `fallback` null: no default (for the managed floor).
 */
function choose(
  sure: readonly CompiledRule[],
  possible: readonly CompiledRule[],
  fallback: ExecDecision | null,
): Choice | null {
  const top = mostSpecific(sure, (r) => r.pattern);
  const contenders = possible.filter((p) =>
    top.length === 0 || compareSpecificity(p.pattern, top[0].pattern) >= 0
  );
  const deciders = [...top, ...contenders];
  const decisions = deciders.map((d) => d.rule.decision);
  const usedDefault = top.length === 0;
  if (usedDefault) {
    if (fallback === null) {
      if (decisions.length === 0) return null;
    } else decisions.push(fallback);
  }
  return { decision: strictest(decisions), deciders, usedDefault };
}

/** Applies the managed floor: a matching managed rule's decision cannot be loosened. */
function withFloor(
  choice: Choice,
  sure: readonly CompiledRule[],
  possible: readonly CompiledRule[],
): { choice: Choice; floor: boolean } {
  const floor = choose(sure.filter((r) => r.managed), possible.filter((r) => r.managed), null);
  if (floor === null || RANK[floor.decision] <= RANK[choice.decision]) {
    return { choice, floor: false };
  }
  const deciders = [
    ...floor.deciders,
    ...choice.deciders.filter((d) => !floor.deciders.includes(d)),
  ];
  return { choice: { ...choice, decision: floor.decision, deciders }, floor: true };
}

function matchAll(
  ctx: Context,
  forms: readonly (readonly ScriptWord[])[],
): { sure: CompiledRule[]; possible: CompiledRule[] } {
  const sure: CompiledRule[] = [];
  const possible: CompiledRule[] = [];
  for (const r of ctx.rules) {
    let best: "sure" | "possible" | "no" = "no";
    for (const f of forms) {
      if (!atAllowedPath(ctx, r.rule, f)) continue;
      const m = matchWords(r.pattern, f);
      if (m === "sure") {
        best = "sure";
        break;
      }
      if (m === "possible") best = "possible";
    }
    if (best === "sure") sure.push(r);
    else if (best === "possible") possible.push(r);
  }
  return { sure, possible };
}

/** A rule with `programPaths` matches a program given as a path only at one of them. */
function atAllowedPath(ctx: Context, rule: ExecRule, words: readonly ScriptWord[]): boolean {
  const paths = rule.programPaths;
  const head = words[0];
  if (paths === undefined || paths === null || head === undefined) return true;
  if (head.kind !== "literal" || !head.text.includes("/")) return true;
  const home = ctx.lookup.env.HOME;
  return paths.some((p) =>
    (p.startsWith("~/") ? (home === undefined ? null : `${home}/${p.slice(2)}`) : p) === head.text
  );
}

function boundHosts(decision: ExecDecision, deciders: readonly CompiledRule[]): string[] | null {
  if (decision !== "allow-network") return null;
  const net = deciders.filter((d) => d.rule.decision === "allow-network");
  if (net.length === 0) return null;
  const hosts = new Set<string>();
  for (const d of net) {
    if (d.rule.hosts === undefined || d.rule.hosts === null) return null;
    for (const h of d.rule.hosts) hosts.add(h);
  }
  return [...hosts];
}

function verdictFor(
  words: readonly ScriptWord[],
  decision: ExecDecision,
  matched: readonly CompiledRule[],
  deciders: readonly CompiledRule[],
  basis: ExecBasis,
  note: string | null,
): ExecCommandVerdict {
  return {
    argv: display(words),
    decision,
    matched: matched.map((r) => toMatch(r.rule)),
    decidedBy: deciders.map((r) => toMatch(r.rule)),
    beat: matched.filter((r) => !deciders.includes(r)).map((r) => toMatch(r.rule)),
    basis,
    note,
    hosts: boundHosts(decision, deciders),
  };
}

/** Decides one simple command by its most specific matching rule, or the default. */
function leaf(
  ctx: Context,
  words: readonly ScriptWord[],
  note: string | null,
  forms: readonly (readonly ScriptWord[])[] = [],
): ExecCommandVerdict {
  const { sure, possible } = matchAll(ctx, [words, ...forms]);
  const picked = withFloor(choose(sure, possible, ctx.fallback)!, sure, possible);
  const choice = picked.choice;
  let text = note;
  if (possible.length > 0 && choice.deciders.some((d) => possible.includes(d))) {
    text = joinNotes(
      text,
      "Some words are only known at run time: every rule they could match that is as specific counts" +
        (choice.usedDefault ? ", and so does the default" : ""),
    );
  }
  if (picked.floor) {
    text = joinNotes(text, "A managed rule is a floor here: the user's rules cannot loosen it");
  }
  const matched = [...sure, ...possible];
  const basis: ExecBasis = matched.length > 0 && choice.deciders.length > 0 ? "rule" : "default";
  return verdictFor(words, choice.decision, matched, choice.deciders, basis, text);
}

/** Rules matching a wrapper or shell invocation as a whole; null when none does. */
function explicit(
  ctx: Context,
  words: readonly ScriptWord[],
  note: string,
): ExecCommandVerdict | null {
  const { sure, possible } = matchAll(ctx, [words]);
  const chosen = choose(sure, possible, null);
  if (chosen === null) return null;
  const { choice } = withFloor(chosen, sure, possible);
  return verdictFor(
    words,
    choice.decision,
    [...sure, ...possible],
    choice.deciders,
    "wrapper",
    note,
  );
}

/**
 * An opaque command: the rules matching the whole argv (most specific first)
 * and every rule whose program is named as a word inside decide it: any
 * `deny` among them denies, else any `allow-network` gives network, else a
 * rule for the whole argv decides, else the table's default (but no network
 * when the default has it and a named program's rules say `allow`). `tokens` are
 * the words that may name a program run inside (by default, those of its
 * script).
 */
function opaque(
  ctx: Context,
  words: readonly ScriptWord[],
  reason: string,
  tokens: readonly string[] = scriptTokens(words),
): ExecCommandVerdict {
  const { sure, possible } = matchAll(ctx, [words]);
  const wholeChoice = choose(sure, possible, null);
  const whole = wholeChoice === null ? null : withFloor(wholeChoice, sure, possible).choice;
  const matchedWhole = [...sure, ...possible];
  const named = ctx.rules.filter((r) =>
    !matchedWhole.includes(r) && tokens.some((t) => matchesProgram(r.pattern, t))
  );
  const pool = [...(whole?.deciders ?? []), ...named];
  let decision: ExecDecision;
  let deciders: CompiledRule[];
  if (pool.some((r) => r.rule.decision === "deny")) {
    decision = "deny";
    deciders = pool.filter((r) => r.rule.decision === "deny");
  } else if (pool.some((r) => r.rule.decision === "allow-network")) {
    decision = "allow-network";
    deciders = pool.filter((r) => r.rule.decision === "allow-network");
  } else if (whole !== null) {
    decision = whole.decision;
    deciders = [...whole.deciders];
  } else if (named.length > 0 && ctx.fallback === "allow-network") {
    // Named programs are all "allow" (no network): the script does not get more than they do.
    decision = "allow";
    deciders = named;
  } else {
    decision = ctx.fallback;
    deciders = [];
  }
  const by = deciders.length === 0
    ? `no rule for it or for a program named inside it denies or needs network, so the table's default "${decision}" applies`
    : `decided by ${
      whole !== null && deciders.some((d) => whole.deciders.includes(d))
        ? "the rules for it and "
        : ""
    }the rules of the programs named inside it`;
  return verdictFor(
    words,
    decision,
    [...matchedWhole, ...named],
    deciders,
    "opaque",
    `Cannot decide its parts (${reason}): ${by}`,
  );
}

/**
 * Every word-like token of an opaque command after its program (the shell
 * itself counts only through rules that match the whole command), and the
 * basename of each path.
 */
function scriptTokens(words: readonly ScriptWord[]): string[] {
  const tokens = new Set<string>();
  for (const w of words.slice(1)) {
    for (const t of w.text.split(/[^A-Za-z0-9_.+/@%:,=~-]+/)) {
      if (t === "") continue;
      tokens.add(t);
      tokens.add(programName(t));
    }
  }
  return [...tokens];
}

function joinNotes(a: string | null, b: string): string {
  return a === null ? b : `${a}. ${b}`;
}

type ShellArgs =
  | { readonly kind: "no-script" }
  | { readonly kind: "script"; readonly script: ScriptWord; readonly args: readonly ScriptWord[] }
  | { readonly kind: "uncertain"; readonly reason: string };

/** Reads a shell's options up to its `-c` script. */
function parseShellArgs(words: readonly ScriptWord[]): ShellArgs {
  let script = false;
  let i = 1;
  for (; i < words.length; i++) {
    const w = words[i];
    if (w.kind !== "literal") {
      return {
        kind: "uncertain",
        reason: `the shell option "${w.text}" is only known at run time`,
      };
    }
    const t = w.text;
    if (t === "--" || t === "-") {
      i++;
      break;
    }
    if (t.startsWith("--")) {
      if (SHELL_LONG_FLAGS.has(t)) continue;
      if (SHELL_LONG_WITH_ARG.has(t)) {
        i++;
        continue;
      }
      return { kind: "uncertain", reason: `unknown shell option "${t}"` };
    }
    if ((t.startsWith("-") || t.startsWith("+")) && t.length > 1) {
      let args = 0;
      for (const c of t.slice(1)) {
        if (c === "c") script = true;
        else if (c === "o" || c === "O") args++;
        else if (!SHELL_FLAGS.includes(c)) {
          return { kind: "uncertain", reason: `unknown shell option "${t[0]}${c}"` };
        }
      }
      i += args;
      continue;
    }
    break;
  }
  if (!script || i >= words.length) return { kind: "no-script" };
  return { kind: "script", script: words[i], args: words.slice(i + 1) };
}

/**
 * The explanation printed on stderr when a command is denied: the command,
 * then for every denied part the rules (or default) that denied it, with
 * their source and justification. No `sandbox:` prefix; callers add it.
 *
 * @example
 * ```ts
 * const verdict = decideCommand(policy, ["curl", "-s", "x"], { networkEnabled: true });
 * if (verdict.decision === "deny") console.error(`sandbox: ${formatExecDenial(verdict)}`);
 * ```
 */
export function formatExecDenial(verdict: ExecVerdict): string {
  const lines = [`Command denied by execpolicy: ${shellJoin(verdict.argv)}`];
  for (const c of verdict.commands) {
    if (c.decision !== "deny") continue;
    const where = verdict.commands.length > 1 || c.argv.join("\0") !== verdict.argv.join("\0")
      ? `  ${shellJoin(c.argv)}: `
      : "  ";
    if (c.note !== null && c.basis !== "default") lines.push(`${where}${c.note}`);
    const denying = c.decidedBy.filter((m) => m.decision === "deny");
    for (const m of denying) {
      lines.push(
        `${where}denied by rule "${m.pattern}" from ${m.source}` +
          (m.justification === null ? "" : `: ${m.justification}`),
      );
    }
    if (denying.length === 0) {
      lines.push(`${where}no rule allows it and the table's default is "deny"`);
    }
  }
  lines.push(
    `Run "sandbox policy check -- ${shellJoin(verdict.argv)}" to see every rule that applies`,
  );
  return lines.join("\n");
}

/**
 * The execpolicy decision for one command line: `deny` (refuse to run),
 * `allow` (run sandboxed without any network) or `allow-network` (run
 * sandboxed with the proxy). See the README section "execpolicy" for the
 * rules in prose; in short:
 *
 * - every rule whose pattern matches counts, and the strictest decision wins
 *   (deny > allow > allow-network); no matching rule means the table's default;
 * - `VAR=value` prefixes and the wrappers of `./wrappers.ts` are looked through;
 *   a wrapper with an option we do not know is read every plausible way;
 * - `sh -c SCRIPT` is split into its simple commands (`./script.ts`), each is
 *   decided, and the script gets the strictest; a script that cannot be split
 *   safely is one opaque command: a rule for the shell itself decides it, and
 *   without one it gets the strictest decision in the whole table.
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
import { parseScript, type ScriptWord } from "./script.ts";
import { shellJoin } from "./shell_split.ts";
import { unwrap } from "./wrappers.ts";

/** One rule that matched, as shown to people and in `--json` output. */
export interface ExecMatch {
  /** The rule's pattern as written. */
  pattern: string;
  /** What the rule decides. */
  decision: ExecDecision;
  /** Where the rule came from (`user:/…/config.toml`). */
  source: string;
  /** Why the rule exists, or null. */
  justification: string | null;
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
  /** Every rule that decided it. */
  matched: ExecMatch[];
  /** How the decision came about. */
  basis: ExecBasis;
  /** A sentence for people (why a script is opaque, …), or null. */
  note: string | null;
}

/** The decision for a whole command line. */
export interface ExecVerdict {
  /** The strictest decision of all `commands`. */
  decision: ExecDecision;
  /** Every rule that matched anywhere, without repeats. */
  matched: ExecMatch[];
  /** Every command decided: the real command behind wrappers, each part of a script. */
  commands: ExecCommandVerdict[];
  /** The command line as given. */
  argv: string[];
}

/** Options for {@linkcode decideCommand}. */
export interface DecideCommandOptions {
  /** Whether the network profile is enabled (the decision when no execpolicy is configured). */
  networkEnabled: boolean;
}

const RANK: Readonly<Record<ExecDecision, number>> = { "allow-network": 0, allow: 1, deny: 2 };

/** The stricter of decisions (deny > allow > allow-network); `allow-network` for none. */
export function strictest(decisions: Iterable<ExecDecision>): ExecDecision {
  let best: ExecDecision = "allow-network";
  for (const d of decisions) if (RANK[d] > RANK[best]) best = d;
  return best;
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
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*\+?=/;

interface CompiledRule {
  readonly rule: ExecRule;
  readonly pattern: CompiledPattern;
}

interface Context {
  readonly rules: readonly CompiledRule[];
  readonly fallback: ExecDecision;
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
      commands: [{ argv: given, decision, matched: [], basis: "no-policy", note }],
      argv: given,
    };
  }
  try {
    const ctx: Context = {
      rules: policy.rules.map((rule) => ({ rule, pattern: compilePattern(rule.pattern) })),
      fallback: policy.default,
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
    decideWords(ctx, words, 0, out);
    if (out.length === 0) out.push(leaf(ctx, words, null));
    return summarize(given, out);
  } catch (error) {
    const message = errorMessage(error);
    const note = `Deciding failed, so the command is denied: ${message}`;
    return {
      decision: "deny",
      matched: [],
      commands: [{ argv: given, decision: "deny", matched: [], basis: "error", note }],
      argv: given,
    };
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
  return { decision: strictest(commands.map((c) => c.decision)), matched, commands, argv };
}

function toMatch(rule: ExecRule): ExecMatch {
  return {
    pattern: rule.pattern,
    decision: rule.decision,
    source: rule.source,
    justification: rule.justification,
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
): void {
  let start = 0;
  while (
    start < input.length && input[start].kind === "literal" && ASSIGNMENT.test(input[start].text)
  ) {
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
      decideWords(ctx, wrapped.words, depth + 1, out);
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
          `Cannot read the wrapper with certainty (${wrapped.reason}): every reading is decided and the strictest wins`,
        ),
      );
      for (let j = 1; j < words.length; j++) decideWords(ctx, words.slice(j), depth + 1, out);
      for (const reading of wrapped.extra) decideWords(ctx, reading, depth + 1, out);
      return;
    }
    case "none":
      break;
  }
  const name = programName(head.text);
  if (OTHER_SHELLS.has(name) && words.some((w) => w.text === "-c")) {
    out.push(opaque(ctx, words, `scripts of "${name}" are not split`));
    return;
  }
  if (!SPLIT_SHELLS.has(name)) {
    out.push(leaf(ctx, words, null));
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
  const parsed = parseScript(shell.script.text);
  if (parsed.kind === "opaque") {
    out.push(
      opaque(ctx, words, `the script cannot be split safely: ${parsed.reason}`),
    );
    return;
  }
  const whole = explicit(ctx, words, "The shell invocation itself matches a rule");
  if (whole !== null) out.push(whole);
  const before = out.length;
  for (const command of parsed.commands) decideWords(ctx, command, depth + 1, out);
  if (whole === null && out.length === before) {
    out.push(leaf(ctx, words, "The script runs no command"));
  }
}

/** Decides one simple command by its matching rules, or the default. */
function leaf(ctx: Context, words: readonly ScriptWord[], note: string | null): ExecCommandVerdict {
  const possible: CompiledRule[] = [];
  let sure = false;
  for (const r of ctx.rules) {
    const result = matchWords(r.pattern, words);
    if (result === "no") continue;
    possible.push(r);
    if (result === "sure") sure = true;
  }
  const decisions = possible.map((r) => r.rule.decision);
  if (!sure) decisions.push(ctx.fallback);
  const unknown = words.some((w) => w.kind !== "literal");
  let text = note;
  if (unknown && possible.length > 0 && !sure) {
    text = joinNotes(
      note,
      "Some words are only known at run time: every rule they could match counts, and so does the default",
    );
  }
  return {
    argv: display(words),
    decision: strictest(decisions),
    matched: possible.map((r) => toMatch(r.rule)),
    basis: possible.length > 0 ? "rule" : "default",
    note: text,
  };
}

/** Rules matching a wrapper or shell invocation as a whole; null when none does. */
function explicit(
  ctx: Context,
  words: readonly ScriptWord[],
  note: string,
): ExecCommandVerdict | null {
  const hits = ctx.rules.filter((r) => matchWords(r.pattern, words) !== "no");
  if (hits.length === 0) return null;
  return {
    argv: display(words),
    decision: strictest(hits.map((r) => r.rule.decision)),
    matched: hits.map((r) => toMatch(r.rule)),
    basis: "wrapper",
    note,
  };
}

/**
 * An opaque command: rules matching the whole argv decide it, together with
 * every rule whose program name appears as a word inside; with no rule for
 * the whole argv, the strictest decision of the table (rules and default)
 * applies, because the script could run anything. `tokens` are the words
 * that may name a program run inside (by default, those of its script).
 */
function opaque(
  ctx: Context,
  words: readonly ScriptWord[],
  reason: string,
  tokens: readonly string[] = scriptTokens(words),
): ExecCommandVerdict {
  const whole = ctx.rules.filter((r) => matchWords(r.pattern, words) !== "no");
  const inside = ctx.rules.filter((r) =>
    !whole.includes(r) && tokens.some((t) => matchesProgram(r.pattern, t))
  );
  let decision: ExecDecision;
  let matched: CompiledRule[];
  let note: string;
  if (whole.length > 0) {
    matched = [...whole, ...inside];
    decision = strictest(matched.map((r) => r.rule.decision));
    note = `Cannot decide its parts (${reason}): decided as one command by the rules for it` +
      (inside.length > 0 ? " and by every rule for a program named inside it" : "");
  } else {
    decision = strictest([ctx.fallback, ...ctx.rules.map((r) => r.rule.decision)]);
    const setters = ctx.rules.filter((r) => r.rule.decision === decision && !inside.includes(r));
    matched = [...inside, ...setters];
    note = `Cannot decide its parts (${reason}) and no rule matches it as a whole, ` +
      `so it gets the strictest decision in the table ("${decision}")`;
  }
  return {
    argv: display(words),
    decision,
    matched: matched.map((r) => toMatch(r.rule)),
    basis: "opaque",
    note,
  };
}

/** Every word-like token of an opaque command, and the basename of each path. */
function scriptTokens(words: readonly ScriptWord[]): string[] {
  const tokens = new Set<string>();
  for (const w of words) {
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
    const denying = c.matched.filter((m) => m.decision === "deny");
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

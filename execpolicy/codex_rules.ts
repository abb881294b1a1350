/**
 * Codex execpolicy `.rules` files: the Starlark call subset Codex's own
 * engine reads, and nothing else. A file is a sequence of calls
 *
 * ```starlark
 * prefix_rule(
 *     pattern = ["git", ["push", "fetch"]],  # tokens; a list is alternatives
 *     decision = "forbidden",                 # allow (default) | prompt | forbidden
 *     justification = "Use the mirror",
 *     match = [["git", "push"], "git fetch origin"],
 *     not_match = ["git status"],
 * )
 * host_executable(name = "git", paths = ["/usr/bin/git"])
 * ```
 *
 * with keyword arguments, string literals (single or double quotes, the
 * usual escapes), lists, `#` comments and trailing commas. Anything else
 * (another function, a variable, a positional argument, a triple-quoted
 * string, an unknown keyword) is an error naming the file and line.
 *
 * A `prefix_rule` becomes one execpolicy rule per alternative: its tokens as
 * literal words followed by `*` (a prefix matches any further words).
 * Decisions: `forbidden` -> `deny`; `allow` -> the profile's posture
 * (`allow-network` when the network is enabled, else `allow`); `prompt` ->
 * `deny`, marked `prompt`: `sandbox run --ask` asks on the terminal and
 * runs the command when approved; with no terminal (or without `--ask`) it
 * stays denied.
 * `host_executable(name, paths)`: a rule for `name` matches a program given
 * as a path only at one of `paths` (a bare name still matches).
 *
 * @module
 */
import type { ExecDecision, ExecRule } from "./types.ts";
import { shellJoin, shellSplit } from "./shell_split.ts";
import { compilePattern, matchArgv } from "./match.ts";

/** One problem in a rules file, with its line. */
export interface RulesProblem {
  /** 1-based line. */
  readonly line: number;
  /** What was wrong and what would be right. */
  readonly message: string;
}

/** Thrown by {@linkcode parseCodexRules} with every problem found. */
export class RulesFileError extends Error {
  /** The problems, in file order. */
  readonly problems: readonly RulesProblem[];
  constructor(file: string, problems: readonly RulesProblem[]) {
    super(problems.map((p) => `${file}:${p.line}: ${p.message}`).join("\n"));
    this.name = "RulesFileError";
    this.problems = problems;
  }
}

/** A `prefix_rule` as written. */
export interface CodexPrefixRule {
  readonly line: number;
  /** Each position: one token or alternatives. */
  readonly pattern: readonly (readonly string[])[];
  readonly decision: "allow" | "prompt" | "forbidden";
  readonly justification: string | null;
  readonly match: readonly string[];
  readonly notMatch: readonly string[];
}

/** A `host_executable` as written. */
export interface CodexHostExecutable {
  readonly line: number;
  readonly name: string;
  readonly paths: readonly string[];
}

/** What a rules file holds. */
export interface CodexRules {
  readonly prefixRules: readonly CodexPrefixRule[];
  readonly hostExecutables: readonly CodexHostExecutable[];
}

type Value = { kind: "string"; value: string; line: number } | {
  kind: "list";
  items: Value[];
  line: number;
};

interface Token {
  readonly kind: "ident" | "string" | "punct";
  readonly text: string;
  readonly line: number;
}

class Fail extends Error {
  constructor(readonly line: number, message: string) {
    super(message);
  }
}

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\n") {
      line++;
      i++;
    } else if (c === " " || c === "\t" || c === "\r") {
      i++;
    } else if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if ("()[],=".includes(c)) {
      out.push({ kind: "punct", text: c, line });
      i++;
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i;
      while (j < text.length && /[A-Za-z0-9_]/.test(text[j])) j++;
      out.push({ kind: "ident", text: text.slice(i, j), line });
      i = j;
    } else if (c === '"' || c === "'") {
      if (text.startsWith(c.repeat(3), i)) {
        throw new Fail(line, "Triple-quoted strings are not supported: write one-line strings");
      }
      let j = i + 1;
      let value = "";
      for (;;) {
        if (j >= text.length || text[j] === "\n") throw new Fail(line, "Unclosed string");
        const d = text[j];
        if (d === c) break;
        if (d === "\\") {
          const e = text[j + 1];
          const map: Record<string, string> = {
            n: "\n",
            t: "\t",
            r: "\r",
            "\\": "\\",
            '"': '"',
            "'": "'",
          };
          if (e === undefined || !(e in map)) {
            throw new Fail(line, `Unknown escape "\\${e ?? ""}" in a string`);
          }
          value += map[e];
          j += 2;
          continue;
        }
        value += d;
        j++;
      }
      out.push({ kind: "string", text: value, line });
      i = j + 1;
    } else {
      throw new Fail(
        line,
        `Unexpected "${c}": a rules file holds only prefix_rule(...) and host_executable(...) calls`,
      );
    }
  }
  return out;
}

/**
 * Parses a rules file strictly. Throws {@linkcode RulesFileError} listing
 * every problem with its line (parsing stops at the first syntax error;
 * argument problems are all reported).
 *
 * @example
 * ```ts
 * const rules = parseCodexRules('prefix_rule(pattern = ["git", "push"], decision = "forbidden")', "a.rules");
 * rules.prefixRules[0].pattern; // [["git"], ["push"]]
 * ```
 */
export function parseCodexRules(text: string, file: string): CodexRules {
  const problems: RulesProblem[] = [];
  const prefixRules: CodexPrefixRule[] = [];
  const hostExecutables: CodexHostExecutable[] = [];
  let tokens: Token[];
  try {
    tokens = tokenize(text);
  } catch (error) {
    if (error instanceof Fail) {
      throw new RulesFileError(file, [{ line: error.line, message: error.message }]);
    }
    throw error;
  }
  let i = 0;
  const peek = () => tokens[i];
  const lastLine = () => tokens[tokens.length - 1]?.line ?? 1;
  const expect = (text: string): Token => {
    const t = tokens[i];
    if (t === undefined || t.kind !== "punct" || t.text !== text) {
      throw new Fail(t?.line ?? lastLine(), `Expected "${text}", found ${describe(t)}`);
    }
    i++;
    return t;
  };
  const value = (): Value => {
    const t = tokens[i];
    if (t === undefined) throw new Fail(lastLine(), "Expected a value, found the end of the file");
    if (t.kind === "string") {
      i++;
      return { kind: "string", value: t.text, line: t.line };
    }
    if (t.kind === "punct" && t.text === "[") {
      i++;
      const items: Value[] = [];
      while (!(peek()?.kind === "punct" && peek()?.text === "]")) {
        items.push(value());
        if (peek()?.kind === "punct" && peek()?.text === ",") i++;
        else break;
      }
      expect("]");
      return { kind: "list", items, line: t.line };
    }
    throw new Fail(t.line, `Expected a string or a list, found ${describe(t)}`);
  };
  try {
    while (i < tokens.length) {
      const head = tokens[i];
      if (head.kind !== "ident" || !["prefix_rule", "host_executable"].includes(head.text)) {
        throw new Fail(
          head.line,
          `Expected prefix_rule(...) or host_executable(...), found ${describe(head)}`,
        );
      }
      i++;
      expect("(");
      const args = new Map<string, Value>();
      while (!(peek()?.kind === "punct" && peek()?.text === ")")) {
        const name = tokens[i];
        if (name === undefined || name.kind !== "ident") {
          throw new Fail(
            name?.line ?? lastLine(),
            `Expected a keyword argument (name = value), found ${describe(name)}`,
          );
        }
        i++;
        expect("=");
        if (args.has(name.text)) {
          throw new Fail(name.line, `The argument "${name.text}" is given twice`);
        }
        args.set(name.text, value());
        if (peek()?.kind === "punct" && peek()?.text === ",") i++;
        else break;
      }
      expect(")");
      if (head.text === "prefix_rule") {
        const rule = prefixRule(head.line, args, problems);
        if (rule !== null) prefixRules.push(rule);
      } else {
        const host = hostExecutable(head.line, args, problems);
        if (host !== null) hostExecutables.push(host);
      }
    }
  } catch (error) {
    if (error instanceof Fail) problems.push({ line: error.line, message: error.message });
    else throw error;
  }
  if (problems.length > 0) throw new RulesFileError(file, problems);
  return { prefixRules, hostExecutables };
}

function describe(t: Token | undefined): string {
  if (t === undefined) return "the end of the file";
  return t.kind === "string" ? `the string "${t.text}"` : `"${t.text}"`;
}

function knownArgs(
  line: number,
  call: string,
  args: Map<string, Value>,
  known: readonly string[],
  problems: RulesProblem[],
): boolean {
  let ok = true;
  for (const name of args.keys()) {
    if (!known.includes(name)) {
      problems.push({
        line: args.get(name)!.line,
        message: `Unknown argument "${name}" of ${call}: expected ${
          known.map((k) => `"${k}"`).join(", ")
        }`,
      });
      ok = false;
    }
  }
  return ok && line > 0;
}

function str(v: Value | undefined, what: string, problems: RulesProblem[]): string | null {
  if (v === undefined) return null;
  if (v.kind === "string") return v.value;
  problems.push({ line: v.line, message: `Expected a string for ${what}, found a list` });
  return null;
}

/** An example: a string, or a list of token strings (joined as a shell line). */
function examples(v: Value | undefined, what: string, problems: RulesProblem[]): string[] {
  if (v === undefined) return [];
  if (v.kind !== "list") {
    problems.push({ line: v.line, message: `Expected a list for ${what}, found a string` });
    return [];
  }
  const out: string[] = [];
  for (const item of v.items) {
    if (item.kind === "string") out.push(item.value);
    else if (item.items.every((t) => t.kind === "string")) {
      out.push(shellJoin(item.items.map((t) => (t as { value: string }).value)));
    } else {
      problems.push({ line: item.line, message: `An example in ${what} must hold strings only` });
    }
  }
  return out;
}

function prefixRule(
  line: number,
  args: Map<string, Value>,
  problems: RulesProblem[],
): CodexPrefixRule | null {
  const before = problems.length;
  knownArgs(line, "prefix_rule", args, [
    "pattern",
    "decision",
    "justification",
    "match",
    "not_match",
  ], problems);
  const p = args.get("pattern");
  const pattern: string[][] = [];
  if (p === undefined) {
    problems.push({ line, message: 'prefix_rule needs pattern = ["program", ...]' });
  } else if (p.kind !== "list" || p.items.length === 0) {
    problems.push({ line: p.line, message: "pattern must be a non-empty list of tokens" });
  } else {
    for (const item of p.items) {
      if (item.kind === "string") pattern.push([item.value]);
      else if (item.items.length > 0 && item.items.every((t) => t.kind === "string")) {
        pattern.push(item.items.map((t) => (t as { value: string }).value));
      } else {
        problems.push({
          line: item.line,
          message: "A pattern position is a token or a non-empty list of alternative tokens",
        });
      }
    }
  }
  const decisionText = str(args.get("decision"), "decision", problems) ?? "allow";
  if (!["allow", "prompt", "forbidden"].includes(decisionText)) {
    problems.push({
      line: args.get("decision")?.line ?? line,
      message: `Unknown decision "${decisionText}": expected "allow", "prompt" or "forbidden"`,
    });
  }
  const justification = str(args.get("justification"), "justification", problems);
  if (justification !== null && justification.trim() === "") {
    problems.push({
      line: args.get("justification")!.line,
      message: "justification cannot be empty: say why the rule exists, or leave it out",
    });
  }
  const match = examples(args.get("match"), "match", problems);
  const notMatch = examples(args.get("not_match"), "not_match", problems);
  if (problems.length > before) return null;
  return {
    line,
    pattern,
    decision: decisionText as CodexPrefixRule["decision"],
    justification,
    match,
    notMatch,
  };
}

function hostExecutable(
  line: number,
  args: Map<string, Value>,
  problems: RulesProblem[],
): CodexHostExecutable | null {
  const before = problems.length;
  knownArgs(line, "host_executable", args, ["name", "paths"], problems);
  const name = str(args.get("name"), "name", problems);
  if (name === null && args.get("name") === undefined) {
    problems.push({ line, message: 'host_executable needs name = "program"' });
  } else if (name !== null && (name === "" || name.includes("/"))) {
    problems.push({ line, message: `host_executable name "${name}" must be a bare program name` });
  }
  const pathsValue = args.get("paths");
  const paths: string[] = [];
  if (pathsValue === undefined || pathsValue.kind !== "list") {
    problems.push({ line, message: 'host_executable needs paths = ["/absolute/path", ...]' });
  } else {
    for (const item of pathsValue.items) {
      if (item.kind !== "string" || !(item.value.startsWith("/") || item.value.startsWith("~/"))) {
        problems.push({
          line: item.line,
          message: "Each host_executable path must be absolute or start with ~/",
        });
      } else paths.push(item.value);
    }
  }
  if (problems.length > before || name === null) return null;
  return { line, name, paths };
}

const MAX_ALTERNATIVES = 256;

/** Options for {@linkcode codexRulesToExecRules}. */
export interface CodexRulesOptions {
  /** The rules file (for sources: `rules:FILE:LINE`). */
  readonly file: string;
  /** Whether the profile's network is enabled (`allow` means the profile's posture). */
  readonly networkEnabled: boolean;
}

/**
 * The execpolicy rules a parsed rules file stands for (see the module doc).
 *
 * @example
 * ```ts
 * codexRulesToExecRules(parseCodexRules(text, f), { file: f, networkEnabled: true });
 * ```
 */
export function codexRulesToExecRules(rules: CodexRules, options: CodexRulesOptions): ExecRule[] {
  const out: ExecRule[] = [];
  const posture: ExecDecision = options.networkEnabled ? "allow-network" : "allow";
  for (const r of rules.prefixRules) {
    let combos: string[][] = [[]];
    for (const alternatives of r.pattern) {
      combos = combos.flatMap((c) => alternatives.map((a) => [...c, a]));
      if (combos.length > MAX_ALTERNATIVES) {
        throw new RulesFileError(options.file, [{
          line: r.line,
          message: `The pattern's alternatives make more than ${MAX_ALTERNATIVES} rules: split it`,
        }]);
      }
    }
    const decision: ExecDecision = r.decision === "forbidden"
      ? "deny"
      : r.decision === "prompt"
      ? "deny"
      : posture;
    const justification = r.decision === "prompt"
      ? `The rules ask before this command ("prompt"): run with --ask to approve it on the terminal` +
        (r.justification === null ? "" : `; ${r.justification}`)
      : r.justification;
    // Quoted: a Codex token is literal, never a glob.
    const patterns = combos.map((tokens) =>
      `${tokens.map((t) => `'${t.replaceAll("'", `'\\''`)}'`).join(" ")} *`
    );
    // A match example must match one of the alternatives (not_match: none of them, checked
    // per rule at load like any execpolicy example).
    for (const example of r.match) {
      let argv: string[];
      try {
        argv = shellSplit(example).map((w) => w.text);
      } catch {
        argv = [];
      }
      if (!patterns.some((p) => matchArgv(compilePattern(p), argv))) {
        throw new RulesFileError(options.file, [{
          line: r.line,
          message:
            `The rule does not match its example "${example}": fix the pattern or the example`,
        }]);
      }
    }
    for (const [k, pattern] of patterns.entries()) {
      const host = rules.hostExecutables.filter((h) => h.name === combos[k][0]);
      out.push({
        pattern,
        decision,
        justification,
        match: [],
        notMatch: r.notMatch,
        source: `rules:${options.file}:${r.line}`,
        ...(r.decision === "prompt" ? { prompt: true } : {}),
        ...(host.length > 0 ? { programPaths: host.flatMap((h) => h.paths) } : {}),
      });
    }
  }
  return out;
}

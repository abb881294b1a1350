/**
 * Fuzz targets for execpolicy, run in memory:
 *
 * - `shell_split`: shellJoin then shellSplit of any word list gives the
 *   same words back; shellSplit of any text returns words or throws
 *   ShellSplitError, nothing else; compilePattern compiles or throws
 *   PatternError; matchArgv never throws.
 * - `exec_decide`: decideCommand on generated argv and `sh -c` scripts
 *   never throws, answers one of the three decisions, and wrapping a
 *   command in `sh -c '<the same words>'` never makes its decision more
 *   permissive (a script must not be a way around a rule), except that an
 *   opaque script naming a program with an allow-network rule gets network.
 *
 * @module
 */
import fc from "fast-check";
import { decideCommand } from "../../execpolicy/decide.ts";
import { compilePattern, matchArgv, PatternError } from "../../execpolicy/match.ts";
import { parseScript } from "../../execpolicy/script.ts";
import { shellJoin, shellSplit, ShellSplitError } from "../../execpolicy/shell_split.ts";
import type { ExecDecision, ExecPolicyConfig, ExecRule } from "../../profiles/types.ts";
import {
  check,
  type FuzzReport,
  type FuzzRunOptions,
  type FuzzTarget,
  onlyRefusals,
  runSync,
} from "./harness.ts";

const SHELL_CHARS = " \t\n'\"\\$`*?[]{}()|&;<>#~!=-_./aZ09é".split("");

const shellText = fc.oneof(
  fc.string({ unit: fc.constantFrom(...SHELL_CHARS), maxLength: 40 }),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 20 }),
);

const word = fc.oneof(
  fc.string({ unit: fc.constantFrom(...SHELL_CHARS), maxLength: 8 }),
  fc.string({ unit: "binary", maxLength: 6 }),
  fc.constantFrom("git", "push", "curl", "-c", "sh", "env", "--", "*", "", "a b", "it's"),
);

type SplitInput = { words: string[]; text: string; pattern: string; argv: string[] };

const splitInput: fc.Arbitrary<SplitInput> = fc.record({
  words: fc.array(word, { maxLength: 6 }),
  text: shellText,
  pattern: fc.oneof(
    shellText,
    fc.array(
      fc.constantFrom("git", "push", "*", "a*b*c*d*e", "[a-z]", "[z-a]", "?", "\\*", "'x y'"),
      {
        minLength: 1,
        maxLength: 5,
      },
    ).map((w) => w.join(" ")),
  ),
  argv: fc.array(
    fc.oneof(word, fc.constantFrom("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab")),
    { maxLength: 6 },
  ),
});

function checkSplit({ words, text, pattern, argv }: SplitInput): void {
  // The join/split round trip; words containing a lone surrogate cannot be joined meaningfully
  // in a UTF-16 -> code point split, so they are skipped.
  if (words.every((w) => w.isWellFormed())) {
    const back = shellSplit(shellJoin(words)).map((w) => w.text);
    check(
      JSON.stringify(back) === JSON.stringify(words),
      `split(join(${JSON.stringify(words)})) gave ${JSON.stringify(back)}`,
    );
  }
  try {
    const split = shellSplit(text);
    for (const w of split) {
      check(typeof w.text === "string" && typeof w.glob === "string", "bad word");
    }
  } catch (error) {
    onlyRefusals(error, [ShellSplitError], "shellSplit");
  }
  let compiled;
  try {
    compiled = compilePattern(pattern);
  } catch (error) {
    onlyRefusals(error, [PatternError], "compilePattern");
    return;
  }
  matchArgv(compiled, argv);
}

/** `shell_split`. */
export const shellSplitTarget: FuzzTarget = {
  name: "shell_split",
  description:
    "shellSplit(shellJoin(words)) round-trips; split/compile refuse cleanly; match never throws",
  kind: "pure",
  run(options: FuzzRunOptions): Promise<FuzzReport> {
    return Promise.resolve(runSync("shell_split", splitInput, checkSplit, options));
  },
};

const RANK: Readonly<Record<ExecDecision, number>> = { "allow-network": 0, allow: 1, deny: 2 };
const DECISIONS: readonly ExecDecision[] = ["allow", "deny", "allow-network"];

const rule = fc.record({
  pattern: fc.constantFrom(
    "curl *",
    "git push *",
    "git *",
    "npm ci",
    "rm -rf *",
    "sh *",
    "bash -c *",
    "env *",
    "*",
    "wget",
    "python3 -c *",
    "c?rl *",
  ),
  decision: fc.constantFrom(...DECISIONS),
}).map((r): ExecRule => ({
  ...r,
  justification: null,
  match: [],
  notMatch: [],
  source: "fuzz",
}));

const policy: fc.Arbitrary<ExecPolicyConfig> = fc.record({
  default: fc.constantFrom(...DECISIONS),
  rules: fc.array(rule, { maxLength: 5 }),
});

const command = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom("curl", "git", "push", "npm", "ci", "rm", "-rf", "/") },
    {
      weight: 2,
      arbitrary: fc.constantFrom("env", "A=1", "nice", "-n", "5", "timeout", "10", "--"),
    },
    { weight: 1, arbitrary: fc.constantFrom("/usr/bin/curl", "./curl", "sh", "-c", "bash", "x y") },
    { weight: 1, arbitrary: word },
  ),
  { minLength: 1, maxLength: 6 },
);

const script = fc.oneof(
  command.map((words) => shellJoin(words)),
  fc.array(command.map((w) => shellJoin(w)), { minLength: 1, maxLength: 3 }).chain((parts) =>
    fc.constantFrom(" && ", " || ", "; ", " | ", "\n", " & ").map((sep) => parts.join(sep))
  ),
  shellText,
  fc.constantFrom(
    "curl $(cat u)",
    "eval curl x",
    'c"u"rl x',
    "\\curl x",
    "cu\\\nrl x",
    "$CMD x",
    "{ curl x; }",
    "(curl x)",
    "curl x #comment",
    "cat <<EOF\n$(curl x)\nEOF",
    "A=1 curl x",
    "exec curl x",
    "command curl x",
  ),
);

type DecideInput = { policy: ExecPolicyConfig; argv: string[]; script: string; shell: string };

const decideInput: fc.Arbitrary<DecideInput> = fc.record({
  policy,
  argv: command,
  script,
  shell: fc.constantFrom("sh", "bash", "/bin/sh", "dash", "zsh"),
});

function checkDecide({ policy, argv, script, shell }: DecideInput): void {
  for (const networkEnabled of [true, false]) {
    const direct = decideCommand(policy, argv, { networkEnabled });
    check(DECISIONS.includes(direct.decision), `decision ${direct.decision}`);
    const wrapper = [shell, "-c", shellJoin(argv)];
    const wrapped = decideCommand(policy, wrapper, { networkEnabled });
    // A rule written for the shell invocation itself ("bash -c *") is the author's explicit
    // word about such scripts; the property is about scripts no rule names as a whole.
    const named = policy.rules.some((r) => matchArgv(compilePattern(r.pattern), wrapper));
    // An opaque script that names a program with an allow-network rule gets network by design
    // (docs/execpolicy.md); it never escapes a deny.
    const networkByName = wrapped.decision === "allow-network" &&
      wrapped.commands.some((c) =>
        c.basis === "opaque" && c.decidedBy.some((m) => m.decision === "allow-network")
      );
    check(
      named || networkByName || RANK[wrapped.decision] >= RANK[direct.decision],
      `${
        JSON.stringify(argv)
      } is "${direct.decision}" but as a ${shell} -c script "${wrapped.decision}"`,
    );
    const scripted = decideCommand(policy, [shell, "-c", script], { networkEnabled });
    check(DECISIONS.includes(scripted.decision), `decision ${scripted.decision}`);
  }
  const parsed = parseScript(script);
  check(parsed.kind === "split" || parsed.kind === "opaque", "parseScript answered neither");
}

/** `exec_decide`. */
export const execDecideTarget: FuzzTarget = {
  name: "exec_decide",
  description: "decideCommand never throws; sh -c '<argv>' is never more permissive than argv",
  kind: "pure",
  run(options: FuzzRunOptions): Promise<FuzzReport> {
    return Promise.resolve(runSync("exec_decide", decideInput, checkDecide, options));
  },
};

import assert from "node:assert/strict";
import { codexRulesToExecRules, parseCodexRules, RulesFileError } from "./codex_rules.ts";
import { checkExecPolicyExamples } from "./check.ts";
import { decideCommand } from "./decide.ts";
import type { ExecDecision } from "./types.ts";

const FILE = new URL("../testdata/execpolicy/codex_rules/team.rules", import.meta.url);
const TEXT = Deno.readTextFileSync(FILE);

function problems(text: string): string[] {
  try {
    parseCodexRules(text, "x.rules");
  } catch (error) {
    if (error instanceof RulesFileError) {
      return error.problems.map((p) => `${p.line}: ${p.message}`);
    }
    throw error;
  }
  return [];
}

Deno.test("parseCodexRules() reads prefix_rule and host_executable as Codex writes them", () => {
  const rules = parseCodexRules(TEXT, "team.rules");
  assert.equal(rules.prefixRules.length, 6);
  assert.deepEqual(rules.prefixRules[0].pattern, [["git"], ["reset"], ["--hard"]]);
  assert.equal(rules.prefixRules[0].decision, "forbidden");
  assert.equal(rules.prefixRules[0].justification, "destructive operation");
  assert.deepEqual(rules.prefixRules[0].notMatch, ["git reset --keep", "git reset --merge"]);
  assert.equal(rules.prefixRules[1].decision, "allow"); // the default
  assert.deepEqual(rules.prefixRules[3].pattern, [["bash", "sh"], ["-c", "-l"]]);
  assert.equal(rules.prefixRules[5].line, 39);
  assert.deepEqual(rules.hostExecutables, [{
    line: 41,
    name: "git",
    paths: ["/opt/homebrew/bin/git", "/usr/bin/git"],
  }]);
});

Deno.test("codexRulesToExecRules() decides as the rules file says, by execpolicy precedence", () => {
  const rules = codexRulesToExecRules(parseCodexRules(TEXT, "team.rules"), {
    file: "/t/team.rules",
    networkEnabled: true,
  });
  const policy = { default: "allow" as const, rules };
  // The examples hold as execpolicy examples too.
  assert.deepEqual(checkExecPolicyExamples(policy), []);
  const cases: [string[], ExecDecision][] = [
    [["git", "reset", "--hard", "HEAD~1"], "deny"], // forbidden
    [["git", "reset", "--keep"], "allow"], // no rule: the table's default
    [["ls", "-la"], "allow-network"], // allow: the profile's posture (network on)
    [["cp", "a", "b"], "deny"], // prompt, and no one to ask
    [["sh", "-l", "x"], "allow-network"], // first-token alternatives
    [["npm", "install", "--no-save", "leftpad"], "allow-network"], // tail alternatives
    [["npm", "install", "leftpad"], "allow"],
    [["rm", "-rf", "/"], "deny"],
    [["/usr/bin/rm", "x"], "deny"],
    [["ls*"], "allow"], // a token is literal, never a glob
    // host_executable(name = "git", paths = [...]): a path matches git's rules only when listed.
    [["/usr/bin/git", "reset", "--hard"], "deny"],
    [["/tmp/evil/git", "reset", "--hard"], "allow"],
    [["git", "reset", "--hard"], "deny"],
  ];
  for (const [argv, expected] of cases) {
    const verdict = decideCommand(policy, argv, { networkEnabled: true, env: {}, cwd: null });
    assert.equal(verdict.decision, expected, argv.join(" "));
  }
  const rm = decideCommand(policy, ["rm", "x"], { networkEnabled: true, env: {}, cwd: null });
  assert.equal(rm.commands[0].decidedBy[0].source, "rules:/t/team.rules:39");
  assert.equal(rm.commands[0].decidedBy[0].justification, "Use trash instead of rm.");
  const off = codexRulesToExecRules(parseCodexRules(TEXT, "t"), {
    file: "t",
    networkEnabled: false,
  });
  assert.equal(off.find((r) => r.pattern === "'ls' *")?.decision, "allow");
});

Deno.test("parseCodexRules() refuses anything outside the call subset, with the line", () => {
  const cases: [string, RegExp][] = [
    [
      'prefix_rule(pattern = ["ls"])\nload("x.star", "y")',
      /^2: Expected prefix_rule\(...\) or host_executable/,
    ],
    ['x = ["ls"]\nprefix_rule(pattern = x)', /^1: Expected prefix_rule/],
    ['prefix_rule(["ls"])', /^1: Expected a keyword argument/],
    ['prefix_rule(pattern = ["ls"], decision = "deny")', /^1: Unknown decision "deny"/],
    ['prefix_rule(\n  pattern = ["ls"],\n  colour = "x",\n)', /^3: Unknown argument "colour"/],
    ['prefix_rule(decision = "allow")', /^1: prefix_rule needs pattern/],
    ["prefix_rule(pattern = [])", /^1: pattern must be a non-empty list/],
    ['prefix_rule(pattern = ["ls"], justification = "  ")', /^1: justification cannot be empty/],
    [
      'prefix_rule(pattern = ["ls"], pattern = ["cat"])',
      /^1: The argument "pattern" is given twice/,
    ],
    ['prefix_rule(pattern = ["ls"]', /^1: Expected "\)"/],
    ['prefix_rule(pattern = ["ls\n"])', /^1: Unclosed string/],
    ['prefix_rule(pattern = ["""ls"""])', /^1: Triple-quoted strings/],
    [
      'network_rule(host = "x.example", protocol = "https", decision = "allow")',
      /^1: Expected prefix_rule/,
    ],
    [
      'host_executable(name = "git", paths = ["bin/git"])',
      /^1: Each host_executable path must be absolute/,
    ],
    [
      'host_executable(name = "/usr/bin/git", paths = [])',
      /^1: host_executable name .* bare program name/,
    ],
    ['prefix_rule(pattern = ["ls"], match = [1])', /^1: Unexpected "1"/],
  ];
  for (const [text, expected] of cases) {
    const got = problems(text);
    assert.ok(got.length > 0, text);
    assert.match(got[0], expected, text);
  }
  // The example check: a match example no alternative matches is an error with the rule's line.
  assert.throws(
    () =>
      codexRulesToExecRules(
        parseCodexRules('\nprefix_rule(pattern = ["git", "status"], match = ["git stats"])', "m"),
        { file: "m.rules", networkEnabled: true },
      ),
    (e: unknown) => e instanceof RulesFileError && e.message.startsWith("m.rules:2: "),
  );
});

import assert from "node:assert/strict";
import { checkExecPolicyExamples } from "../execpolicy/mod.ts";
import type { ExecDecision, ExecPolicyConfig, ExecRule } from "../profiles/types.ts";

function rule(pattern: string, extra: Partial<ExecRule> = {}): ExecRule {
  return {
    pattern,
    decision: "deny",
    justification: null,
    match: [],
    notMatch: [],
    source: "user:/home/a/.config/sandbox/config.toml",
    ...extra,
  };
}

function check(...rules: ExecRule[]) {
  return checkExecPolicyExamples({ default: "allow", rules });
}

Deno.test("checkExecPolicyExamples() accepts a table whose examples hold", () => {
  assert.deepEqual(
    check(
      rule("git push *", {
        match: ["git push origin main", "/usr/bin/git push", `git push "a b"`],
        notMatch: ["git status", "git", "gitx push"],
      }),
      rule("npm ci", { decision: "allow-network", match: ["npm ci"], notMatch: ["npm ci --x"] }),
    ),
    [],
  );
});

Deno.test("checkExecPolicyExamples() reports each failing example with file and key path", () => {
  const problems = check(
    rule("git push *", { match: ["git status", "git push x"], notMatch: ["git push --force"] }),
  );
  assert.deepEqual(problems, [
    {
      file: "/home/a/.config/sandbox/config.toml",
      keyPath: 'execpolicy."git push *".match[0]',
      message:
        'The rule "git push *" does not match its example "git status": fix the pattern or the example',
    },
    {
      file: "/home/a/.config/sandbox/config.toml",
      keyPath: 'execpolicy."git push *".not_match[0]',
      message:
        'The rule "git push *" matches "git push --force", which its not_match list says it must not: fix the pattern or the example',
    },
  ]);
});

Deno.test("checkExecPolicyExamples() reports bad tables: unknown decision, empty and unsplittable patterns", () => {
  const cases: [ExecPolicyConfig, string, RegExp][] = [
    [
      { default: "allow", rules: [rule("curl *", { decision: "block" as ExecDecision })] },
      'execpolicy."curl *"',
      /^Unknown decision "block" for rule "curl \*": expected "deny", "allow" or "allow-network"$/,
    ],
    [
      { default: "allow", rules: [rule("")] },
      'execpolicy.""',
      /^Bad rule "": The pattern is empty/,
    ],
    [{ default: "allow", rules: [rule("  ")] }, 'execpolicy."  "', /The pattern is empty/],
    [
      { default: "allow", rules: [rule(`curl "x`)] },
      'execpolicy."curl \\"x"',
      /^Bad rule "curl "x": The pattern cannot be split into words: Unclosed double quote/,
    ],
    [{ default: "allow", rules: [rule("ls [z-a]")] }, 'execpolicy."ls [z-a]"', /backwards/],
    [
      { default: "allow", rules: [rule("curl *", { match: [`curl 'x`] })] },
      'execpolicy."curl *".match[0]',
      /cannot be split into words/,
    ],
    [
      { default: "maybe" as ExecDecision, rules: [rule("curl *")] },
      "execpolicy_default",
      /^Unknown decision "maybe"/,
    ],
  ];
  for (const [policy, keyPath, message] of cases) {
    const problems = checkExecPolicyExamples(policy);
    assert.equal(problems.length, 1, keyPath);
    assert.equal(problems[0].keyPath, keyPath);
    assert.equal(problems[0].file, "/home/a/.config/sandbox/config.toml");
    assert.match(problems[0].message, message);
  }
});

Deno.test("checkExecPolicyExamples() names a flag as the file for rules from flags", () => {
  const problems = check(rule("curl", { source: "flag:--exec-deny", match: ["wget"] }));
  assert.equal(problems[0].file, "--exec-deny");
  assert.equal(problems[0].keyPath, "execpolicy.curl.match[0]");
});

import assert from "node:assert/strict";
import { decideCommand, type ExecVerdict, formatExecDenial, parseScript } from "./mod.ts";
import type { ExecDecision, ExecPolicyConfig, ExecRule } from "./types.ts";

function rule(
  pattern: string,
  decision: ExecDecision,
  justification: string | null = null,
): ExecRule {
  return { pattern, decision, justification, match: [], notMatch: [], source: "user:/etc/sb.toml" };
}

const TABLE: ExecPolicyConfig = {
  default: "allow",
  rules: [
    rule("npm ci", "allow-network"),
    rule("npm test", "allow"),
    rule("git push *", "allow-network"),
    rule("curl *", "deny", "Use the package mirror"),
    rule("wget *", "deny"),
    rule("make *", "allow-network"),
  ],
};

function decide(argv: string[], policy: ExecPolicyConfig | null = TABLE): ExecVerdict {
  return decideCommand(policy, argv, { networkEnabled: true });
}

Deno.test("decideCommand() decides plain commands by the issue's example table", () => {
  const cases: [string[], ExecDecision][] = [
    [["npm", "ci"], "allow-network"],
    [["npm", "test"], "allow"],
    [["git", "push", "origin", "main"], "allow-network"],
    [["git", "status"], "allow"], // default
    [["curl", "-s", "https://x.test"], "deny"],
    [["/usr/bin/curl"], "deny"],
    [["./wget", "x"], "deny"],
    [["ls", "-l"], "allow"],
  ];
  for (const [argv, expected] of cases) {
    assert.equal(decide(argv).decision, expected, argv.join(" "));
  }
});

Deno.test("decideCommand() looks through VAR=value prefixes and transparent wrappers", () => {
  const cases: [string[], ExecDecision][] = [
    [["FOO=1", "BAR=x=y", "curl", "x"], "deny"],
    [["FOO=1", "npm", "ci"], "allow-network"],
    [["env", "curl", "x"], "deny"],
    [["env", "-i", "A=1", "curl"], "deny"],
    [["env", "-u", "HOME", "--", "curl"], "deny"],
    [["env", "-uHOME", "--unset=PATH", "-C", "/tmp", "npm", "ci"], "allow-network"],
    [["/usr/bin/env", "-", "npm", "ci"], "allow-network"],
    [["nice", "curl"], "deny"],
    [["nice", "-n", "10", "curl"], "deny"],
    [["nice", "-n10", "npm", "ci"], "allow-network"],
    [["nice", "-5", "curl"], "deny"],
    [["nice", "--adjustment=3", "curl"], "deny"],
    [["nohup", "curl", "x"], "deny"],
    [["nohup", "--", "npm", "ci"], "allow-network"],
    [["timeout", "5", "curl", "x"], "deny"],
    [["timeout", "-s", "KILL", "-k", "2", "10s", "curl"], "deny"],
    [["timeout", "--signal=TERM", "--preserve-status", "1m", "npm", "ci"], "allow-network"],
    [["stdbuf", "-o0", "curl"], "deny"],
    [["stdbuf", "-o", "L", "-eL", "--input=0", "npm", "ci"], "allow-network"],
    [["command", "curl"], "deny"],
    [["command", "-p", "npm", "ci"], "allow-network"],
    [["exec", "-a", "foo", "curl"], "deny"],
    [["exec", "-cl", "npm", "ci"], "allow-network"],
    [["env", "nice", "-n", "1", "timeout", "5", "nohup", "curl"], "deny"],
    // No command behind the wrapper: the wrapper itself is decided.
    [["command", "-v", "curl"], "allow"],
    [["env"], "allow"],
    [["env", "A=1"], "allow"],
    [["timeout", "5"], "allow"],
  ];
  for (const [argv, expected] of cases) {
    assert.equal(decide(argv).decision, expected, argv.join(" "));
  }
});

Deno.test("decideCommand() reads a wrapper with an unknown option every plausible way", () => {
  const policy: ExecPolicyConfig = {
    default: "allow-network",
    rules: [rule("curl *", "deny"), rule("npm ci", "allow-network"), rule("npm test", "allow")],
  };
  const cases: [string[], ExecDecision][] = [
    [["env", "--frobnicate", "curl", "x"], "deny"],
    [["timeout", "--weird", "5", "curl"], "deny"],
    // Every reading is a part: the ones that run no listed program get the default (network).
    [["nice", "-z", "npm", "test"], "allow-network"],
    [["env", "-S", "curl -s", "x"], "deny"], // env -S splits its argument itself
    [["stdbuf", "-q", "npm", "ci"], "allow-network"],
  ];
  for (const [argv, expected] of cases) {
    const verdict = decideCommand(policy, argv, { networkEnabled: true });
    assert.equal(verdict.decision, expected, argv.join(" "));
  }
  const verdict = decideCommand(policy, ["env", "--frobnicate", "curl"], { networkEnabled: true });
  assert.match(verdict.commands[0].note ?? "", /unknown option "--frobnicate"/);
  assert.deepEqual(verdict.commands[0].argv, ["env", "--frobnicate", "curl"]);
});

Deno.test("decideCommand() lets the most specific matching rule decide", () => {
  const cases: [ExecRule[], string[], ExecDecision][] = [
    // More literal leading words win, in either order.
    [[rule("git *", "allow-network"), rule("git push *", "deny")], ["git", "push"], "deny"],
    [
      [rule("git push *", "allow-network"), rule("git *", "allow")],
      ["git", "push", "o"],
      "allow-network",
    ],
    [
      [rule("git *", "allow"), rule("git push *", "allow-network")],
      ["git", "push"],
      "allow-network",
    ],
    [
      [rule("git push *", "deny"), rule("git *", "allow-network")],
      ["git", "status"],
      "allow-network",
    ],
    [[rule("npm *", "allow-network"), rule("npm test", "allow")], ["npm", "test"], "allow"],
    [[rule("*", "allow-network"), rule("npm test", "allow")], ["npm", "test"], "allow"],
    [[rule("*", "deny"), rule("npm ci", "allow-network")], ["npm", "ci"], "allow-network"],
    [[rule("*", "deny"), rule("npm ci", "allow-network")], ["npm", "test"], "deny"],
    [[rule("npm *", "allow-network"), rule("npm test", "allow")], ["npm", "ci"], "allow-network"],
    // An exact rule beats a trailing `*` of the same words.
    [[rule("npm ci *", "deny"), rule("npm ci", "allow-network")], ["npm", "ci"], "allow-network"],
    [[rule("npm ci *", "deny"), rule("npm ci", "allow-network")], ["npm", "ci", "-q"], "deny"],
    [[rule("curl *", "deny"), rule("curl -fsSL https://m.example/s", "allow-network")], [
      "curl",
      "-fsSL",
      "https://m.example/s",
    ], "allow-network"],
    // A glob inside a word beats a bare wildcard, and loses to a literal word.
    [
      [rule("git *", "allow"), rule("git pu* *", "allow-network")],
      ["git", "pull"],
      "allow-network",
    ],
    [[rule("git push *", "deny"), rule("git pu* *", "allow-network")], ["git", "push"], "deny"],
    [[rule("git v[0-9]* *", "deny"), rule("git v* *", "allow")], ["git", "v1"], "deny"],
    // A middle `*` is one word of any value: more words of it beat fewer, a literal beats it.
    [[rule("git *", "allow"), rule("git * --force", "deny")], ["git", "push", "--force"], "deny"],
    [[rule("git push *", "allow-network"), rule("git * --force", "deny")], [
      "git",
      "push",
      "--force",
    ], "allow-network"],
    // Equal specificity: strictest first (deny > allow > allow-network).
    [[rule("git p?sh *", "allow-network"), rule("git pu?h *", "allow")], ["git", "push"], "allow"],
    [[rule("git push *", "allow-network"), rule("git push *", "deny")], ["git", "push"], "deny"],
  ];
  for (const [rules, argv, expected] of cases) {
    const verdict = decideCommand({ default: "allow", rules }, argv, { networkEnabled: true });
    assert.equal(verdict.decision, expected, `${rules.map((r) => r.pattern)} / ${argv}`);
  }
  const both = decideCommand(
    { default: "allow", rules: [rule("git *", "allow"), rule("git push *", "allow-network")] },
    ["git", "push"],
    { networkEnabled: true },
  );
  assert.deepEqual(both.matched.map((m) => m.pattern), ["git *", "git push *"]);
  assert.deepEqual(both.commands[0].decidedBy.map((m) => m.pattern), ["git push *"]);
  assert.deepEqual(both.commands[0].beat.map((m) => m.pattern), ["git *"]);
});

Deno.test("decideCommand() keeps a managed rule as a floor that a user rule cannot loosen", () => {
  const managed = (pattern: string, decision: ExecDecision): ExecRule => ({
    ...rule(pattern, decision),
    source: "managed:/etc/sandbox/requirements.toml",
  });
  const cases: [ExecRule[], string[], ExecDecision][] = [
    [
      [managed("curl *", "deny"), rule("curl -fsSL x", "allow-network")],
      ["curl", "-fsSL", "x"],
      "deny",
    ],
    [[managed("npm *", "allow"), rule("npm ci", "allow-network")], ["npm", "ci"], "allow"],
    // A user rule may tighten a managed one.
    [[managed("git push *", "allow-network"), rule("git push *", "deny")], ["git", "push"], "deny"],
    // A managed rule that does not match sets no floor.
    [
      [managed("npm *", "allow"), rule("git push *", "allow-network")],
      ["git", "push"],
      "allow-network",
    ],
    // Between managed rules, the most specific decides.
    [
      [managed("curl *", "deny"), managed("curl -fsSL x", "allow-network")],
      ["curl", "-fsSL", "x"],
      "allow-network",
    ],
  ];
  for (const [rules, argv, expected] of cases) {
    const verdict = decideCommand({ default: "allow", rules }, argv, { networkEnabled: true });
    assert.equal(verdict.decision, expected, `${rules.map((r) => r.pattern)} / ${argv}`);
  }
  const floor = decideCommand(
    { default: "allow", rules: [managed("curl *", "deny"), rule("curl -fsSL x", "allow-network")] },
    ["curl", "-fsSL", "x"],
    { networkEnabled: true },
  );
  assert.deepEqual(floor.commands[0].decidedBy.map((m) => m.pattern), ["curl *", "curl -fsSL x"]);
  assert.match(floor.commands[0].note ?? "", /managed rule is a floor/);
});

Deno.test("decideCommand() applies the table default and the no-policy default", () => {
  const cases: [ExecPolicyConfig | null, boolean, ExecDecision, string][] = [
    [{ default: "allow", rules: [] }, true, "allow", "default"],
    [{ default: "deny", rules: [] }, true, "deny", "default"],
    [{ default: "allow-network", rules: [] }, false, "allow-network", "default"],
    [null, true, "allow-network", "no-policy"],
    [null, false, "allow", "no-policy"],
  ];
  for (const [policy, networkEnabled, expected, basis] of cases) {
    const verdict = decideCommand(policy, ["ls"], { networkEnabled });
    assert.equal(verdict.decision, expected);
    assert.equal(verdict.commands[0].basis, basis);
    assert.deepEqual(verdict.matched, []);
  }
});

Deno.test("decideCommand() splits sh -c scripts: any part denied denies, any part with network gives network", () => {
  const cases: [string[], ExecDecision, string[]][] = [
    [["sh", "-c", "npm ci && npm test"], "allow-network", ["npm ci", "npm test"]],
    [["sh", "-c", "npm test && ls"], "allow", ["npm test", "ls"]],
    [["bash", "-c", "npm ci; curl x"], "deny", ["npm ci", "curl x"]],
    [["bash", "-lc", "npm ci || curl x"], "deny", ["npm ci", "curl x"]],
    [["bash", "-ec", "npm ci | wget -"], "deny", ["npm ci", "wget -"]],
    [["dash", "-xc", "npm ci & git push"], "allow-network", ["npm ci", "git push"]],
    [["zsh", "-c", "npm ci\ngit push origin"], "allow-network", ["npm ci", "git push origin"]],
    [["/bin/sh", "-c", "npm ci"], "allow-network", ["npm ci"]],
    [["bash", "--norc", "--noprofile", "-c", "npm ci"], "allow-network", ["npm ci"]],
    [["bash", "-o", "pipefail", "-euc", "npm ci"], "allow-network", ["npm ci"]],
    [["sh", "-c", "--", "npm ci"], "allow-network", ["npm ci"]],
    [["env", "FOO=1", "sh", "-c", "FOO=2 npm ci"], "allow-network", ["npm ci"]],
    [["sh", "-c", "sh -c 'curl x'"], "deny", ["curl x"]],
    [["sh", "-c", "npm ci # && curl x"], "allow-network", ["npm ci"]],
    [["sh", "-c", "npm ci >log 2>&1 </dev/null"], "allow-network", ["npm ci"]],
    [["sh", "-c", "npm ci &>/dev/null; npm test 2>>e"], "allow-network", ["npm ci", "npm test"]],
    [["sh", "-c", "cat <<'EOF'\n$(curl x)\nEOF\nnpm ci"], "deny", []], // substitution anywhere: opaque
    [["sh", "-c", "cat <<'EOF'\ncurl x\nEOF\nnpm ci"], "allow-network", ["cat", "npm ci"]],
    [["sh", "-c", "cu'r'l x"], "deny", ["curl x"]],
    [["sh", "-c", "\\curl x"], "deny", ["curl x"]],
    [["sh", "-c", 'curl "$URL"'], "deny", ['curl "$URL"']],
    [["sh", "-c", ""], "allow", ["sh -c "]],
    [["sh", "script.sh"], "allow", ["sh script.sh"]],
    [["bash"], "allow", ["bash"]],
  ];
  for (const [argv, expected, parts] of cases) {
    const verdict = decide(argv);
    assert.equal(verdict.decision, expected, argv.join(" "));
    if (parts.length > 0) {
      assert.deepEqual(verdict.commands.map((c) => c.argv.join(" ")), parts, argv.join(" "));
    }
  }
});

Deno.test("parseScript() refuses each construct it cannot split safely", () => {
  const cases: [string, RegExp][] = [
    ["echo $(curl x)", /command substitution/],
    ["echo `curl x`", /backquotes/],
    ["diff <(curl a) b", /process substitution/],
    ["tee >(curl a)", /process substitution/],
    ["(curl x)", /subshell/],
    ["f() { curl x; }; f", /subshell, function/],
    ["{ curl x; }", /keyword "\{"/],
    ["cat <<EOF\n$X\nEOF", /here-document/],
    ["eval curl x", /builtin "eval"/],
    ["source ./x.sh", /builtin "source"/],
    [". ./x.sh", /builtin "\."/],
    ["alias c=curl", /builtin "alias"/],
    ["trap 'curl x' EXIT", /builtin "trap"/],
    ["$CMD x", /expansion in the command word/],
    ["${CMD} x", /expansion in the command word/],
    ['"$@"', /expansion in the command word/],
    ["~/bin/curl", /expansion in the command word/],
    ["c*rl x", /expansion in the command word/],
    ["{curl,x}", /expansion in the command word/],
    ["if true; then curl x; fi", /keyword "if"/],
    ["for i in 1; do curl; done", /keyword "for"/],
    ["while true; do curl; done", /keyword "while"/],
    ["case x in x) curl;; esac", /keyword "case"|subshell/],
    ["function f { curl; }", /keyword "function"/],
    ["[[ -f x ]] && curl x", /keyword "\[\["/],
    ["! curl x", /keyword "!"/],
    ["let x=1", /builtin "let"/],
    ["declare -i x=1", /builtin "declare"/],
    ["echo ${x:-$(id)}", /command substitution/],
    ["echo ${x//a/b}", /too complex/],
    ["echo $((1+2))", /command substitution/],
    ["echo $[1+2]", /arithmetic/],
    ["{fd}>x curl", /named file descriptor/],
    ["echo 'unclosed", /unclosed single quote/],
    ['echo "unclosed', /unclosed double quote/],
    ["echo >", /without a target/],
    ["printf -v 'a[1]' x", /array subscript/],
    ["a=(1 2)", /array assignment/],
    ["echo $'\\x63url'", null as unknown as RegExp],
  ];
  for (const [script, reason] of cases) {
    const parsed = parseScript(script);
    if (reason === null) {
      assert.equal(parsed.kind, "split", script); // $'…' as an argument is one unknown word
      continue;
    }
    assert.equal(parsed.kind, "opaque", script);
    assert.match((parsed as { reason: string }).reason, reason, script);
  }
});

Deno.test("decideCommand() decides an opaque script by the programs named inside it, else the default", () => {
  const withShellRule: ExecPolicyConfig = {
    default: "allow",
    rules: [...TABLE.rules, rule("bash -c *", "allow-network")],
  };
  const cases: [ExecPolicyConfig, string[], ExecDecision][] = [
    // Nothing named inside has a rule: the table's default.
    [TABLE, ["sh", "-c", "echo $(date)"], "allow"],
    [{ default: "deny", rules: [rule("npm test", "allow")] }, ["sh", "-c", "x=$(date)"], "deny"],
    [
      { default: "allow-network", rules: [rule("npm test", "allow")] },
      ["sh", "-c", "x=$(date)"],
      "allow-network",
    ],
    // A named denied program denies; a named allow-network program gives network.
    [TABLE, ["sh", "-c", "x=$(curl -s y); echo $x"], "deny"],
    [TABLE, ["sh", "-c", "for p in a b; do git push $p; done"], "allow-network"],
    // Only the program is seen, not its arguments: any npm rule with network counts.
    [TABLE, ["sh", "-c", "for f in *.js; do npm test; done"], "allow-network"],
    [TABLE, ["sh", "-c", "for f in *.js; do wc -l $f; done"], "allow"],
    // A rule for the shell counts with the named programs: deny first, then network.
    [withShellRule, ["bash", "-c", "echo $(date)"], "allow-network"],
    [withShellRule, ["bash", "-c", "eval curl x"], "deny"],
    [withShellRule, ["bash", "-c", "x=$(/usr/bin/wget -q y)"], "deny"],
    // A shell option we do not know makes the script opaque too.
    [withShellRule, ["bash", "--weird", "-c", "ls"], "allow"], // "bash -c *" does not match it
    [TABLE, ["bash", "--weird", "-c", "curl x"], "deny"],
    // Shells of another syntax are never split.
    [TABLE, ["fish", "-c", "npm ci"], "allow-network"],
    [TABLE, ["fish", "-c", "ls"], "allow"],
  ];
  for (const [policy, argv, expected] of cases) {
    const verdict = decideCommand(policy, argv, { networkEnabled: true });
    assert.equal(verdict.decision, expected, argv.join(" "));
    assert.equal(verdict.commands.at(-1)?.basis, "opaque", argv.join(" "));
  }
  const verdict = decide(["bash", "-c", "eval curl x"]);
  assert.ok(verdict.matched.some((m) => m.pattern === "curl *"));
  assert.match(verdict.commands[0].note ?? "", /builtin "eval"/);
});

Deno.test("decideCommand() counts every rule a run-time word could match, and the default", () => {
  const policy: ExecPolicyConfig = {
    default: "deny",
    rules: [
      rule("curl *", "allow-network"),
      rule("npm ci", "allow-network"),
      rule("rm -rf /", "deny"),
    ],
  };
  const cases: [string, ExecDecision][] = [
    ['curl "$URL"', "allow-network"], // curl * matches whatever $URL is
    ["npm ci $FLAGS", "deny"], // may be "npm ci", may be something the default denies
    ["rm $ARGS", "deny"],
    ["npm ci *.txt", "deny"],
  ];
  for (const [script, expected] of cases) {
    const verdict = decideCommand(policy, ["sh", "-c", script], { networkEnabled: true });
    assert.equal(verdict.decision, expected, script);
  }
});

Deno.test("decideCommand() fails closed on a table it cannot compile", () => {
  const verdict = decideCommand(
    { default: "allow", rules: [rule(`curl "x`, "allow")] },
    ["ls"],
    { networkEnabled: true },
  );
  assert.equal(verdict.decision, "deny");
  assert.equal(verdict.commands[0].basis, "error");
});

Deno.test("formatExecDenial() names the command, the rule, its source and justification", () => {
  const text = formatExecDenial(decide(["curl", "-s", "https://x.test"]));
  assert.equal(
    text,
    [
      "Command denied by execpolicy: curl -s https://x.test",
      '  denied by rule "curl *" from user:/etc/sb.toml: Use the package mirror',
      'Run "sandbox policy check -- curl -s https://x.test" to see every rule that applies',
    ].join("\n"),
  );
  const script = formatExecDenial(decide(["sh", "-c", "npm ci && wget x"]));
  assert.match(script, /^Command denied by execpolicy: sh -c 'npm ci && wget x'$/m);
  assert.match(script, /^ {2}wget x: denied by rule "wget \*" from user:\/etc\/sb.toml$/m);
  assert.doesNotMatch(script, /npm ci:/);
  const byDefault = formatExecDenial(
    decideCommand({ default: "deny", rules: [] }, ["ls"], { networkEnabled: true }),
  );
  assert.match(byDefault, /no rule allows it and the table's default is "deny"/);
  const opaque = formatExecDenial(decide(["sh", "-c", "eval curl"]));
  assert.match(opaque, /builtin "eval"/);
  assert.match(opaque, /denied by rule "curl \*"/);
});

import assert from "node:assert/strict";
import { compileGlob } from "../execpolicy/glob.ts";
import { compilePattern, matchArgv, matchWords, PatternError } from "../execpolicy/match.ts";
import type { ScriptWord } from "../execpolicy/script.ts";
import { shellJoin, shellSplit, ShellSplitError } from "../execpolicy/shell_split.ts";

Deno.test("shellSplit() splits words with quotes and escapes", () => {
  const cases: [string, string[]][] = [
    ["git push *", ["git", "push", "*"]],
    ["  a\t b\n c ", ["a", "b", "c"]],
    [`git commit -m "a b"`, ["git", "commit", "-m", "a b"]],
    [`echo 'it''s'`, ["echo", "its"]],
    [`echo "a\\"b" 'c\\d'`, ["echo", 'a"b', "c\\d"]],
    [`echo a\\ b`, ["echo", "a b"]],
    [`echo "" ''`, ["echo", "", ""]],
    [`echo "$HOME" a|b`, ["echo", "$HOME", "a|b"]],
    ["a \\\n b", ["a", "b"]],
  ];
  for (const [input, expected] of cases) {
    assert.deepEqual(shellSplit(input).map((w) => w.text), expected, input);
  }
});

Deno.test("shellSplit() refuses unclosed quotes and a trailing backslash", () => {
  for (const input of [`echo "abc`, `echo 'abc`, `echo abc\\`]) {
    assert.throws(() => shellSplit(input), ShellSplitError, input);
  }
});

Deno.test("shellSplit() escapes quoted glob characters in the glob form", () => {
  assert.deepEqual(shellSplit(`rm '*' "?" \\[x] *`).map((w) => w.glob), [
    "rm",
    "\\*",
    "\\?",
    "\\[x]",
    "*",
  ]);
});

Deno.test("shellJoin() quotes only what needs it and round-trips through shellSplit()", () => {
  const argv = ["curl", "-s", "a b", "it's", "", "x=$y"];
  assert.equal(shellJoin(["curl", "-s", "https://a.test/x"]), "curl -s https://a.test/x");
  assert.deepEqual(shellSplit(shellJoin(argv)).map((w) => w.text), argv);
});

Deno.test("compileGlob() matches *, ?, sets, ranges and negation", () => {
  const cases: [string, string, boolean][] = [
    ["*", "", true],
    ["*", "anything at all", true],
    ["v*", "v1.2", true],
    ["v*", "x1", false],
    ["?", "a", true],
    ["?", "ab", false],
    ["?", "", false],
    ["[abc]", "b", true],
    ["[abc]", "d", false],
    ["[a-c]x", "bx", true],
    ["[a-c]x", "dx", false],
    ["[!a-c]", "d", true],
    ["[!a-c]", "a", false],
    ["[^0-9]", "x", true],
    ["[^0-9]", "5", false],
    ["[]]", "]", true],
    ["[", "[", true],
    ["a[", "a[", true],
    ["\\*", "*", true],
    ["\\*", "x", false],
    ["a.b", "a.b", true],
    ["a.b", "axb", false],
    ["(x)+", "(x)+", true],
    ["*.ts", "dir/a.ts", true],
    ["a-b", "a-b", true],
    ["é?", "éü", true],
  ];
  for (const [glob, word, expected] of cases) {
    assert.equal(compileGlob(glob).test(word), expected, `${glob} vs ${word}`);
  }
});

Deno.test("compilePattern() rejects empty, unsplittable and bad-glob patterns", () => {
  for (const pattern of ["", "   ", `curl "x`, "ls [z-a]"]) {
    assert.throws(() => compilePattern(pattern), PatternError, pattern);
  }
});

Deno.test("matchArgv() follows the word rules: same place, lone final *, equal counts, basename", () => {
  const cases: [string, string[], boolean][] = [
    ["curl *", ["curl"], true],
    ["curl *", ["curl", "-s", "x"], true],
    ["curl *", ["/usr/bin/curl", "-s", "x"], true],
    ["curl *", ["./curl"], true],
    ["curl *", ["bin/curl", "x"], true],
    ["curl *", ["curlx"], false],
    ["curl *", ["wget", "curl"], false],
    ["npm ci", ["npm", "ci"], true],
    ["npm ci", ["npm", "ci", "--verbose"], false],
    ["npm ci", ["npm"], false],
    ["git push *", ["git", "push"], true],
    ["git push *", ["git", "push", "origin", "main"], true],
    ["git push *", ["git", "status"], false],
    ["git * main", ["git", "push", "main"], true],
    ["git * main", ["git", "main"], false],
    ["git * main", ["git", "a", "b", "main"], false],
    ["git pu?h", ["git", "push"], true],
    ["python3* -c *", ["python3.11", "-c", "x"], true],
    ["/usr/bin/curl *", ["/usr/bin/curl", "x"], true],
    ["/usr/bin/curl *", ["curl", "x"], false],
    ["*", [], true],
    ["*", ["anything", "else"], true],
    ["rm '*'", ["rm", "*"], true],
    ["rm '*'", ["rm", "x"], false],
    ["echo push", ["echo", "/x/push"], false],
  ];
  for (const [pattern, argv, expected] of cases) {
    assert.equal(matchArgv(compilePattern(pattern), argv), expected, `${pattern} vs ${argv}`);
  }
});

const L = (text: string): ScriptWord => ({ kind: "literal", text });
const S = (text: string): ScriptWord => ({ kind: "single", text });
const M = (text: string): ScriptWord => ({ kind: "multi", text });

Deno.test("matchWords() tells sure from possible for words known only at run time", () => {
  const cases: [string, ScriptWord[], string][] = [
    ["curl *", [L("curl"), S('"$U"')], "sure"],
    ["curl *", [L("curl"), M("$ARGS")], "sure"],
    ["curl -s *", [L("curl"), S('"$U"')], "possible"],
    ["npm ci", [L("npm"), M("$X")], "possible"],
    ["npm ci", [L("npm"), S('"$X"')], "possible"],
    ["npm ci", [L("npm"), S('"$X"'), L("y")], "no"],
    ["npm *", [L("npm"), M("$X"), L("y")], "sure"],
    ["npm", [L("npm"), M("$X")], "possible"],
    ["a * b", [L("a"), S("$x"), L("b")], "sure"],
    ["a b c", [L("a"), M("$x")], "possible"],
    ["a b c", [L("a"), M("$x"), L("d")], "no"],
    ["rm -rf /", [L("rm"), M("$X")], "possible"],
  ];
  for (const [pattern, words, expected] of cases) {
    assert.equal(
      matchWords(compilePattern(pattern), words),
      expected,
      `${pattern} vs ${words.map((w) => w.text).join(" ")}`,
    );
  }
});

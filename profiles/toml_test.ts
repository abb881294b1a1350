import assert from "node:assert/strict";
import { formatKeyPath, indexKeyLines, parseTomlText, splitDottedKey } from "./toml.ts";

Deno.test("indexKeyLines() finds headers, dotted keys, quoted keys and inline tables", () => {
  const text = [
    "top = 1", // 1
    "", // 2
    '[permissions."my profile".network]', // 3
    'mode = "full" # comment', // 4
    'domains."*.a.example" = "allow"', // 5
    'desc = """', // 6
    "x = 1", // 7 (inside a multi-line string)
    '"""', // 8
    "[execpolicy]", // 9
    '"git push *" = { decision = "deny", match = ["git push"] }', // 10
  ].join("\n");
  const lines = indexKeyLines(text);
  assert.equal(lines.lineOf(["top"]), 1);
  assert.equal(lines.lineOf(["permissions", "my profile", "network", "mode"]), 4);
  assert.equal(lines.lineOf(["permissions", "my profile", "network", "domains", "*.a.example"]), 5);
  assert.equal(lines.lineOf(["permissions", "my profile", "network", "x"]), 3);
  assert.equal(lines.lineOf(["execpolicy", "git push *", "match"]), 10);
  assert.equal(lines.lineOf(["nowhere"]), undefined);
});

Deno.test("splitDottedKey() and formatKeyPath() round-trip quoted segments", () => {
  assert.deepEqual(splitDottedKey(`a."b.c".'d e'`), ["a", "b.c", "d e"]);
  assert.equal(splitDottedKey("a..b"), null);
  assert.equal(
    formatKeyPath(["permissions", "ci", "network", "domains", "*"]),
    'permissions.ci.network.domains."*"',
  );
});

Deno.test("parseTomlText() returns the value and the key lines, or a problem with the line", async () => {
  const parsed = await parseTomlText('a = 1\n[b]\nc = "x"\n', "x.toml");
  assert.ok(parsed.ok);
  assert.deepEqual(JSON.parse(JSON.stringify(parsed.value)), { a: 1, b: { c: "x" } });
  assert.equal(parsed.lines.lineOf(["b", "c"]), 3);
  assert.deepEqual(await parseTomlText("a = 1\na = 2\n", "x.toml"), {
    ok: false,
    problems: [{
      file: "x.toml",
      line: 2,
      keyPath: "",
      message:
        "Duplicate key or table: each key and table may be defined only once (TOML forbids redefinition)",
    }],
  });
  const bad = await parseTomlText("a = \n", "y.toml");
  assert.equal(bad.ok, false);
  if (!bad.ok) {
    assert.equal(bad.problems[0].file, "y.toml");
    assert.equal(bad.problems[0].line, 1);
    assert.match(bad.problems[0].message, /^Invalid TOML: /);
  }
});

Deno.test("parseTomlText() says which bracket is missing and where it was opened", async () => {
  const cases: [string, number, RegExp][] = [
    [
      "a = 1\n[permissions.ci\nx = 1\n",
      2,
      /^Invalid TOML: The table header "\[permissions.ci" on line 2 is missing its closing "\]": write \[permissions.ci\]$/,
    ],
    ["[[rules.a\nx = 1\n", 1, /missing its closing "\]\]": write \[\[rules.a\]\]$/],
    [
      '[a]\nallow = ["x",\n  "y"\nz = 2\n',
      2,
      /^Invalid TOML: The array of key "allow" opened on line 2 is missing its closing "\]"/,
    ],
    ["t = { a = 1\n", 1, /inline table of key "t" opened on line 1 is missing its closing "\}"/],
  ];
  for (const [text, line, message] of cases) {
    const parsed = await parseTomlText(text, "m.toml");
    assert.equal(parsed.ok, false, text);
    if (parsed.ok) continue;
    assert.equal(parsed.problems[0].line, line, text);
    assert.match(parsed.problems[0].message, message, text);
    assert.doesNotMatch(parsed.problems[0].message, /illegal character/);
  }
  // A closed array with a real mistake after it keeps the parser's own words.
  const other = await parseTomlText('a = ["x"]\nb = \n', "m.toml");
  assert.ok(!other.ok && !/missing its closing/.test(other.problems[0].message));
});

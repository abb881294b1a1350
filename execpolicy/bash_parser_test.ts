import assert from "node:assert/strict";
import { loadShellParser } from "./bash_parser.ts";
import { decideCommandLazily } from "./decide.ts";
import type { ExecPolicyConfig } from "./types.ts";

const parser = await loadShellParser();

function split(script: string): string[][] | string {
  if (!("split" in parser)) throw new Error(parser.error);
  const parsed = parser.split(script);
  return parsed.kind === "split" ? parsed.commands.map((c) => c.map((w) => w.text)) : parsed.reason;
}

Deno.test("loadShellParser() sees into compound commands, substitutions and here-documents", () => {
  assert.deepEqual(split('for f in *.js; do node "$f"; done'), [["node", '"$f"']]);
  assert.deepEqual(split("if [ -f p ]; then npm test; else npm ci; fi"), [["npm", "test"], [
    "npm",
    "ci",
  ]]);
  assert.deepEqual(split("x=$(curl -s y); echo $x"), [["curl", "-s", "y"], ["echo", "$x"]]);
  assert.deepEqual(split("echo $(date)"), [["date"], ["echo", "$__sbx"]]);
  // A quoted here-document is data; an unquoted one's substitutions run.
  assert.deepEqual(split("cat <<'EOF'\n$(curl x)\nEOF"), [["cat"]]);
  assert.deepEqual(split("cat <<EOF\n$(curl x)\nEOF"), [["cat"], ["curl", "x"]]);
  assert.deepEqual(split("{ npm ci; npm test; } 2>&1 | tee log"), [["npm", "ci"], ["npm", "test"], [
    "tee",
    "log",
  ]]);
  assert.deepEqual(split("f() { curl x; }; f"), [["curl", "x"], ["f"]]);
  assert.deepEqual(split("time npm test"), [["npm", "test"]]);
});

Deno.test("loadShellParser() keeps refusing what could run unseen code, and syntax errors", () => {
  const cases: [string, RegExp][] = [
    ["echo 'a[$(id)]'", /quoted string/],
    ['eval "$(direnv export bash)"', /builtin "eval"/],
    ["source ./env.sh", /builtin "source"/],
    ["$CMD x", /expansion in the command word/],
    ["for ((i=0;i<3;i++)); do curl x; done", /arithmetic for loop/],
    ["if then fi (", /syntax error/],
    ["echo $(", /syntax error/],
  ];
  for (const [script, reason] of cases) {
    const got = split(script);
    assert.equal(typeof got, "string", script);
    assert.match(got as string, reason, script);
  }
});

Deno.test("decideCommandLazily() decides scripts the hand-written splitter refuses by their parts", async () => {
  const policy: ExecPolicyConfig = {
    default: "allow",
    rules: [
      {
        pattern: "curl *",
        decision: "deny",
        justification: null,
        match: [],
        notMatch: [],
        source: "user:t",
      },
      {
        pattern: "npm ci",
        decision: "allow-network",
        justification: null,
        match: [],
        notMatch: [],
        source: "user:t",
      },
    ],
  };
  const decide = (script: string) =>
    decideCommandLazily(policy, ["bash", "-lc", script], { networkEnabled: true, env: {} });
  // Opaque to the hand-written splitter, and "npm" is named: it would get network.
  const loop = await decide("for f in a b; do npm test; done");
  assert.equal(loop.decision, "allow");
  assert.equal(loop.commands[0].basis, "default");
  assert.equal((await decide("echo $(curl -s x)")).decision, "deny");
  assert.equal((await decide("cat <<'EOF'\ncurl x\nEOF\nnpm ci")).decision, "allow-network");
  assert.equal((await decide("if true; then npm ci; fi")).decision, "allow-network");
});

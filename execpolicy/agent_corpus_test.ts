/**
 * The agent corpus: real-shaped command lines as coding agents send them
 * (`bash -lc '<script>'`: tests, builds, git, package managers, file edits
 * with here-documents, grep/sed/find pipelines), each with the decision it
 * must get under the shared table (`testdata/conformance/execpolicy_table.json`).
 * Also reports how many are decided by their parts rather than as opaque.
 */
import assert from "node:assert/strict";
import { decideCommand } from "./decide.ts";
import { loadShellParser, type ShellParser } from "./bash_parser.ts";
import type { ExecDecision, ExecPolicyConfig } from "./types.ts";

const root = new URL("../testdata/", import.meta.url);
const table: { table: [string, ExecDecision][] } = JSON.parse(
  Deno.readTextFileSync(new URL("conformance/execpolicy_table.json", root)),
);
const corpus: { argv: string[]; decision: ExecDecision }[] = JSON.parse(
  Deno.readTextFileSync(new URL("execpolicy/agent_corpus.json", root)),
);

const POLICY: ExecPolicyConfig = {
  default: "allow",
  rules: table.table.map(([pattern, decision]) => ({
    pattern,
    decision,
    justification: null,
    match: [],
    notMatch: [],
    source: "user:/shared/table.toml",
  })),
};

/** Decides the corpus; returns the mismatches and the split/opaque counts. */
export function runAgentCorpus(
  shellParser?: ShellParser,
): { failures: string[]; split: number; opaque: number } {
  const failures: string[] = [];
  let split = 0;
  let opaque = 0;
  for (const c of corpus) {
    const verdict = decideCommand(POLICY, c.argv, {
      networkEnabled: true,
      env: {},
      cwd: null,
      shellParser,
    });
    if (verdict.commands.some((v) => v.basis === "opaque")) opaque++;
    else split++;
    if (verdict.decision !== c.decision) {
      failures.push(
        `${JSON.stringify(c.argv[2])}: expected ${c.decision}, got ${verdict.decision}`,
      );
    }
  }
  return { failures, split, opaque };
}

Deno.test("decideCommand() gives every line of the agent corpus its decision under the shared table", async () => {
  assert.ok(corpus.length >= 200, `${corpus.length} lines`);
  const parser = await loadShellParser();
  assert.ok("split" in parser, "tree-sitter-bash loads");
  const { failures, split, opaque } = runAgentCorpus(parser);
  const hand = runAgentCorpus();
  console.log(
    `agent corpus: ${corpus.length} lines; with tree-sitter-bash ${split} split into parts, ` +
      `${opaque} opaque; hand-written splitter alone ${hand.split} split, ${hand.opaque} opaque`,
  );
  assert.deepEqual(failures, []);
  // The grammar must keep seeing into what agents send: most lines are decided by their parts.
  assert.ok(opaque < hand.opaque, `${opaque} opaque with the grammar vs ${hand.opaque} without`);
  assert.ok(split >= corpus.length * 0.9, `${split} of ${corpus.length} split`);
});

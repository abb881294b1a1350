/**
 * Every vector of `testdata/conformance/execpolicy_table.json` through the
 * library: the shared table, plus the case's `extra` rules. The CLI half is
 * in `tests/execpolicy_cli_test.ts`.
 */
import assert from "node:assert/strict";
import { decideCommand } from "./decide.ts";
import type { ExecDecision, ExecPolicyConfig, ExecRule } from "./types.ts";

/** The shared vectors, as the file holds them. */
export interface ExecTableVectors {
  readonly table: readonly [string, ExecDecision][];
  readonly cases: readonly {
    readonly argv: readonly string[];
    readonly decision: ExecDecision;
    readonly extra?: readonly [string, ExecDecision][];
  }[];
}

const VECTORS: ExecTableVectors = JSON.parse(
  Deno.readTextFileSync(new URL("../testdata/conformance/execpolicy_table.json", import.meta.url)),
);

function table(rows: readonly [string, ExecDecision][]): ExecRule[] {
  return rows.map(([pattern, decision]) => ({
    pattern,
    decision,
    justification: null,
    match: [],
    notMatch: [],
    source: "user:/shared/table.toml",
  }));
}

Deno.test("decideCommand() passes every vector of the shared execpolicy table", () => {
  assert.ok(VECTORS.cases.length >= 33);
  const failures: string[] = [];
  for (const c of VECTORS.cases) {
    const policy: ExecPolicyConfig = {
      default: "allow",
      rules: [...table(VECTORS.table), ...table(c.extra ?? [])],
    };
    const got = decideCommand(policy, c.argv, { networkEnabled: true, env: {}, cwd: null });
    if (got.decision !== c.decision) {
      failures.push(`${JSON.stringify(c.argv)}: expected ${c.decision}, got ${got.decision}`);
    }
  }
  assert.deepEqual(failures, []);
});

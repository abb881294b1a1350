import assert from "node:assert/strict";
import {
  CHAIN_START,
  DECISION_LOG_SCHEMA,
  type DecisionEvent,
  formatCommand,
  formatDecisionLine,
  openDecisionLog,
  PROXY_PROTOCOLS,
  readDecisionLog,
  verifyDecisionLog,
} from "./decision_log.ts";
import { tempDir } from "../tests/cli_helpers.ts";

const EVENT: DecisionEvent = {
  time: "2026-01-02T03:04:05.678Z",
  host: "a.test",
  port: 443,
  protocol: "https-connect",
  method: null,
  decision: "deny",
  reason: "not_allowed",
  rule: null,
  source: null,
  guard: "baseline_policy",
  command: "npm ci",
};

Deno.test("formatDecisionLine() writes the CLI.md fields as one JSON line", () => {
  const line = formatDecisionLine(EVENT);
  assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
  assert.deepEqual(JSON.parse(line), {
    schema: DECISION_LOG_SCHEMA,
    time: EVENT.time,
    host: EVENT.host,
    port: EVENT.port,
    protocol: EVENT.protocol,
    method: EVENT.method,
    decision: EVENT.decision,
    reason: EVENT.reason,
    source: "baseline_policy", // the guard
    rule: EVENT.rule,
    rule_source: EVENT.source, // where the rule came from
    command: EVENT.command,
    prev: CHAIN_START,
  });
});

Deno.test("readDecisionLog() reads events back, skips junk lines and filters blocked ones", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const path = `${dir}/log.jsonl`;
  {
    using log = await openDecisionLog(path);
    log.write({ ...EVENT, decision: "allow", reason: "allowed", host: "ok.test" });
    log.write(EVENT);
  }
  await Deno.writeTextFile(path, 'not json\n{"time":1}\n{"host":"torn', { append: true });
  assert.deepEqual((await readDecisionLog(path)).map((e) => e.host), ["ok.test", "a.test"]);
  assert.deepEqual(await readDecisionLog(path, { blockedOnly: true }), [EVENT]);
});

Deno.test("formatCommand() quotes arguments that need it", () => {
  assert.equal(formatCommand(["npm", "ci"]), "npm ci");
  assert.equal(formatCommand(["sh", "-c", "echo it's"]), "sh -c 'echo it'\\''s'");
  assert.equal(formatCommand([]), null);
});

async function writeLog(path: string, hosts: string[]): Promise<string> {
  using log = await openDecisionLog(path);
  for (const host of hosts) log.write({ ...EVENT, host });
  return log.lastHash;
}

Deno.test("openDecisionLog() chains each line to the one before, across opens", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.path}/log.jsonl`;
  await writeLog(path, ["a.test", "b.test"]);
  const last = await writeLog(path, ["c.test"]);
  const bytes = await Deno.readFile(path);
  const lines = new TextDecoder().decode(bytes).trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines[0].prev, CHAIN_START);
  assert.notEqual(lines[1].prev, CHAIN_START);
  assert.notEqual(lines[2].prev, lines[1].prev);
  const result = await verifyDecisionLog(bytes);
  assert.deepEqual(result.problems, []);
  assert.equal(result.lines, 3);
  assert.equal(result.lastHash, last);
});

Deno.test("verifyDecisionLog() names a removed line and an edited line", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.path}/log.jsonl`;
  await writeLog(path, ["a.test", "b.test", "c.test", "d.test"]);
  const lines = (await Deno.readTextFile(path)).split("\n");
  const encode = (l: string[]) => new TextEncoder().encode(l.join("\n"));

  const removed = await verifyDecisionLog(encode([lines[0], lines[2], lines[3], ""]));
  assert.equal(removed.problems.length, 1);
  assert.equal(removed.problems[0].line, 2);
  assert.match(removed.problems[0].message, /line 2 does not follow line 1/);

  const edited = [...lines];
  edited[1] = edited[1].replace('"decision":"deny"', '"decision":"allow"');
  const changed = await verifyDecisionLog(encode(edited));
  assert.deepEqual(changed.problems.map((p) => p.line), [3]);

  const first = await verifyDecisionLog(encode(lines.slice(1)));
  assert.match(first.problems[0].message, /line 1 does not start the chain/);

  const torn = await verifyDecisionLog(encode([lines[0], lines[1].slice(0, 20)]));
  assert.ok(torn.problems.some((p) => /cut off/.test(p.message)));
});

Deno.test("openDecisionLog() ends a torn last line before chaining on", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.path}/log.jsonl`;
  await writeLog(path, ["a.test"]);
  await Deno.writeTextFile(path, '{"host":"tor', { append: true });
  await writeLog(path, ["b.test"]);
  const text = await Deno.readTextFile(path);
  assert.equal(text.split("\n").length, 4); // a, the torn line, b, ""
  const result = await verifyDecisionLog(new TextEncoder().encode(text));
  // The torn line is named; the line after it still chains to it.
  assert.deepEqual(result.problems.map((p) => p.line), [2]);
});

Deno.test("docs/decision-log.schema.json describes exactly the lines formatDecisionLine() writes", async () => {
  const schema = JSON.parse(
    await Deno.readTextFile(new URL("../docs/decision-log.schema.json", import.meta.url)),
  );
  assert.equal(schema.properties.schema.const, DECISION_LOG_SCHEMA);
  assert.deepEqual(schema.properties.protocol.enum, [...PROXY_PROTOCOLS]);
  const lines = [
    formatDecisionLine(EVENT),
    formatDecisionLine(
      { ...EVENT, decision: "would_block", method: "POST", guard: "mode_guard" },
      "a".repeat(64),
    ),
    formatDecisionLine({
      ...EVENT,
      decision: "allow",
      reason: "allowed",
      rule: "a.test",
      source: "flag:--allow",
      guard: null,
    }),
  ];
  for (const line of lines) {
    const value = JSON.parse(line);
    assert.deepEqual(Object.keys(value), schema.required, "every field, in order, and no other");
    for (
      const [key, spec] of Object.entries(schema.properties) as [string, Record<string, unknown>][]
    ) {
      const v = value[key];
      if ("const" in spec) assert.equal(v, spec.const, key);
      if ("enum" in spec) assert.ok((spec.enum as unknown[]).includes(v), `${key}: ${v}`);
      if ("pattern" in spec) assert.match(v, new RegExp(spec.pattern as string), key);
      if ("type" in spec) {
        const types = ([] as string[]).concat(spec.type as string | string[]);
        const actual = v === null ? "null" : Number.isInteger(v) ? "integer" : typeof v;
        assert.ok(types.includes(actual), `${key} is ${actual}, schema says ${types}`);
      }
    }
  }
});

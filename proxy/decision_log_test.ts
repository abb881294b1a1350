import assert from "node:assert/strict";
import {
  type DecisionEvent,
  formatCommand,
  formatDecisionLine,
  openDecisionLog,
  readDecisionLog,
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
  command: "npm ci",
};

Deno.test("formatDecisionLine() writes the CLI.md fields as one JSON line", () => {
  const line = formatDecisionLine(EVENT);
  assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
  assert.deepEqual(JSON.parse(line), EVENT);
});

Deno.test("readDecisionLog() reads events back, skips junk lines and filters blocked ones", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const path = `${dir}/log.jsonl`;
  {
    using log = openDecisionLog(path);
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

/**
 * The decision log as evidence: a real run's log verifies, and `sandbox log
 * verify` names the line after one that was removed or changed.
 */
import assert from "node:assert/strict";
import { sandboxCli, tempDir } from "./cli_helpers.ts";
import { hasProgram } from "./run_helpers.ts";

Deno.test({
  name: "sandbox log verify: a run's log is intact; a removed and an edited line are named",
  ignore: !hasProgram("/usr/bin/bwrap"),
  async fn() {
    await using tmp = await tempDir("audit-");
    const log = `${tmp.path}/decisions.jsonl`;
    const script = "for h in a b c d; do curl -s -o /dev/null http://$h.test/; done; true";
    const run = await sandboxCli(["run", "--log", log, "--", "sh", "-c", script], {
      cwd: tmp.path,
      timeoutMs: 90_000,
    });
    assert.equal(run.code, 0, run.stderr);
    const lines = (await Deno.readTextFile(log)).split("\n");
    assert.equal(lines.length, 5, "four decisions and the final newline");
    for (const line of lines.slice(0, 4)) {
      const event = JSON.parse(line);
      assert.equal(event.schema, "sandbox.decision/v1");
      assert.match(event.prev, /^[0-9a-f]{64}$/);
    }

    const intact = await sandboxCli(["log", "verify", "--json", log]);
    assert.equal(intact.code, 0, intact.stderr);
    const report = JSON.parse(intact.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.lines, 4);

    const removed = `${tmp.path}/removed.jsonl`;
    await Deno.writeTextFile(removed, [lines[0], lines[2], lines[3], ""].join("\n"));
    const r = await sandboxCli(["log", "verify", removed]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /line 2 does not follow line 1/);

    const edited = `${tmp.path}/edited.jsonl`;
    const changed = [...lines];
    changed[2] = changed[2].replace('"decision":"deny"', '"decision":"allow"');
    await Deno.writeTextFile(edited, changed.join("\n"));
    const e = await sandboxCli(["log", "verify", edited]);
    assert.equal(e.code, 1);
    assert.match(e.stderr, /line 4 does not follow line 3/);

    // A cut-off end is caught against the hash the run reported.
    const cut = `${tmp.path}/cut.jsonl`;
    await Deno.writeTextFile(cut, [lines[0], lines[1], lines[2], ""].join("\n"));
    const c = await sandboxCli(["log", "verify", "--last-hash", report.last_hash, cut]);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /cut off the end/);

    const usage = await sandboxCli(["log", "verify", `${tmp.path}/missing.jsonl`]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /Cannot read the decision log/);
  },
});

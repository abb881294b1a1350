/**
 * The composite action (action.yml): every input reaches its step as a
 * variable, and the step (tools/action_run.sh) runs the command under
 * `sandbox run` with the inputs turned into flags, the way a workflow's
 * `uses:` would, under GITHUB_ACTIONS=true.
 */
import assert from "node:assert/strict";
import { runCommand, tempDir } from "./cli_helpers.ts";
import { hasProgram } from "./run_helpers.ts";

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");

Deno.test("action.yml passes every input to its step, as a variable (never pasted into the script)", async () => {
  const text = await Deno.readTextFile(`${ROOT}/action.yml`);
  const inputs = text.slice(text.indexOf("\ninputs:"), text.indexOf("\nruns:"));
  const names = [...inputs.matchAll(/^ {2}([a-z-]+):$/gm)].map((m) => m[1]);
  assert.ok(
    names.includes("run") && names.includes("enforcement") && names.length >= 8,
    names.join(),
  );
  const steps = text.slice(text.indexOf("\nruns:"));
  for (const name of names) {
    assert.match(steps, new RegExp(`: \\$\\{\\{ inputs\\.${name} \\}\\}$`, "m"), name);
  }
  // No input is expanded inside a run: script (a workflow-injection hole).
  for (const block of steps.split("run: ").slice(1)) {
    assert.doesNotMatch(block.split("\n")[0], /\$\{\{/);
  }
});

Deno.test({
  name:
    "the action's step runs the command under sandbox: report mode, stdout untouched, annotations on stderr",
  ignore: !hasProgram("/usr/bin/bwrap"),
  async fn() {
    await using tmp = await tempDir("action-");
    await Deno.writeTextFile(`${tmp.path}/managed.toml`, "");
    const summary = `${tmp.path}/summary.md`;
    const env = {
      GITHUB_ACTIONS: "true",
      GITHUB_STEP_SUMMARY: summary,
      SANDBOX_MANAGED_CONFIG: `${tmp.path}/managed.toml`,
      XDG_CONFIG_HOME: `${tmp.path}/xdg`,
      SANDBOX_DENO: Deno.execPath(),
      SANDBOX_RUN: "echo payload; curl -s -o /dev/null http://other.test/ || true",
      SANDBOX_ENFORCEMENT: "enforce",
      SANDBOX_FAIL_ON_BLOCK: "true",
      SANDBOX_RECEIPT: "receipt.json",
    };
    const blocked = await runCommand(["bash", `${ROOT}/tools/action_run.sh`], {
      cwd: tmp.path,
      env,
      unset: ["CI"],
      timeoutMs: 90_000,
    });
    assert.equal(blocked.code, 3, blocked.stderr);
    assert.equal(blocked.stdout, "payload\n");
    assert.match(blocked.stderr, /^::warning title=sandbox blocked other\.test::/m);
    assert.match(await Deno.readTextFile(summary), /"other\.test" = "allow"/);
    assert.equal(JSON.parse(await Deno.readTextFile(`${tmp.path}/receipt.json`)).exit_code, 3);

    // Report mode resolves what it lets through: the fixture is the host's loopback, reached by
    // its documented alias (no DNS), with local addresses allowed by the config.
    let hits = 0;
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
      hits++;
      return new Response("fixture\n");
    });
    try {
      await Deno.writeTextFile(
        `${tmp.path}/ci.toml`,
        'default_permissions = "ci"\n[permissions.ci.network]\nallow_local_binding = true\n',
      );
      const report = await runCommand(["bash", `${ROOT}/tools/action_run.sh`], {
        cwd: tmp.path,
        env: {
          ...env,
          SANDBOX_RUN: `curl -s http://host.sandbox.internal:${server.addr.port}/`,
          SANDBOX_CONFIG: `${tmp.path}/ci.toml`,
          SANDBOX_ENFORCEMENT: "report",
          SANDBOX_FAIL_ON_BLOCK: "false",
        },
        unset: ["CI"],
        timeoutMs: 90_000,
      });
      assert.equal(report.code, 0, report.stderr);
      assert.equal(report.stdout, "fixture\n");
      assert.equal(hits, 1);
      assert.match(report.stderr, /report mode: 1 host would have been blocked/);
    } finally {
      await server.shutdown();
    }

    const bad = await runCommand(["bash", `${ROOT}/tools/action_run.sh`], {
      cwd: tmp.path,
      env: { ...env, SANDBOX_ENFORCEMENT: "audit" },
      timeoutMs: 30_000,
    });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Invalid input enforcement: "audit"/);
  },
});

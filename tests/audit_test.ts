/**
 * The decision log as evidence: a real run's log verifies, and `sandbox log
 * verify` names the line after one that was removed or changed.
 */
import assert from "node:assert/strict";
import { sandboxArgv, sandboxCli, tempDir } from "./cli_helpers.ts";
import { hasProgram } from "./run_helpers.ts";
import { startOtlpReceiver } from "./otlp_helpers.ts";

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

Deno.test({
  name:
    "sandbox run --report: an unlisted name reaches the fixture, logged would_block; a private address stays refused",
  ignore: !hasProgram("/usr/bin/bwrap"),
  async fn() {
    await using tmp = await tempDir("report-");
    let hits = 0;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => {
        hits++;
        return new Response("fixture\n");
      },
    );
    try {
      const port = server.addr.port;
      const log = `${tmp.path}/decisions.jsonl`;
      await Deno.writeTextFile(`${tmp.path}/managed.toml`, "");
      await Deno.writeTextFile(
        `${tmp.path}/ci.toml`,
        '# the team\'s profile\ndefault_permissions = "ci"\n\n[permissions.ci.network.domains]\n"listed.test" = "allow"\n',
      );
      const env = {
        SANDBOX_MANAGED_CONFIG: `${tmp.path}/managed.toml`,
        XDG_CONFIG_HOME: `${tmp.path}/xdg`,
      };
      const script = `curl -s http://other.test:${port}/`;
      const run = await sandboxCli([
        "run",
        "--config",
        `${tmp.path}/ci.toml`,
        "--report",
        "--allow-local-binding",
        "--resolve",
        "other.test=127.0.0.1",
        "--log",
        log,
        "--merge",
        `${tmp.path}/ci.toml`,
        "--",
        "sh",
        "-c",
        script,
      ], { cwd: tmp.path, env, unset: ["GITHUB_ACTIONS", "CI"], timeoutMs: 90_000 });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, "fixture\n");
      assert.equal(hits, 1, "the unlisted host reached the fixture once");
      const lines = (await Deno.readTextFile(log)).trim().split("\n").map((l) => JSON.parse(l));
      const other = lines.find((l) => l.host === "other.test");
      assert.equal(other.decision, "would_block");
      assert.equal(other.reason, "not_allowed");
      assert.equal(other.source, "baseline_policy");
      assert.match(run.stderr, /report mode: 1 host would have been blocked/);
      assert.match(run.stderr, /"other\.test" = "allow"/);
      // --merge wrote the line into the team's profile, keeping its comment.
      const merged = await Deno.readTextFile(`${tmp.path}/ci.toml`);
      assert.match(merged, /^# the team's profile$/m);
      assert.match(merged, /^"other\.test" = "allow"/m);

      // Without allow_local_binding, report mode keeps refusing local and private addresses:
      // the name is refused after its (pinned) lookup, before any connection is made.
      const floor = await sandboxCli([
        "run",
        "--report",
        "--resolve",
        `private.test=10.0.0.1`,
        "--resolve",
        `loop.test=127.0.0.1`,
        "--log",
        log,
        "--",
        "sh",
        "-c",
        `curl -s -o /dev/null -w '%{http_code}\\n' http://private.test/; curl -s -o /dev/null -w '%{http_code}\\n' http://loop.test:${port}/`,
      ], { cwd: tmp.path, env, unset: ["GITHUB_ACTIONS", "CI"], timeoutMs: 90_000 });
      assert.equal(floor.code, 0, floor.stderr);
      assert.equal(floor.stdout, "403\n403\n");
      assert.equal(hits, 1, "the fixture saw nothing more");
      const after = (await Deno.readTextFile(log)).trim().split("\n").map((l) => JSON.parse(l));
      for (const host of ["private.test", "loop.test"]) {
        const line = after.find((l) => l.host === host);
        assert.equal(line.decision, "deny");
        assert.equal(line.reason, "not_allowed_local");
      }
      // --merge needs report mode.
      const usage = await sandboxCli(
        ["run", "--merge", `${tmp.path}/ci.toml`, "--", "true"],
        { cwd: tmp.path, env, timeoutMs: 60_000 },
      );
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /goes with report mode/);
    } finally {
      await server.shutdown();
    }
  },
});

Deno.test({
  name:
    "sandbox run with OTEL_EXPORTER_OTLP_ENDPOINT: a block arrives at the collector; with it down the run and the local log are whole",
  ignore: !hasProgram("/usr/bin/bwrap"),
  async fn() {
    await using tmp = await tempDir("otlp-");
    const receiver = startOtlpReceiver();
    try {
      const log = `${tmp.path}/decisions.jsonl`;
      const up = await sandboxCli(
        ["run", "--log", log, "--", "sh", "-c", "curl -s -o /dev/null http://blocked.test/; true"],
        {
          cwd: tmp.path,
          env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url },
          unset: ["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"],
          timeoutMs: 90_000,
        },
      );
      assert.equal(up.code, 0, up.stderr);
      const records = receiver.records();
      const blocked = records.find((r) => r["server.address"] === "blocked.test");
      assert.ok(blocked, JSON.stringify(records));
      assert.equal(blocked["event.name"], "sandbox.network_proxy.policy_decision");
      assert.equal(blocked["network.policy.decision"], "deny");
      assert.equal(blocked["network.policy.source"], "baseline_policy");
      assert.equal(blocked["network.policy.reason"], "not_allowed");
      assert.equal(String(blocked["server.port"]), "80");
      assert.equal(blocked["http.request.method"], "GET");
      assert.equal(blocked["client.address"], "unknown");
    } finally {
      await receiver.close();
    }
    // The collector is gone now: the run still succeeds, and every decision is in the local log.
    const log = `${tmp.path}/down.jsonl`;
    const down = await sandboxCli(
      [
        "run",
        "--log",
        log,
        "--",
        "sh",
        "-c",
        "for h in a b c; do curl -s -o /dev/null http://$h.test/; done; true",
      ],
      {
        cwd: tmp.path,
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url },
        unset: ["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"],
        timeoutMs: 90_000,
      },
    );
    assert.equal(down.code, 0, down.stderr);
    const lines = (await Deno.readTextFile(log)).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.host), ["a.test", "b.test", "c.test"]);
  },
});

Deno.test({
  name:
    "sandbox run --receipt: hosts, ports and checked addresses, the policy's hash and the log's last hash; read-only inside",
  ignore: !hasProgram("/usr/bin/bwrap"),
  async fn() {
    await using tmp = await tempDir("receipt-");
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => new Response("ok\n"),
    );
    try {
      const port = server.addr.port;
      const log = `${tmp.path}/decisions.jsonl`;
      const receiptFile = `${tmp.path}/receipt.json`;
      await Deno.writeTextFile(receiptFile, "");
      const script = `curl -s -o /dev/null http://allowed.test:${port}/; ` +
        `curl -s -o /dev/null http://refused.test/; ` +
        `echo forged > receipt.json 2>/dev/null && echo WROTE || echo readonly`;
      const args = [
        "run",
        "--allow",
        "allowed.test",
        "--resolve",
        "allowed.test=127.0.0.1",
        "--log",
        log,
        "--receipt",
        "receipt.json",
        "--",
        "sh",
        "-c",
        script,
      ];
      const run = await sandboxCli(args, { cwd: tmp.path, timeoutMs: 90_000 });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.trim(), "readonly", "the command cannot write the receipt");
      const receipt = JSON.parse(await Deno.readTextFile(receiptFile));
      assert.equal(receipt.schema, "sandbox.receipt/v1");
      assert.deepEqual(receipt.command, ["sh", "-c", script]);
      assert.equal(receipt.exit_code, 0);
      assert.match(receipt.policy.sha256, /^[0-9a-f]{64}$/);
      const allowed = receipt.hosts.find((h: { host: string }) => h.host === "allowed.test");
      assert.deepEqual(allowed.ports, [port]);
      assert.deepEqual(allowed.addresses, ["127.0.0.1"]);
      assert.equal(allowed.allowed, 1);
      const refused = receipt.hosts.find((h: { host: string }) => h.host === "refused.test");
      assert.equal(refused.denied, 1);
      assert.deepEqual(refused.addresses, [], "a refused name was never resolved");
      const verified = await sandboxCli([
        "log",
        "verify",
        "--json",
        "--last-hash",
        receipt.log.last_hash,
        log,
      ]);
      assert.equal(verified.code, 0, verified.stderr);
      assert.equal(receipt.log.lines, 2);

      // Another policy, another hash.
      const again = await sandboxCli([...args.slice(0, 1), "--deny", "x.test", ...args.slice(1)], {
        cwd: tmp.path,
        timeoutMs: 90_000,
      });
      assert.equal(again.code, 0, again.stderr);
      const second = JSON.parse(await Deno.readTextFile(receiptFile));
      assert.notEqual(second.policy.sha256, receipt.policy.sha256);
    } finally {
      await server.shutdown();
    }
  },
});

Deno.test({
  name: "sandbox run says a block on stderr while the command still runs (it blocks, then sleeps)",
  ignore: !hasProgram("/usr/bin/bwrap"),
  async fn() {
    await using tmp = await tempDir("live-");
    const [program, ...args] = sandboxArgv([
      "run",
      "--",
      "sh",
      "-c",
      "curl -s -o /dev/null http://other.test/; sleep 60",
    ]);
    const child = new Deno.Command(program, {
      args,
      cwd: tmp.path,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    try {
      let text = "";
      const decoder = new TextDecoder();
      const reader = child.stderr.getReader();
      while (
        !/^sandbox: blocked GET other\.test:80 not_allowed \(add --allow other\.test\)$/m.test(text)
      ) {
        const { value, done } = await reader.read();
        assert.ok(!done, `stderr ended without the live line:\n${text}`);
        text += decoder.decode(value, { stream: true });
      }
      assert.equal(exited, false, "the line came while the command was still running");
      reader.releaseLock();
      child.kill("SIGTERM");
      const end = await status;
      assert.equal(end.success, false);
      await child.stderr.cancel().catch(() => {});
    } finally {
      clearTimeout(timer);
      if (!exited) child.kill("SIGKILL");
      await status;
    }
  },
});

import assert from "node:assert/strict";
import {
  FAIL_ON_BLOCK_EXIT_CODE,
  renderBlockedSummary,
  renderGithubAnnotations,
  type ReportDecision,
  reportRun,
  type RunReport,
  summarizeDecisions,
} from "../run/report.ts";
import { runCommand, sandboxArgv, sandboxCli, tempDir } from "./cli_helpers.ts";

function event(
  host: string,
  port: number,
  decision: "allow" | "deny",
  reason = decision === "allow" ? "allowed" : "not_allowed",
  protocol = "http",
): ReportDecision {
  return { host, port, protocol, decision, reason };
}

const MIXED: ReportDecision[] = [
  event("b.test", 80, "deny"),
  event("a.test", 443, "allow", "allowed", "https-connect"),
  event("b.test", 8080, "deny"),
  event("a.test", 80, "allow"),
  event("10.0.0.1", 443, "deny", "not_allowed_local"),
  event("a.test", 443, "allow", "allowed", "https-connect"),
];

function capture() {
  const out = { stdout: "", stderr: "" };
  return {
    out,
    stdout: (text: string) => void (out.stdout += text),
    stderr: (text: string) => void (out.stderr += text),
  };
}

Deno.test("summarizeDecisions() groups blocks by host and reason and allows by host, sorted", () => {
  const summary = summarizeDecisions(MIXED);
  assert.deepEqual(summary.blocked, [
    { host: "10.0.0.1", reason: "not_allowed_local", ports: [443], count: 1 },
    { host: "b.test", reason: "not_allowed", ports: [80, 8080], count: 2 },
  ]);
  assert.deepEqual(summary.allowed, [
    { host: "a.test", ports: [80, 443], protocols: ["http", "https-connect"], count: 3 },
  ]);
});

Deno.test("renderBlockedSummary() names each blocked host, reason and count; empty when nothing blocked", () => {
  assert.equal(
    renderBlockedSummary(summarizeDecisions([event("a.test", 80, "allow")]).blocked),
    "",
  );
  const text = renderBlockedSummary(summarizeDecisions(MIXED).blocked);
  assert.match(text, /^sandbox: blocked 3 connections to 2 hosts:\n/);
  assert.match(text, /^ {2}b\.test:80,8080 +not_allowed: Domain not in allowlist +\(2 times\)$/m);
  assert.match(
    text,
    /^ {2}10\.0\.0\.1:443 +not_allowed_local: Sandbox policy blocks .* \(once\)$/m,
  );
  assert.match(text, /--allow HOST/);
});

Deno.test("renderGithubAnnotations() escapes workflow-command metacharacters", () => {
  const text = renderGithubAnnotations([
    { host: "x%y,z:1", reason: "not_allowed", ports: [80], count: 1 },
  ]);
  assert.equal(
    text,
    "::warning title=sandbox blocked x%25y%2Cz%3A1::Blocked x%25y,z:1 port 80 (not_allowed: Domain not in allowlist), once\n",
  );
});

Deno.test("reportRun() is silent and keeps the exit code when nothing was blocked", async () => {
  const io = capture();
  const code = await reportRun(
    { exitCode: 7, signal: null, durationMs: 12, decisions: [event("a.test", 80, "allow")] },
    { command: ["true"], failOnBlock: true, env: {}, stdout: io.stdout, stderr: io.stderr },
  );
  assert.equal(code, 7);
  assert.equal(io.out.stderr, "");
  assert.equal(io.out.stdout, "");
});

Deno.test("reportRun() --fail-on-block turns a zero exit into 3 and says why; a non-zero exit stays", async () => {
  const io = capture();
  const result = { exitCode: 0, signal: null, durationMs: 5, decisions: MIXED };
  const code = await reportRun(result, {
    command: ["curl", "b.test"],
    failOnBlock: true,
    env: {},
    stdout: io.stdout,
    stderr: io.stderr,
  });
  assert.equal(code, FAIL_ON_BLOCK_EXIT_CODE);
  assert.equal(FAIL_ON_BLOCK_EXIT_CODE, 3);
  assert.match(io.out.stderr, /exit code 3 instead of 0: --fail-on-block is set/);
  const without = await reportRun(result, { command: ["curl"], env: {}, stderr: () => {} });
  assert.equal(without, 0);
  const failing = await reportRun({ ...result, exitCode: 9 }, {
    command: ["curl"],
    failOnBlock: true,
    env: {},
    stderr: () => {},
  });
  assert.equal(failing, 9);
});

Deno.test("reportRun() under GitHub Actions writes annotations and appends a step summary table", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const file = `${dir}/summary.md`;
  await Deno.writeTextFile(file, "earlier step\n");
  const io = capture();
  const code = await reportRun(
    { exitCode: 0, signal: null, durationMs: 1500, decisions: MIXED },
    {
      command: ["npm", "ci"],
      env: { GITHUB_ACTIONS: "true", GITHUB_STEP_SUMMARY: file },
      stdout: io.stdout,
      stderr: io.stderr,
    },
  );
  assert.equal(code, 0);
  assert.equal(io.out.stdout, "", "annotations never go to stdout");
  const annotations = io.out.stderr.split("\n").filter((l) => l.startsWith("::"));
  assert.deepEqual(annotations, [
    "::warning title=sandbox blocked 10.0.0.1::Blocked 10.0.0.1 port 443 (not_allowed_local: Sandbox policy blocks local/private network addresses), once",
    "::warning title=sandbox blocked b.test::Blocked b.test port 80,8080 (not_allowed: Domain not in allowlist), 2 times",
  ]);
  const summary = await Deno.readTextFile(file);
  assert.ok(summary.startsWith("earlier step\n### sandbox: `npm ci`\n"), summary);
  assert.match(
    summary,
    /Exit code 0, 1\.5 s; 3 connections allowed to 1 host, 3 connections blocked\./,
  );
  assert.match(summary, /\| Blocked host \| Port \| Reason \| Count \|/);
  assert.match(
    summary,
    /^\| `b\.test` \| 80, 8080 \| not_allowed: Domain not in allowlist \| 2 \|$/m,
  );
  assert.match(summary, /^\| `10\.0\.0\.1` \| 443 \| not_allowed_local: .* \| 1 \|$/m);
  // The TOML that would admit the host no rule allowed (not the local address: an allow would not help).
  assert.match(
    summary,
    /```toml\n\[permissions\.NAME\.network\.domains\]\n"b\.test" = "allow"\n```/,
  );
  assert.doesNotMatch(summary, /"10\.0\.0\.1" = "allow"/);
});

Deno.test("renderGithubAnnotations() shows at most ten, the tenth rolling up the rest", () => {
  const blocked = Array.from({ length: 14 }, (_, i) => ({
    host: `h${String(i).padStart(2, "0")}.test`,
    ports: [443],
    reason: "not_allowed",
    count: 1,
  }));
  const lines = renderGithubAnnotations(blocked).trimEnd().split("\n");
  assert.equal(lines.length, 10);
  assert.match(lines[8], /Blocked h08\.test port 443/);
  assert.match(
    lines[9],
    /^::warning title=sandbox blocked more hosts::Blocked 5 more hosts \(h09\.test, h10\.test, h11\.test, h12\.test, h13\.test\): see the step summary$/,
  );
  assert.equal(renderGithubAnnotations(blocked.slice(0, 10)).trimEnd().split("\n").length, 10);
});

Deno.test("reportRun() writes nothing for GitHub unless GITHUB_ACTIONS is exactly true", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const file = `${dir}/summary.md`;
  const io = capture();
  await reportRun(
    { exitCode: 0, signal: null, durationMs: 1, decisions: MIXED },
    {
      command: ["x"],
      env: { GITHUB_ACTIONS: "1", GITHUB_STEP_SUMMARY: file },
      stdout: io.stdout,
      stderr: io.stderr,
    },
  );
  assert.equal(io.out.stdout, "");
  await assert.rejects(Deno.stat(file), Deno.errors.NotFound);
});

Deno.test("reportRun() --json prints one final report line with hosts and counts", async () => {
  const io = capture();
  const code = await reportRun(
    {
      exitCode: 0,
      signal: null,
      durationMs: 42.4,
      decisions: MIXED,
      verdict: { decision: "allow-network" },
    },
    {
      command: ["curl", "-s", "a.test"],
      json: true,
      failOnBlock: true,
      env: {},
      stdout: io.stdout,
      stderr: io.stderr,
    },
  );
  assert.equal(code, 3);
  const lines = io.out.stdout.trim().split("\n");
  assert.equal(lines.length, 1);
  const report = JSON.parse(lines[0]) as RunReport;
  assert.deepEqual(report, {
    command: ["curl", "-s", "a.test"],
    decision: "allow-network",
    exitCode: 3,
    commandExitCode: 0,
    signal: null,
    durationMs: 42,
    failedOnBlock: true,
    blocked: [
      { host: "10.0.0.1", reason: "not_allowed_local", ports: [443], count: 1 },
      { host: "b.test", reason: "not_allowed", ports: [80, 8080], count: 2 },
    ],
    allowed: [{ host: "a.test", ports: [80, 443], protocols: ["http", "https-connect"], count: 3 }],
    wouldBlock: [],
  });
});

Deno.test("reportRun() says on stderr when the step summary cannot be written, keeping the code", async () => {
  const io = capture();
  const code = await reportRun(
    { exitCode: 0, signal: null, durationMs: 1, decisions: MIXED },
    {
      command: ["x"],
      env: { GITHUB_ACTIONS: "true", GITHUB_STEP_SUMMARY: "/nonexistent-dir/for/summary.md" },
      stdout: io.stdout,
      stderr: io.stderr,
    },
  );
  assert.equal(code, 0);
  assert.match(
    io.out.stderr,
    /Cannot append to GITHUB_STEP_SUMMARY "\/nonexistent-dir\/for\/summary\.md"/,
  );
});

// ---- end to end: sandbox run under GitHub Actions, with --fail-on-block ----

Deno.test("sandbox run under GITHUB_ACTIONS annotates and summarizes a block; --fail-on-block exits 3", async () => {
  const serve = () =>
    Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => new Response("ok\n"));
  const a = serve();
  const b = serve();
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/managed.toml`, "");
    const summaryFile = `${dir}/step_summary.md`;
    const env = {
      SANDBOX_MANAGED_CONFIG: `${dir}/managed.toml`,
      XDG_CONFIG_HOME: `${dir}/xdg`,
      GITHUB_ACTIONS: "true",
      GITHUB_STEP_SUMMARY: summaryFile,
    };
    // curl without -f: the command itself succeeds even though b.test is refused.
    const script =
      `curl -sS -o /dev/null http://a.test:${a.addr.port}/ && curl -sS -o /dev/null http://b.test:${b.addr.port}/`;
    const run = (extra: string[]) =>
      sandboxCli([
        "run",
        "--allow",
        "a.test",
        "--resolve",
        "a.test=127.0.0.1",
        "--resolve",
        "b.test=127.0.0.1",
        ...extra,
        "--",
        "sh",
        "-c",
        script,
      ], { env, unset: ["CI"], sandboxBin: true, timeoutMs: 60_000 });

    const plain = await run([]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout, "", "nothing of ours on the command's stdout");
    assert.ok(
      plain.stderr.includes(
        `::warning title=sandbox blocked b.test::Blocked b.test port ${b.addr.port} (not_allowed: Domain not in allowlist), once\n`,
      ),
      plain.stderr,
    );
    assert.match(
      plain.stderr,
      new RegExp(
        `^  b\\.test:${b.addr.port} +not_allowed: Domain not in allowlist +\\(once\\)$`,
        "m",
      ),
    );
    const summary = await Deno.readTextFile(summaryFile);
    assert.match(summary, /^### sandbox: `sh -c curl /m);
    assert.match(
      summary,
      /Exit code 0, [0-9.]+ s; 1 connection allowed to 1 host, 1 connection blocked\./,
    );
    assert.match(
      summary,
      new RegExp(
        `^\\| \`b\\.test\` \\| ${b.addr.port} \\| not_allowed: Domain not in allowlist \\| 1 \\|$`,
        "m",
      ),
    );

    const failing = await run(["--fail-on-block", "--json"]);
    assert.equal(failing.code, 3, failing.stderr);
    assert.match(
      failing.stderr,
      /exit code 3 instead of 0: --fail-on-block is set and the proxy blocked 1 connection/,
    );
    const lines = failing.stdout.trim().split("\n");
    const report = JSON.parse(lines.at(-1)!);
    assert.equal(report.exitCode, 3);
    assert.equal(report.commandExitCode, 0);
    assert.equal(report.failedOnBlock, true);
    assert.equal(report.decision, "allow-network");
    assert.deepEqual(report.blocked, [{
      host: "b.test",
      reason: "not_allowed",
      ports: [b.addr.port],
      count: 1,
    }]);
    assert.deepEqual(report.allowed, [{
      host: "a.test",
      ports: [a.addr.port],
      protocols: ["http"],
      count: 1,
    }]);
    // Both runs appended their own section to the step summary.
    assert.equal((await Deno.readTextFile(summaryFile)).match(/^### sandbox:/gm)?.length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await a.shutdown();
    await b.shutdown();
  }
});

/**
 * The runner's reading of workflow commands, as its ActionCommandManager
 * does it (one state for stdout and stderr): `::stop-commands::T` pauses
 * every command until a line `::T::`. Returns the commands it would act on.
 */
function runnerCommands(lines: readonly string[]): string[] {
  const acted: string[] = [];
  let stopToken: string | null = null;
  for (const line of lines) {
    const m = /^::([^ :]+)(?: [^:]*)?::(.*)$/.exec(line);
    if (m === null) continue;
    if (stopToken !== null) {
      if (m[1] === stopToken) stopToken = null;
      continue;
    }
    if (m[1] === "stop-commands") stopToken = m[2];
    else acted.push(line);
  }
  return acted;
}

Deno.test("sandbox run under GITHUB_ACTIONS: stdout is the command's alone, and its ::error:: lines are fenced off", async () => {
  await using tmp = await tempDir("gha-");
  const summaryFile = `${tmp.path}/step_summary.md`;
  await Deno.writeTextFile(`${tmp.path}/managed.toml`, "");
  const env = {
    SANDBOX_MANAGED_CONFIG: `${tmp.path}/managed.toml`,
    XDG_CONFIG_HOME: `${tmp.path}/xdg`,
    GITHUB_ACTIONS: "true",
    GITHUB_STEP_SUMMARY: summaryFile,
  };
  const script = "echo payload; curl -s -o /dev/null http://other.test/; " +
    "echo '::error::x'; echo '::add-mask::secret' >&2; env | grep -c sandbox- || true";
  const separate = await sandboxCli(["run", "--", "sh", "-c", script], {
    env,
    unset: ["CI"],
    cwd: tmp.path,
    timeoutMs: 60_000,
  });
  assert.equal(separate.code, 0, separate.stderr);
  // The command's own lines, and nothing of ours, on stdout ("0": no fence token in its environment).
  assert.equal(separate.stdout, "payload\n::error::x\n0\n");
  const warnings = separate.stderr.split("\n").filter((l) => l.startsWith("::warning"));
  assert.equal(warnings.length, 1, separate.stderr);
  assert.match(warnings[0], /Blocked other\.test port 80/);
  const summary = await Deno.readTextFile(summaryFile);
  assert.match(
    summary,
    /```toml\n\[permissions\.NAME\.network\.domains\]\n"other\.test" = "allow"\n```/,
  );

  // Both streams into one pipe, in the order written: the runner acts on our
  // warning and on none of the command's workflow commands.
  const merged = await runCommand(
    ["/bin/sh", "-c", 'exec "$@" 2>&1', "sh", ...sandboxArgv(["run", "--", "sh", "-c", script])],
    { env, unset: ["CI"], cwd: tmp.path, timeoutMs: 60_000 },
  );
  assert.equal(merged.code, 0, merged.stdout);
  const acted = runnerCommands(merged.stdout.split("\n"));
  assert.deepEqual(acted.map((l) => l.slice(0, 30)), ["::warning title=sandbox blocke"]);
  // Without the fence the same output would have raised the error and added the mask.
  assert.equal(runnerCommands(["payload", "::error::x", "::add-mask::secret"]).length, 2);
  // A fresh token every run.
  const tokens = [separate.stderr, merged.stdout].map((t) => /::stop-commands::(\S+)/.exec(t)?.[1]);
  assert.ok(tokens[0] && tokens[1] && tokens[0] !== tokens[1]);
});

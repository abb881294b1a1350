import assert from "node:assert/strict";
import { SandboxError } from "../errors.ts";
import {
  buildSandboxExecArgv,
  canonicalizePlanForMacos,
  formatSeatbeltDryRun,
  parseSandboxDenial,
  runOnMacos,
  SANDBOX_EXEC,
} from "./macos.ts";
import type { SandboxPlan } from "./plan.ts";
import { renderSeatbeltProfile } from "./seatbelt.ts";
import { checkSeatbeltProfile } from "./seatbelt_check.ts";

function plan(changes: Partial<SandboxPlan> = {}): SandboxPlan {
  return {
    argv: ["git", "status", "--short"],
    cwd: "/Users/dev/repo",
    env: { PATH: "/usr/bin:/bin" },
    network: { kind: "proxy", httpPort: 40001, socksPort: 40002, proxySocket: null },
    unixSockets: { kind: "allowlist", paths: ["/Users/dev/.ssh/agent.sock"] },
    writable: ["/Users/dev/.cache"],
    denyRead: [],
    extraBinds: [],
    runDir: "/private/tmp/sandbox-run",
    ...changes,
  };
}

Deno.test("buildSandboxExecArgv() is sandbox-exec -p PROFILE -D… -- argv", () => {
  const p = plan();
  const argv = buildSandboxExecArgv(p);
  const { profile, params } = renderSeatbeltProfile(p);
  assert.deepEqual(argv, [
    "/usr/bin/sandbox-exec",
    "-p",
    profile,
    "-DCWD=/Users/dev/repo",
    "-DWRITABLE_0=/Users/dev/.cache",
    "-DTMP_0=/private/tmp",
    "-DTMP_0_ALIAS=/tmp",
    "-DRUN_DIR=/private/tmp/sandbox-run",
    "-DRUN_DIR_ALIAS=/tmp/sandbox-run",
    "-DUNIX_SOCKET_0=/Users/dev/.ssh/agent.sock",
    "--",
    "git",
    "status",
    "--short",
  ]);
  assert.equal(SANDBOX_EXEC, argv[0]);
  assert.deepEqual(checkSeatbeltProfile(argv[2], params), []);
});

Deno.test("buildSandboxExecArgv() keeps a dash-named command after --", () => {
  const argv = buildSandboxExecArgv(plan({ argv: ["-p", "--", "x"] }));
  assert.deepEqual(argv.slice(-4), ["--", "-p", "--", "x"]);
  assert.equal(argv.filter((a) => a === "/usr/bin/sandbox-exec").length, 1);
});

Deno.test("buildSandboxExecArgv() passes odd values through verbatim, split at the first =", () => {
  const odd = '/Users/dev/a=b "c" (d)';
  const argv = buildSandboxExecArgv(plan({ writable: [odd] }));
  assert.ok(argv.includes(`-DWRITABLE_0=${odd}`));
  assert.ok(!argv[2].includes(odd));
});

Deno.test("buildSandboxExecArgv() refuses an empty argv and a bad plan", () => {
  assert.throws(
    () => buildSandboxExecArgv(plan({ argv: [] })),
    (e) => e instanceof SandboxError && e.code === "sandbox_failed",
  );
  assert.throws(
    () => buildSandboxExecArgv(plan({ cwd: "relative" })),
    (e) => e instanceof SandboxError && e.code === "sandbox_failed",
  );
});

Deno.test("formatSeatbeltDryRun() shows the profile, each parameter and the command", () => {
  const text = formatSeatbeltDryRun(plan());
  assert.ok(text.includes("\n(version 1)\n"));
  assert.ok(text.includes('(remote ip "localhost:40001")'));
  assert.ok(text.includes("\n-DUNIX_SOCKET_0=/Users/dev/.ssh/agent.sock\n"));
  assert.ok(text.endsWith('["git","status","--short"]\n'));
});

Deno.test("parseSandboxDenial() reads plain and ndjson denial lines", () => {
  assert.deepEqual(
    parseSandboxDenial(
      "2024-05-01 10:00:00.1 Df kernel[0:1a2] (Sandbox) Sandbox: curl(812) deny(1) network-outbound 93.184.216.34:443",
    ),
    {
      process: "curl",
      pid: 812,
      operation: "network-outbound",
      target: "93.184.216.34:443",
      message: "2024-05-01 10:00:00.1 Df kernel[0:1a2] (Sandbox) Sandbox: curl(812) deny(1) " +
        "network-outbound 93.184.216.34:443",
    },
  );
  const json = JSON.stringify({
    processID: 0,
    eventMessage:
      "Sandbox: node (worker)(4242) deny(1) file-write-create /Users/dev/x y\nsandbox_run_ab",
  });
  const v = parseSandboxDenial(json);
  assert.equal(v?.process, "node (worker)");
  assert.equal(v?.pid, 4242);
  assert.equal(v?.operation, "file-write-create");
  assert.equal(v?.target, "/Users/dev/x y");
  assert.equal(parseSandboxDenial('Filtering the log data using "sender == \\"Sandbox\\""'), null);
  assert.equal(parseSandboxDenial('{"eventMessage": 3}'), null);
  assert.equal(parseSandboxDenial("{not json"), null);
  assert.equal(parseSandboxDenial("Sandbox: sh(1) allow(1) file-read-data /etc"), null);
});

Deno.test("canonicalizePlanForMacos() resolves symlinks and keeps missing tails", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    await Deno.mkdir(`${dir}/real`);
    await Deno.symlink(`${dir}/real`, `${dir}/link`);
    const p = plan({
      cwd: `${dir}/link`,
      writable: [`${dir}/link/not/yet`],
      denyRead: [`${dir}/real`],
      unixSockets: { kind: "allowlist", paths: [`${dir}/link/agent.sock`] },
      env: { TMPDIR: `${dir}/link/` },
      runDir: `${dir}/link/run`,
    });
    const real = await canonicalizePlanForMacos(p);
    assert.equal(real.cwd, `${dir}/real`);
    assert.deepEqual(real.writable, [`${dir}/real/not/yet`]);
    assert.deepEqual(real.denyRead, [`${dir}/real`]);
    assert.deepEqual(real.unixSockets, { kind: "allowlist", paths: [`${dir}/real/agent.sock`] });
    assert.equal(real.env.TMPDIR, `${dir}/real`);
    assert.equal(real.runDir, `${dir}/real/run`);
    assert.deepEqual(real.argv, p.argv);
    assert.equal(p.cwd, `${dir}/link`, "the input plan is not changed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "runOnMacos() refuses to run anywhere but macOS",
  ignore: Deno.build.os === "darwin",
  fn: async () => {
    await assert.rejects(
      () => runOnMacos(plan()),
      (e) =>
        e instanceof SandboxError && e.code === "sandbox_failed" &&
        e.message.includes("sandbox-exec exists only on macOS"),
    );
  },
});

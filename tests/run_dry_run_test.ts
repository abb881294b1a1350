/**
 * `sandbox run --dry-run` shows the plan a real run would use. These tests
 * hold it to that for the run directory (where the proxy socket lives):
 * a real run makes it under /tmp whatever `TMPDIR` says, and the dry run
 * must show the same parent, or its masks and binds describe another run.
 */
import assert from "node:assert/strict";
import { MAIN, onPath, sandboxCli, tempDir } from "./cli_helpers.ts";
import { childrenOf, eventually } from "./run_helpers.ts";

const LINUX = Deno.build.os === "linux" && onPath("bwrap");
const ARGS = ["--allow", "allowed.test"];

function parent(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/** The run dir of the launcher `pid`: bwrap binds the sandbox's resolv.conf from it. */
function childRunDir(pid: number): string | null {
  for (const child of childrenOf(pid)) {
    const inRunDir = child.argv.find((arg) => /\/sandbox-run-[^/]+\/[^/]+$/.test(arg));
    if (inRunDir !== undefined) return parent(inRunDir);
  }
  return null;
}

Deno.test("sandbox run --dry-run: the run dir is in the per-user base even when TMPDIR points elsewhere", async () => {
  await using tmp = await tempDir();
  const result = await sandboxCli(["run", "--dry-run", "--json", ...ARGS, "--", "true"], {
    env: { TMPDIR: tmp.path, XDG_CONFIG_HOME: "/nonexistent-sandbox-dry-run-config" },
  });
  assert.equal(result.code, 0, result.stderr);
  const plan = JSON.parse(result.stdout);
  const socket: string = plan.network.proxySocket;
  assert.match(socket, /^(\/tmp\/sandbox-[0-9]+|.+\/sandbox)\/sandbox-run-XXXXXX\/proxy\.sock$/);
  assert.ok(!result.stdout.includes(tmp.path + "/sandbox-run-"), "a run dir under TMPDIR");
});

Deno.test({
  name: "sandbox run --dry-run: the plan's run dir has the same parent as a real run's",
  ignore: !LINUX,
  async fn() {
    await using tmp = await tempDir();
    const env = { TMPDIR: tmp.path, XDG_CONFIG_HOME: "/nonexistent-sandbox-dry-run-config" };
    const dry = await sandboxCli(["run", "--dry-run", "--json", ...ARGS, "--", "true"], { env });
    assert.equal(dry.code, 0, dry.stderr);
    const planned = parent(parent(JSON.parse(dry.stdout).network.proxySocket));

    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "run", ...ARGS, "--", "sh", "-c", "echo started; read go"],
      env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdin = child.stdin.getWriter();
    let real: string | null = null;
    let output: Deno.CommandOutput;
    try {
      real = await eventually("the real run's bwrap", () => childRunDir(child.pid), 30_000);
    } finally {
      await stdin.write(new TextEncoder().encode("go\n")).catch(() => {});
      await stdin.close().catch(() => {});
      output = await child.output();
    }
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.match(real, /\/sandbox-run-[^/]+$/);
    assert.equal(planned, parent(real));
  },
});

Deno.test("sandbox run --dry-run names the captured ports and the literal addresses rules name", async () => {
  const args = [
    "run",
    "--dry-run",
    "--allow",
    "203.0.113.7:5432",
    "--allow",
    "tls://registry.example:8443",
    "--allow",
    "127.0.0.1:9000",
    "--",
    "true",
  ];
  const env = { XDG_CONFIG_HOME: "/nonexistent-sandbox-dry-run-config" };
  const text = await sandboxCli(args, { env });
  assert.equal(text.code, 0, text.stderr);
  assert.match(
    text.stdout,
    /\ncapture: ports 80, 443, 5432, 8443, 9000 of every looked-up name and of 203\.0\.113\.7 \(/,
  );
  const json = await sandboxCli([...args.slice(0, 2), "--json", ...args.slice(2)], { env });
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout).network.capture.addresses, ["203.0.113.7"]);
  const off = await sandboxCli(["run", "--dry-run", "--no-capture", ...ARGS, "--", "true"], {
    env,
  });
  assert.equal(off.code, 0, off.stderr);
  assert.doesNotMatch(off.stdout, /\ncapture:/);
});

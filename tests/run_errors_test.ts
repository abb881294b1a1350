/**
 * Small run-side errors, each with a clear message: `--log` into a missing
 * directory is a usage error before anything runs (not "Internal error"
 * with a stack); the `--json` report starts on a line of its own when the
 * command's output did not end with a newline (pipe and file); a command
 * with network that fails without a single connection through the proxy is
 * told it probably bypassed the proxy (Node 20's fetch: EAI_AGAIN).
 */
import assert from "node:assert/strict";
import { runCommand, sandboxArgv, sandboxCli } from "./cli_helpers.ts";
import { hasProgram } from "./run_helpers.ts";

const READY = hasProgram("/usr/bin/bwrap");

Deno.test("sandbox run --log into a missing directory: exit 2, what was wrong, no stack, nothing run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "run-log-" });
  try {
    const result = await sandboxCli([
      "run",
      "--log",
      `${dir}/missing/decisions.jsonl`,
      "--",
      "sh",
      "-c",
      `touch ${dir}/ran`,
    ]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `Cannot write the decision log "${dir}/missing/decisions\\.jsonl": the directory "${dir}/missing" does not exist: create it`,
      ),
    );
    assert.doesNotMatch(result.stderr, /Internal error|^\s+at /m);
    assert.equal(await exists(`${dir}/ran`), false, "nothing ran");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "sandbox run --json: the report is a line of its own after output without a newline",
  ignore: !READY,
  async fn() {
    const piped = await sandboxCli(["run", "--json", "--", "printf", "no-newline"]);
    assert.equal(piped.code, 0, piped.stderr);
    const lines = piped.stdout.split("\n");
    assert.equal(lines[0], "no-newline");
    assert.equal(JSON.parse(lines[1]).exitCode, 0);

    const dir = await Deno.makeTempDir({ prefix: "run-json-" });
    try {
      // To a file: the launcher sees the last byte, and adds a line break only when needed.
      for (const [text, expected] of [["no-newline", "no-newline\n"], ["line\\n", "line\n"]]) {
        const out = `${dir}/out.txt`;
        const result = await runCommand([
          "sh",
          "-c",
          'out="$1"; shift; exec "$@" > "$out"',
          "sh",
          out,
          ...sandboxArgv(["run", "--json", "--", "printf", text]),
        ]);
        assert.equal(result.code, 0, result.stderr);
        const written = await Deno.readTextFile(out);
        assert.ok(written.startsWith(expected + "{"), JSON.stringify(written));
        assert.equal(JSON.parse(written.slice(expected.length)).exitCode, 0);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "sandbox run: a command with network that fails without any connection through the proxy is told it may have bypassed it",
  ignore: !READY,
  async fn() {
    const failed = await sandboxCli(["run", "--allow", "example.test", "--", "sh", "-c", "exit 3"]);
    assert.equal(failed.code, 3);
    assert.match(
      failed.stderr,
      /sandbox: the command exited 3 and made no connection through the proxy: .*bypassing the proxy \(Node 20's fetch fails so with EAI_AGAIN/,
    );
    // Not said when the command succeeded, or had no network to begin with.
    const ok = await sandboxCli(["run", "--allow", "example.test", "--", "true"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.doesNotMatch(ok.stderr, /made no connection/);
  },
});

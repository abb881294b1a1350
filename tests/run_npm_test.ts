/**
 * A real client under `sandbox run`: `npm ci` of a one-package project,
 * allowed through the registry host that `npm config get registry` names
 * at run time, and the same run failing with a blocked-host summary when
 * that host is not allowed. Skipped (with a message) when npm or the
 * registry is not reachable.
 */
import assert from "node:assert/strict";
import { npmRegistry } from "./npm_helpers.ts";
import { sandboxCli } from "./run_helpers.ts";

const REGISTRY = await npmRegistry("run_npm_test");

Deno.test({
  name:
    "sandbox run: npm ci succeeds with the registry allowed and fails with a blocked-host summary without",
  ignore: REGISTRY === null,
  async fn() {
    const registry = REGISTRY!;
    const dir = await Deno.makeTempDir({ prefix: "run-npm-" });
    try {
      await Deno.writeTextFile(
        `${dir}/package.json`,
        JSON.stringify({ name: "e2e", version: "1.0.0", dependencies: { "is-number": "7.0.0" } }),
      );
      // The lockfile is made on the host (outside the sandbox) with its own cache.
      const lock = await new Deno.Command("npm", {
        args: [
          "install",
          "--package-lock-only",
          "--ignore-scripts",
          "--cache",
          `${dir}/.host-cache`,
        ],
        cwd: dir,
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(lock.code, 0, new TextDecoder().decode(lock.stderr));
      await Deno.remove(`${dir}/.host-cache`, { recursive: true });
      const npmFlags = ["--cache", "./.npm-cache", "--fetch-retries=0", "--no-audit", "--no-fund"];

      const blocked = await sandboxCli(["run", "--", "npm", "ci", ...npmFlags], {
        cwd: dir,
        timeoutMs: 120_000,
      });
      assert.notEqual(blocked.code, 0);
      assert.ok(
        blocked.stderr.includes(registry.hostname),
        `the summary names ${registry.hostname}:\n${blocked.stderr}`,
      );
      assert.match(blocked.stderr, /not_allowed/);
      // Said when it happened: the live line comes before npm's own failure and the summary.
      const live = `sandbox: blocked CONNECT ${registry.hostname}:443 not_allowed ` +
        `(add --allow ${registry.hostname})\n`;
      const liveAt = blocked.stderr.indexOf(live);
      assert.ok(liveAt >= 0, `the live line:\n${blocked.stderr}`);
      assert.equal(blocked.stderr.indexOf(live, liveAt + 1), -1, "said once per host and reason");
      const npmErrorAt = blocked.stderr.search(/^npm (error|ERR!)/m);
      assert.ok(npmErrorAt === -1 || liveAt < npmErrorAt, blocked.stderr);
      assert.ok(liveAt < blocked.stderr.indexOf("sandbox: blocked 1"), blocked.stderr);

      // --fail-fast: npm's default retries would go on; the run ends at the first block, exit 3.
      const fast = await sandboxCli(
        ["run", "--fail-fast", "--json", "--", "npm", "ci", "--cache", "./.npm-cache"],
        { cwd: dir, timeoutMs: 120_000 },
      );
      assert.equal(fast.code, 3, fast.stderr);
      assert.ok(fast.stderr.includes(live), fast.stderr);
      assert.match(
        fast.stderr,
        /exit code 3: --fail-fast ended the run at the first blocked connection/,
      );
      const report = JSON.parse(fast.stdout.trim().split("\n").at(-1)!);
      assert.equal(report.exitCode, 3);
      assert.equal(report.failedOnBlock, true);

      const allowed = await sandboxCli([
        "run",
        "--allow",
        registry.hostname,
        "--",
        "npm",
        "ci",
        ...npmFlags,
      ], { cwd: dir, timeoutMs: 120_000 });
      assert.equal(allowed.code, 0, allowed.stderr);
      const pkg = JSON.parse(
        await Deno.readTextFile(`${dir}/node_modules/is-number/package.json`),
      );
      assert.equal(pkg.version, "7.0.0");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

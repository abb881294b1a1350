/**
 * A real client under `sandbox run`: `npm ci` of a one-package project,
 * allowed through the registry host that `npm config get registry` names
 * at run time, and the same run failing with a blocked-host summary when
 * that host is not allowed. Skipped (with a message) when npm or the
 * registry is not reachable.
 */
import assert from "node:assert/strict";
import { hasProgram, sandboxCli } from "./run_helpers.ts";

async function registry(): Promise<URL | null> {
  if (!hasProgram("/usr/bin/bwrap")) return null;
  try {
    const out = await new Deno.Command("npm", {
      args: ["config", "get", "registry"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const url = new URL(new TextDecoder().decode(out.stdout).trim());
    const ping = await fetch(new URL("-/ping", url), { signal: AbortSignal.timeout(5_000) });
    await ping.body?.cancel();
    return ping.ok ? url : null;
  } catch {
    return null;
  }
}

const REGISTRY = await registry();
if (REGISTRY === null) {
  console.error("run_npm_test: skipped: npm, bwrap or the npm registry is not reachable here");
}

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

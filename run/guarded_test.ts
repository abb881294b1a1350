import assert from "node:assert/strict";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { selfInvocation } from "../self.ts";
import { guardedPaths } from "./guarded.ts";

const CONFIG = await loadEffectiveConfig({}, { env: { HOME: "/nonexistent" }, cwd: "/" });

Deno.test("guardedPaths() protects written and loaded files and the installation, hides the CA", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "guarded_test_" }));
  try {
    await Deno.writeTextFile(`${dir}/profile.toml`, "");
    await Deno.writeTextFile(`${dir}/github_env`, "");
    const config = { ...CONFIG, files: [`${dir}/profile.toml`] };
    const { protect, hide } = guardedPaths(config, {
      env: { HOME: `${dir}/home`, GITHUB_ENV: `${dir}/github_env`, GITHUB_PATH: "relative" },
      cwd: dir,
      logFile: "decisions.jsonl",
      caDir: "ca",
    });
    for (const path of [`${dir}/profile.toml`, `${dir}/github_env`, `${dir}/decisions.jsonl`]) {
      assert.ok(protect.includes(path), path);
    }
    for (const path of selfInvocation().readPaths) {
      assert.ok(protect.includes(await Deno.realPath(path)), path);
    }
    assert.deepEqual(hide, [`${dir}/ca`, `${dir}/home/.config/sandbox/ca`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("guardedPaths() refuses a log or config path through a symlink in a writable area", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "guarded_test_" }));
  try {
    await Deno.mkdir(`${dir}/elsewhere`);
    await Deno.mkdir(`${dir}/work`);
    await Deno.symlink(`${dir}/elsewhere`, `${dir}/work/logs`);
    assert.throws(
      () => guardedPaths(CONFIG, { env: {}, cwd: `${dir}/work`, logFile: "logs/d.jsonl" }),
      (error: Error & { code?: string }) =>
        error.code === "sandbox_failed" &&
        error.message.startsWith(
          `Cannot use "${dir}/work/logs/d.jsonl": "${dir}/work/logs" is a symlink inside a directory the sandbox can write`,
        ),
    );
    // Outside the writable areas, a symlink is the user's own and is followed.
    const ok = guardedPaths(CONFIG, {
      env: {},
      cwd: `${dir}/elsewhere`,
      logFile: `${dir}/work/logs/d.jsonl`,
    });
    assert.ok(ok.protect.includes(`${dir}/elsewhere/d.jsonl`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

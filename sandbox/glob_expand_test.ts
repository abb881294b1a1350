import assert from "node:assert/strict";
import { expandDenyGlobs } from "./glob_expand.ts";

Deno.test("expandDenyGlobs() finds matches at every depth, dot files included, and nothing else", async () => {
  const dir = await Deno.makeTempDir({ prefix: "glob_expand_" });
  try {
    for (
      const file of [".env", "a/prod.env", "a/b/c/.env", "a/b/keep.txt", "x.env.bak", "k/id1.pem"]
    ) {
      await Deno.mkdir(`${dir}/${file.split("/").slice(0, -1).join("/")}`, { recursive: true });
      await Deno.writeTextFile(`${dir}/${file}`, "s");
    }
    await Deno.symlink(`${dir}/a`, `${dir}/link`);
    assert.deepEqual(expandDenyGlobs([`${dir}/**/*.env`]), [
      `${dir}/.env`,
      `${dir}/a/b/c/.env`,
      `${dir}/a/prod.env`,
    ]);
    // The depth limit stops ** (Codex's glob_scan_max_depth).
    assert.deepEqual(expandDenyGlobs([`${dir}/**/*.env`], { maxDepth: 1 }), [
      `${dir}/.env`,
      `${dir}/a/prod.env`,
    ]);
    assert.deepEqual(expandDenyGlobs([`${dir}/?.env.*`, `${dir}/k/id[0-9].pem`]), [
      `${dir}/k/id1.pem`,
      `${dir}/x.env.bak`,
    ]);
    assert.deepEqual(expandDenyGlobs([`${dir}/a/b`]), [`${dir}/a/b`]);
    assert.deepEqual(expandDenyGlobs([`${dir}/nothing/**/*.env`]), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

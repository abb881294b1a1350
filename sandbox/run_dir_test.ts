import assert from "node:assert/strict";
import { createRunDir, runDirPlaceholder, sweepStaleRunDirs } from "./run_dir.ts";

Deno.test("createRunDir() makes a private dir with an owner stamp and removes it on dispose", async () => {
  const base = await Deno.makeTempDir();
  try {
    let path = "";
    {
      await using dir = await createRunDir({ base });
      path = dir.path;
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o700);
      assert.match(await Deno.readTextFile(`${path}/owner`), new RegExp(`^${Deno.pid} \\d+$`));
    }
    await assert.rejects(() => Deno.stat(path));
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("sweepStaleRunDirs() removes dirs whose owner is gone and keeps live ones", async () => {
  const base = await Deno.makeTempDir();
  try {
    await using live = await createRunDir({ base });
    // A process that has exited: its pid is free (or reused with another start time).
    const gone = await new Deno.Command("true").spawn();
    await gone.status;
    await Deno.mkdir(`${base}/sandbox-run-dead`);
    await Deno.writeTextFile(`${base}/sandbox-run-dead/owner`, `${gone.pid} 1`);
    await Deno.mkdir(`${base}/sandbox-run-reused`);
    await Deno.writeTextFile(`${base}/sandbox-run-reused/owner`, `${Deno.pid} 1`);
    await Deno.mkdir(`${base}/other-dir`);
    const removed = await sweepStaleRunDirs({ base });
    assert.deepEqual(removed.sort(), [`${base}/sandbox-run-dead`, `${base}/sandbox-run-reused`]);
    assert.ok((await Deno.stat(live.path)).isDirectory);
    assert.ok((await Deno.stat(`${base}/other-dir`)).isDirectory);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("runDirPlaceholder() names the parent createRunDir() uses by default, and a given base", async () => {
  const placeholder = runDirPlaceholder();
  assert.match(placeholder, /\/sandbox-run-XXXXXX$/);
  {
    await using dir = await createRunDir();
    assert.equal(
      dir.path.slice(0, dir.path.lastIndexOf("/")),
      placeholder.slice(0, placeholder.lastIndexOf("/")),
    );
  }
  assert.equal(runDirPlaceholder({ base: "/var/x" }), "/var/x/sandbox-run-XXXXXX");
});

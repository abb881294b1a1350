import assert from "node:assert/strict";
import {
  createRunDir,
  ensurePrivateDir,
  runDirBase,
  runDirPlaceholder,
  sweepStaleRunDirs,
} from "./run_dir.ts";

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

Deno.test("runDirBase() takes a private XDG_RUNTIME_DIR, else a per-user dir under /tmp", async () => {
  const uid = Deno.uid() ?? 0;
  const xdg = await Deno.makeTempDir();
  try {
    await Deno.chmod(xdg, 0o700);
    assert.equal(runDirBase({ XDG_RUNTIME_DIR: xdg }, uid), `${xdg}/sandbox`);
    assert.equal(runDirBase({}, uid), `/tmp/sandbox-${uid}`);
    assert.equal(runDirBase({ XDG_RUNTIME_DIR: "relative" }, uid), `/tmp/sandbox-${uid}`);
    // Someone else's, or open to others: not a place for the proxy socket.
    assert.equal(runDirBase({ XDG_RUNTIME_DIR: xdg }, uid + 1), `/tmp/sandbox-${uid + 1}`);
    await Deno.chmod(xdg, 0o755);
    assert.equal(runDirBase({ XDG_RUNTIME_DIR: xdg }, uid), `/tmp/sandbox-${uid}`);
  } finally {
    await Deno.remove(xdg, { recursive: true });
  }
});

Deno.test("ensurePrivateDir() creates the base 0700 and refuses one that is not private", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const base = `${parent}/base`;
    ensurePrivateDir(base);
    assert.equal((await Deno.lstat(base)).mode! & 0o777, 0o700);
    ensurePrivateDir(base); // again: fine
    await Deno.chmod(base, 0o755);
    assert.throws(() => ensurePrivateDir(base), /"[^"]+\/base".*has mode 755, not 700/);
    await Deno.remove(base);
    await Deno.mkdir(`${parent}/elsewhere`, { mode: 0o700 });
    await Deno.symlink(`${parent}/elsewhere`, base);
    assert.throws(() => ensurePrivateDir(base), /it is a symlink/);
    await Deno.remove(base);
    await Deno.writeTextFile(base, "");
    assert.throws(() => ensurePrivateDir(base), /it is not a directory/);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("sweepStaleRunDirs() never opens a FIFO or follows a symlink planted as an owner file", async () => {
  const base = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${base}/sandbox-run-fifo`);
    const made = await new Deno.Command("mkfifo", { args: [`${base}/sandbox-run-fifo/owner`] })
      .output();
    assert.ok(made.success);
    await Deno.mkdir(`${base}/sandbox-run-link`);
    await Deno.symlink("/proc/self/status", `${base}/sandbox-run-link/owner`);
    // Would block forever if the sweep opened the FIFO; the test runner's timeout would catch it.
    const removed = await sweepStaleRunDirs({ base });
    assert.deepEqual(removed.sort(), [`${base}/sandbox-run-fifo`, `${base}/sandbox-run-link`]);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("sweepStaleRunDirs() in another process never removes a live run dir being created", async () => {
  const base = await Deno.makeTempDir({ prefix: "run-dir-race-" });
  await Deno.chmod(base, 0o700);
  const module = new URL("./run_dir.ts", import.meta.url).href;
  const sweeper = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { sweepStaleRunDirs } from ${JSON.stringify(module)};
       const end = Date.now() + 8000;
       while (Date.now() < end) await sweepStaleRunDirs({ base: ${JSON.stringify(base)} });`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the sweeper is up
    let lost = 0;
    for (let i = 0; i < 400; i++) {
      await using dir = await createRunDir({ base });
      try {
        await Deno.stat(`${dir.path}/owner`);
      } catch {
        lost++;
      }
    }
    assert.equal(lost, 0, "a live run dir was swept away");
  } finally {
    sweeper.kill();
    await sweeper.status;
    await Deno.remove(base, { recursive: true });
  }
});

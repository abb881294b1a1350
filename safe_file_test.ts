import assert from "node:assert/strict";
import { openNoFollow, writeTextNoFollow } from "./safe_file.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "safe_file_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("openNoFollow() creates a missing file and appends to a regular one", async () => {
  await withDir(async (dir) => {
    writeTextNoFollow(`${dir}/log`, "a\n", { append: true });
    writeTextNoFollow(`${dir}/log`, "b\n", { append: true });
    assert.equal(await Deno.readTextFile(`${dir}/log`), "a\nb\n");
    assert.equal((await Deno.stat(`${dir}/log`)).mode! & 0o777, 0o600);
    writeTextNoFollow(`${dir}/log`, "c\n", { truncate: true });
    assert.equal(await Deno.readTextFile(`${dir}/log`), "c\n");
  });
});

Deno.test("openNoFollow() never writes through a symlink, dangling or not", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/victim`, "keep\n");
    await Deno.symlink(`${dir}/victim`, `${dir}/log`);
    await Deno.symlink(`${dir}/created-through-link`, `${dir}/dangling`);
    for (const name of ["log", "dangling"]) {
      assert.throws(
        () => writeTextNoFollow(`${dir}/${name}`, "x\n", { append: true, what: "decision log" }),
        (error: Error & { code?: string }) =>
          error.code === "io" &&
          error.message === `Cannot write the decision log "${dir}/${name}": it is a symlink, ` +
              "and the launcher does not write through one: remove it, or choose another path",
      );
    }
    assert.equal(await Deno.readTextFile(`${dir}/victim`), "keep\n");
    await assert.rejects(Deno.lstat(`${dir}/created-through-link`), Deno.errors.NotFound);
  });
});

Deno.test("openNoFollow() refuses a hard link and a FIFO without opening it", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/victim`, "keep\n");
    await Deno.link(`${dir}/victim`, `${dir}/log`);
    assert.throws(() => openNoFollow(`${dir}/log`, { append: true }), /has 2 hard links/);
    const made = await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).output();
    assert.ok(made.success);
    // Opening a FIFO for writing would block until a reader comes; the check comes first.
    assert.throws(() => openNoFollow(`${dir}/fifo`, { append: true }), /not a regular file/);
    assert.equal(await Deno.readTextFile(`${dir}/victim`), "keep\n");
  });
});

import assert from "node:assert/strict";
import {
  planToolHomes,
  prepareHostPaths,
  prepareToolHomes,
  sandboxHomeDir,
  TOOL_HOMES,
} from "./tool_homes.ts";

const none = { exists: () => false, onPath: () => false, writable: [] };

Deno.test("planToolHomes() binds a tool's default path from the sandbox home when its command is on PATH", () => {
  const homes = planToolHomes({ HOME: "/home/a" }, { ...none, onPath: (c) => c === "npm" });
  assert.deepEqual(homes.map((h) => h.name), ["npm", "pnpm-store", "pnpm-cache", "node-gyp"]);
  assert.deepEqual(homes[0], {
    name: "npm",
    target: "/home/a/.npm",
    source: "/home/a/.cache/sandbox/homes/npm",
  });
  assert.equal(homes[1].target, "/home/a/.local/share/pnpm/store");
});

Deno.test("planToolHomes() follows XDG_CACHE_HOME and XDG_DATA_HOME like the tools do", () => {
  const homes = planToolHomes(
    { HOME: "/home/a", XDG_CACHE_HOME: "/c", XDG_DATA_HOME: "/d/" },
    { ...none, onPath: (c) => c === "pip" || c === "pnpm" },
  );
  assert.deepEqual(homes.map((h) => [h.target, h.source]), [
    ["/d/pnpm/store", "/c/sandbox/homes/pnpm-store"],
    ["/c/pnpm", "/c/sandbox/homes/pnpm-cache"],
    ["/c/pip", "/c/sandbox/homes/pip"],
  ]);
  assert.equal(
    sandboxHomeDir({ XDG_CACHE_HOME: "relative", HOME: "/h" }),
    "/h/.cache/sandbox/homes",
  );
});

Deno.test("planToolHomes() uses a tool home whose directory exists, and leaves out one the user made writable", () => {
  const exists = (path: string) => path === "/home/a/.cargo/registry" || path === "/home/a/.npm";
  const homes = planToolHomes({ HOME: "/home/a" }, {
    exists,
    onPath: () => false,
    writable: ["/home/a/.npm"],
  });
  assert.deepEqual(homes.map((h) => h.name), ["cargo-registry"]);
  assert.deepEqual(planToolHomes({}, { ...none, onPath: () => true }), []);
  assert.deepEqual(planToolHomes({ HOME: "rel" }, { ...none, onPath: () => true }), []);
});

Deno.test("TOOL_HOMES names each tool home once", () => {
  const names = TOOL_HOMES.map((h) => h.name);
  assert.equal(new Set(names).size, names.length);
});

Deno.test("prepareToolHomes() creates the sandbox home and a missing mount point, empty", async () => {
  const home = await Deno.makeTempDir({ prefix: "tool-homes-" });
  try {
    const homes = planToolHomes({ HOME: home }, { ...none, onPath: (c) => c === "pip" });
    prepareToolHomes(homes, { uid: Deno.uid() });
    assert.ok(Deno.statSync(`${home}/.cache/sandbox/homes/pip`).isDirectory);
    assert.ok(Deno.statSync(`${home}/.cache/pip`).isDirectory);
    assert.deepEqual([...Deno.readDirSync(`${home}/.cache/pip`)], []);
    assert.equal(Deno.statSync(`${home}/.cache/sandbox/homes/pip`).mode! & 0o777, 0o700);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("prepareToolHomes() refuses a sandbox home dir planted as a symlink (it would bind its target writable)", async () => {
  const home = await Deno.makeTempDir({ prefix: "tool-homes-" });
  try {
    await Deno.mkdir(`${home}/.ssh`);
    await Deno.mkdir(`${home}/.cache/sandbox/homes`, { recursive: true });
    await Deno.symlink(`${home}/.ssh`, `${home}/.cache/sandbox/homes/npm`);
    const homes = planToolHomes({ HOME: home }, { ...none, onPath: (c) => c === "npm" });
    assert.throws(
      () => prepareToolHomes(homes, { uid: Deno.uid() }),
      /Cannot use the tool home ".*\/homes\/npm" for ".*\/\.npm": ".*\/homes\/npm": it is a symlink/,
    );
    // The parent planted as a symlink is refused too.
    await Deno.remove(`${home}/.cache/sandbox/homes`, { recursive: true });
    await Deno.symlink(`${home}/.ssh`, `${home}/.cache/sandbox/homes`);
    assert.throws(() => prepareToolHomes(homes, { uid: Deno.uid() }), /it is a symlink/);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("prepareHostPaths() creates a missing writable path and says so; an uncreatable one is an error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "writable-" });
  try {
    const created: string[] = [];
    await Deno.mkdir(`${dir}/exists`);
    prepareHostPaths({ writable: [`${dir}/exists`, `${dir}/new/deep`] }, {
      uid: null,
      onCreated: (path) => created.push(path),
    });
    assert.deepEqual(created, [`${dir}/new/deep`]);
    assert.ok(Deno.statSync(`${dir}/new/deep`).isDirectory);
    await Deno.writeTextFile(`${dir}/file`, "");
    assert.throws(
      () => prepareHostPaths({ writable: [`${dir}/file/sub`] }, { uid: null }),
      /Cannot make ".*\/file\/sub" writable: Not a directory/,
    );
    await Deno.chmod(dir, 0o500);
    if (Deno.uid() !== 0) {
      assert.throws(
        () => prepareHostPaths({ writable: [`${dir}/nope`] }, { uid: null }),
        /Cannot make ".*\/nope" writable: it does not exist and creating it failed: /,
      );
    }
    await Deno.chmod(dir, 0o700);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("planToolHomes() gives an existing pyenv shims dir a throwaway copy in the run's scratch dir", async () => {
  const home = await Deno.makeTempDir({ prefix: "tool-homes-" });
  try {
    await Deno.mkdir(`${home}/.pyenv/shims`, { recursive: true });
    await Deno.writeTextFile(`${home}/.pyenv/shims/pip`, "#!/bin/sh\n", { mode: 0o755 });
    const exists = (path: string) => {
      try {
        Deno.lstatSync(path);
        return true;
      } catch {
        return false;
      }
    };
    const facts = { exists, onPath: () => false, writable: [] };
    assert.deepEqual(planToolHomes({ HOME: home }, facts), [], "no scratch dir, no copy");
    const homes = planToolHomes({ HOME: home }, { ...facts, scratchDir: `${home}/run/scratch` });
    assert.deepEqual(homes, [{
      name: "pyenv-shims",
      target: `${home}/.pyenv/shims`,
      source: `${home}/run/scratch/pyenv-shims`,
      scratch: true,
    }]);
    prepareToolHomes(homes, { uid: Deno.uid() });
    assert.equal(await Deno.readTextFile(`${home}/run/scratch/pyenv-shims/pip`), "#!/bin/sh\n");
    assert.equal(Deno.statSync(`${home}/run/scratch/pyenv-shims/pip`).mode! & 0o777, 0o755);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

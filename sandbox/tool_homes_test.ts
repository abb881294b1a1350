import assert from "node:assert/strict";
import {
  hostToolHomeFacts,
  planToolHomes,
  prepareHostPaths,
  prepareToolHomes,
  sandboxHomeDir,
  SCRATCH_VIEW,
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

Deno.test("planToolHomes() gives an existing pyenv shims dir a throwaway view of its entries, and prepares nothing for it", async () => {
  const home = await Deno.makeTempDir({ prefix: "tool-homes-" });
  try {
    const facts = { ...hostToolHomeFacts(""), writable: [] };
    assert.deepEqual(planToolHomes({ HOME: home }, facts), [], "no shims dir, no view");
    await Deno.mkdir(`${home}/.pyenv/shims`, { recursive: true });
    await Deno.writeTextFile(`${home}/.pyenv/shims/pip`, "#!/bin/sh\n", { mode: 0o755 });
    await Deno.symlink("pip", `${home}/.pyenv/shims/pip3`);
    // A host entry with the view's own name cannot be linked (the bind takes that name).
    await Deno.writeTextFile(`${home}/.pyenv/shims/${SCRATCH_VIEW}`, "");
    const homes = planToolHomes({ HOME: home }, facts);
    assert.deepEqual(homes, [{
      name: "pyenv-shims",
      target: `${home}/.pyenv/shims`,
      source: `${home}/.pyenv/shims`,
      scratch: { entries: ["pip", "pip3"] },
    }]);
    const before = [...Deno.readDirSync(home)].map((e) => e.name).sort();
    prepareToolHomes(homes, { uid: Deno.uid() });
    assert.deepEqual([...Deno.readDirSync(home)].map((e) => e.name).sort(), before);
    assert.equal(
      planToolHomes({ HOME: home, PYENV_ROOT: `${home}/elsewhere` }, facts).length,
      0,
      "PYENV_ROOT moves the shims dir",
    );
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { preflightLinux, resolveCommand, userNamespaceProblem } from "./preflight.ts";

async function fakeProcSys(values: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const [path, value] of Object.entries(values)) {
    await Deno.mkdir(`${dir}/${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
    await Deno.writeTextFile(`${dir}/${path}`, `${value}\n`);
  }
  return dir;
}

Deno.test("userNamespaceProblem() names the sysctl that switches user namespaces off", async () => {
  const off = await fakeProcSys({ "user/max_user_namespaces": "0" });
  const debian = await fakeProcSys({
    "user/max_user_namespaces": "100",
    "kernel/unprivileged_userns_clone": "0",
  });
  const ubuntu = await fakeProcSys({
    "user/max_user_namespaces": "100",
    "kernel/apparmor_restrict_unprivileged_userns": "1",
  });
  try {
    assert.match(
      await userNamespaceProblem({ uid: 0, procSys: off }) ?? "",
      /user\.max_user_namespaces/,
    );
    assert.match(
      await userNamespaceProblem({ uid: 1000, procSys: debian }) ?? "",
      /kernel\.unprivileged_userns_clone/,
    );
    assert.equal(await userNamespaceProblem({ uid: 0, procSys: debian }), null);
    // AppArmor's restriction is only named once bwrap has failed (strict).
    assert.equal(await userNamespaceProblem({ uid: 1000, procSys: ubuntu }), null);
    assert.match(
      await userNamespaceProblem({ uid: 1000, procSys: ubuntu, strict: true }) ?? "",
      /apparmor_restrict_unprivileged_userns.*userns/,
    );
  } finally {
    for (const dir of [off, debian, ubuntu]) await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("preflightLinux() says how to install bwrap when no system directory has it", async () => {
  const empty = await Deno.makeTempDir();
  try {
    await assert.rejects(
      () => preflightLinux({ uid: 0, binDirs: [empty] }),
      (error: Error & { code?: string }) =>
        error.code === "bwrap_missing" && /apt-get install -y bubblewrap/.test(error.message) &&
        /SANDBOX_BWRAP/.test(error.message),
    );
  } finally {
    await Deno.remove(empty);
  }
});

Deno.test("preflightLinux() takes helpers from system directories, never from PATH", async () => {
  const planted = await Deno.makeTempDir();
  try {
    for (const name of ["bwrap", "setsid", "nsenter", "unshare"]) {
      await Deno.writeTextFile(`${planted}/${name}`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    }
    const found = await preflightLinux({ uid: 0, env: { PATH: `${planted}:/usr/bin:/bin` } });
    for (const path of [found.bwrap, found.setsid, found.nsenter]) {
      assert.ok(path !== null && !path.startsWith(planted), `${path} came from PATH`);
    }
    // unshare is an unprivileged launcher's helper only.
    assert.equal(found.unshare, null);
    const unprivileged = await preflightLinux({
      uid: 1000,
      env: { PATH: `${planted}:/usr/bin:/bin` },
    });
    // (null on a machine whose unshare is missing or older than 2.38, never the planted one)
    assert.ok(
      !(unprivileged.unshare ?? "").startsWith(planted),
      `${unprivileged.unshare} came from PATH`,
    );
    assert.match(found.bwrap, /^\/(usr\/)?(s?bin|local\/bin)\/bwrap$/);
  } finally {
    await Deno.remove(planted, { recursive: true });
  }
});

Deno.test("preflightLinux() skips a system directory that others can write", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/bwrap`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    await Deno.chmod(dir, 0o777);
    await assert.rejects(
      () => preflightLinux({ uid: 0, binDirs: [dir] }),
      (error: Error & { code?: string }) => error.code === "bwrap_missing",
    );
    await Deno.chmod(dir, 0o755);
    assert.equal((await preflightLinux({ uid: 0, binDirs: [dir] })).bwrap, `${dir}/bwrap`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("preflightLinux() refuses a configured helper where the command can write", async () => {
  const area = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${area}/bwrap`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    await assert.rejects(
      () =>
        preflightLinux({
          uid: 0,
          env: { SANDBOX_BWRAP: `${area}/bwrap` },
          writableAreas: [area],
        }),
      (error: Error & { code?: string }) =>
        error.code === "sandbox_failed" &&
        error.message.startsWith(`Cannot use SANDBOX_BWRAP="${area}/bwrap" as "bwrap": it lies in`),
    );
    await assert.rejects(
      () => preflightLinux({ uid: 0, env: { SANDBOX_SETSID: "bin/setsid" } }),
      /SANDBOX_SETSID="bin\/setsid" as "setsid": the path must be absolute/,
    );
    // Outside the writable areas, the configured path is used as given.
    const found = await preflightLinux({ uid: 0, env: { SANDBOX_BWRAP: `${area}/bwrap` } });
    assert.equal(found.bwrap, `${area}/bwrap`);
  } finally {
    await Deno.remove(area, { recursive: true });
  }
});

Deno.test("resolveCommand() follows PATH like execvp and tells missing from not executable", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    await Deno.writeTextFile(`${dir}/tool`, "#!/bin/sh\n", { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/data`, "", { mode: 0o644 });
    assert.deepEqual(await resolveCommand("tool", { path: `/nonexistent:${dir}`, cwd: "/" }), {
      kind: "found",
      path: `${dir}/tool`,
    });
    assert.deepEqual(await resolveCommand("./tool", { cwd: dir }), {
      kind: "found",
      path: `${dir}/./tool`,
    });
    assert.deepEqual(await resolveCommand("nope", { path: dir, cwd: "/" }), { kind: "not_found" });
    assert.equal((await resolveCommand(`${dir}/data`, { cwd: "/" })).kind, "not_executable");
    assert.equal((await resolveCommand(dir, { cwd: "/" })).kind, "not_executable");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("preflightLinux() offers no unshare to an unprivileged user under AppArmor's user-namespace restriction", async () => {
  const ubuntu = await fakeProcSys({
    "user/max_user_namespaces": "100",
    "kernel/apparmor_restrict_unprivileged_userns": "1",
  });
  const debian = await fakeProcSys({ "user/max_user_namespaces": "100" });
  try {
    // There an unconfined unshare gets a namespace without capabilities: the bridge starts late.
    assert.equal((await preflightLinux({ uid: 1000, procSys: ubuntu })).unshare, null);
    assert.match(
      (await preflightLinux({ uid: 1000, procSys: debian })).unshare ?? "",
      /\/unshare$/,
    );
    // Root never starts its bridge through unshare: it is not even looked for.
    assert.equal((await preflightLinux({ uid: 0, procSys: ubuntu })).unshare, null);
  } finally {
    for (const dir of [ubuntu, debian]) await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("preflightLinux() offers no unshare older than util-linux 2.38 (no --map-current-user)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/bwrap`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    // The help text util-linux 2.37 prints: --keep-caps, but not --map-current-user.
    await Deno.writeTextFile(
      `${dir}/unshare`,
      "#!/bin/sh\n# -r, --map-root-user  --keep-caps\nexit 0\n",
      { mode: 0o755 },
    );
    assert.equal((await preflightLinux({ uid: 1000, binDirs: [dir] })).unshare, null);
    await Deno.writeTextFile(
      `${dir}/unshare`,
      "#!/bin/sh\n# -c, --map-current-user  --keep-caps\nexit 0\n",
      { mode: 0o755 },
    );
    assert.equal((await preflightLinux({ uid: 1000, binDirs: [dir] })).unshare, `${dir}/unshare`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

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

Deno.test("preflightLinux() says how to install bwrap when it is not on PATH", async () => {
  const empty = await Deno.makeTempDir();
  try {
    await assert.rejects(
      () => preflightLinux({ path: empty, uid: 0 }),
      (error: Error & { code?: string }) =>
        error.code === "bwrap_missing" && /apt-get install -y bubblewrap/.test(error.message),
    );
  } finally {
    await Deno.remove(empty);
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

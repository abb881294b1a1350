import assert from "node:assert/strict";

const CONFIG = decodeURIComponent(new URL("../deno.json", import.meta.url).pathname);
const REPO = CONFIG.slice(0, CONFIG.lastIndexOf("/"));

async function task(cwd: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "--config", CONFIG, "sandbox", ...args],
    cwd,
    // As from a user's shell: npm and npx set INIT_CWD too, and deno task
    // keeps one that is already set (this test runs under one).
    clearEnv: true,
    env: Object.fromEntries(Object.entries(Deno.env.toObject()).filter(([k]) => k !== "INIT_CWD")),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("deno task sandbox run: the command runs in the directory the user typed it in", async () => {
  const project = await Deno.makeTempDir({ prefix: "sandbox-task-cwd-" });
  try {
    const pwd = await task(project, ["run", "--", "pwd"]);
    assert.equal(pwd.code, 0, pwd.stderr);
    assert.equal(pwd.stdout.trim(), await Deno.realPath(project));
    assert.notEqual(pwd.stdout.trim(), REPO);
    // The hand-over variable is the launcher's, not the command's.
    const env = await task(project, ["run", "--", "sh", "-c", 'echo "${SANDBOX_TASK_CWD-unset}"']);
    assert.equal(env.code, 0, env.stderr);
    assert.equal(env.stdout.trim(), "unset");
    // And the command cannot write into the directory it runs in only
    // because the launcher lives there: the project is writable, not the checkout.
    const write = await task(project, ["run", "--", "sh", "-c", "touch made-here && echo ok"]);
    assert.equal(write.code, 0, write.stderr);
    await Deno.stat(`${project}/made-here`);
  } finally {
    await Deno.remove(project, { recursive: true });
  }
});

Deno.test("deno task install: a sandbox command on PATH that runs in the caller's directory", async () => {
  const bin = await Deno.makeTempDir({ prefix: "sandbox-install-bin-" });
  const project = await Deno.makeTempDir({ prefix: "sandbox-install-proj-" });
  try {
    const install = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "--config", CONFIG, "install", "--bin", bin],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(install.code, 0, new TextDecoder().decode(install.stderr));
    const run = await new Deno.Command(`${bin}/sandbox`, {
      args: ["run", "--", "pwd"],
      cwd: project,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    assert.equal(new TextDecoder().decode(run.stdout).trim(), await Deno.realPath(project));
    // A file of someone else's at that name is not replaced.
    await Deno.writeTextFile(`${bin}/sandbox`, "#!/bin/sh\necho mine\n");
    const again = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "--config", CONFIG, "install", "--bin", bin],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(again.code, 1);
    assert.match(new TextDecoder().decode(again.stderr), /was not written by this task/);
    assert.equal(await Deno.readTextFile(`${bin}/sandbox`), "#!/bin/sh\necho mine\n");
  } finally {
    await Deno.remove(bin, { recursive: true });
    await Deno.remove(project, { recursive: true });
  }
});

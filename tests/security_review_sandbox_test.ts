/**
 * Regression probes from the security review of the Linux sandbox: what a
 * sandboxed command tried, through a real `sandbox run` under bwrap, and
 * must not manage.
 */
import assert from "node:assert/strict";
import { onPath, sandboxCli, type TempDir, tempDir } from "./cli_helpers.ts";

const READY = Deno.build.os === "linux" && onPath("bwrap");
/** A temp dir outside /tmp (which is empty inside the sandbox): the command sees it, read-only. */
async function visibleTempDir(prefix: string): Promise<TempDir> {
  const path = await Deno.makeTempDir({ dir: "/var/tmp", prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

const NO_CONFIG = {
  XDG_CONFIG_HOME: "/nonexistent-sandbox-review-config",
  SANDBOX_MANAGED_CONFIG: "",
};

Deno.test({
  name:
    "capabilities: a command started by root keeps no capability and cannot remount / writable or unmount a mask",
  ignore: !READY || Deno.uid() !== 0,
  async fn() {
    await using dir = await visibleTempDir("sandbox-review-caps-");
    const probe = `${dir.path}/outside/probe`;
    await Deno.mkdir(`${dir.path}/outside`);
    await using cwd = await tempDir("sandbox-review-cwd-");
    const script = [
      'grep "^CapEff:" /proc/self/status',
      `mount -o remount,bind,rw / 2>/dev/null; touch ${probe} 2>/dev/null; echo "write:$?"`,
      'umount /run 2>/dev/null; echo "umount:$?"',
    ].join("; ");
    const r = await sandboxCli(["run", "--", "sh", "-c", script], {
      cwd: cwd.path,
      env: NO_CONFIG,
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^CapEff:\s+0+$/m);
    assert.match(r.stdout, /^write:1$/m);
    assert.doesNotMatch(r.stdout, /^umount:0$/m);
    await assert.rejects(Deno.lstat(probe), Deno.errors.NotFound);
  },
});

Deno.test({
  name:
    "planted symlink: a writable path the command replaced by a symlink is refused, not bound writable at its target",
  ignore: !READY,
  async fn() {
    await using root = await visibleTempDir("sandbox-review-link-");
    const cwd = `${root.path}/work`;
    const victim = `${root.path}/victim`;
    await Deno.mkdir(`${cwd}/sub/cache`, { recursive: true });
    await Deno.mkdir(victim);
    await Deno.writeTextFile(`${victim}/file`, "orig");
    const config = `${root.path}/config.toml`;
    await Deno.writeTextFile(
      config,
      `default_permissions = "t"\n[permissions.t.filesystem]\nwritable = ["${cwd}/sub/cache"]\n`,
    );
    const run = (script: string) =>
      sandboxCli(["run", "--config", config, "--", "sh", "-c", script], {
        cwd,
        env: NO_CONFIG,
        timeoutMs: 60_000,
      });
    // Run 1: cwd is writable, so the command can move the writable path's parent away (the path
    // itself is a mount point) and put a relative symlink in its place.
    const first = await run(
      "mv sub sub.old && mkdir sub && ln -s ../../victim sub/cache && echo planted",
    );
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /planted/);
    // Run 2: the same config must not make the symlink's target writable.
    const second = await run(`echo pwned > ${victim}/file; echo "w:$?"`);
    assert.equal(await Deno.readTextFile(`${victim}/file`), "orig");
    assert.equal(second.code, 126, second.stdout + second.stderr);
    assert.match(second.stderr, /symlink/);
  },
});

Deno.test({
  name:
    "deny_read rename: the command cannot move a hidden file's directory away so that the next run shows it",
  ignore: !READY,
  async fn() {
    await using cwd = await visibleTempDir("sandbox-review-rename-");
    await Deno.mkdir(`${cwd.path}/secrets/deeper`, { recursive: true });
    await Deno.writeTextFile(`${cwd.path}/secrets/deeper/key`, "TOPSECRET");
    const config = `${cwd.path}/config.toml`;
    await Deno.writeTextFile(
      config,
      `default_permissions = "t"\n[permissions.t.filesystem]\ndeny_read = ["${cwd.path}/secrets/deeper/key"]\n`,
    );
    const run = (script: string) =>
      sandboxCli(["run", "--config", config, "--", "sh", "-c", script], {
        cwd: cwd.path,
        env: NO_CONFIG,
        timeoutMs: 60_000,
      });
    const first = await run(
      "cat secrets/deeper/key; mv secrets/deeper d2 2>/dev/null; mv secrets s2 2>/dev/null; echo done",
    );
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /done/);
    const second = await run("cat secrets/deeper/key s2/deeper/key d2/key 2>/dev/null; echo done");
    assert.doesNotMatch(first.stdout + second.stdout, /TOPSECRET/);
    assert.equal(await Deno.readTextFile(`${cwd.path}/secrets/deeper/key`), "TOPSECRET");
  },
});

Deno.test({
  name:
    "deny_read symlink: a deny_read path that is a symlink hides its target under both names instead of failing the run",
  ignore: !READY,
  async fn() {
    await using root = await visibleTempDir("sandbox-review-dotfiles-");
    await Deno.mkdir(`${root.path}/dotfiles/aws`, { recursive: true });
    await Deno.writeTextFile(`${root.path}/dotfiles/aws/credentials`, "DIRSECRET");
    await Deno.writeTextFile(`${root.path}/dotfiles/netrc`, "FILESECRET");
    await Deno.symlink(`${root.path}/dotfiles/aws`, `${root.path}/.aws`);
    await Deno.symlink("dotfiles/netrc", `${root.path}/.netrc`);
    const config = `${root.path}/config.toml`;
    await Deno.writeTextFile(
      config,
      `default_permissions = "t"\n[permissions.t.filesystem]\ndeny_read = ["${root.path}/.aws", "${root.path}/.netrc"]\n`,
    );
    await using cwd = await tempDir("sandbox-review-cwd-");
    const r = await sandboxCli([
      "run",
      "--config",
      config,
      "--",
      "sh",
      "-c",
      `cd ${root.path} && cat .aws/credentials .netrc dotfiles/aws/credentials dotfiles/netrc 2>/dev/null; echo done`,
    ], { cwd: cwd.path, env: NO_CONFIG, timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /done/);
    assert.doesNotMatch(r.stdout, /SECRET/);
  },
});

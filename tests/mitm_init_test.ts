import assert from "node:assert/strict";
import { sandboxCli, tempDir } from "./cli_helpers.ts";

Deno.test("sandbox init twice creates the CA once and leaves it untouched the second time", async () => {
  await using tmp = await tempDir("sandbox_init_e2e_");
  const dir = tmp.path;
  // Default location: $XDG_CONFIG_HOME/sandbox/ca.
  const first = await sandboxCli(["init", "--json"], { env: { XDG_CONFIG_HOME: dir } });
  assert.equal(first.code, 0, first.stderr);
  const created = JSON.parse(first.stdout);
  assert.equal(created.created, true);
  assert.equal(created.cert, `${dir}/sandbox/ca/ca.pem`);
  assert.equal((await Deno.stat(created.key)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(created.cert)).mode! & 0o777, 0o644);
  const before = {
    cert: await Deno.readFile(created.cert),
    key: await Deno.readFile(created.key),
    certMtime: (await Deno.stat(created.cert)).mtime?.getTime(),
    keyMtime: (await Deno.stat(created.key)).mtime?.getTime(),
  };

  const second = await sandboxCli(["init", "--ca-dir", `${dir}/sandbox/ca`]);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /already exists; left untouched/);
  assert.ok(second.stdout.includes(created.fingerprint256));
  assert.deepEqual(await Deno.readFile(created.cert), before.cert);
  assert.deepEqual(await Deno.readFile(created.key), before.key);
  assert.equal((await Deno.stat(created.cert)).mtime?.getTime(), before.certMtime);
  assert.equal((await Deno.stat(created.key)).mtime?.getTime(), before.keyMtime);
});

Deno.test("sandbox init refuses an existing group-readable key and says how to fix it", async () => {
  await using tmp = await tempDir("sandbox_init_e2e_");
  const dir = tmp.path;
  assert.equal((await sandboxCli(["init", "--ca-dir", dir])).code, 0);
  await Deno.chmod(`${dir}/ca-key.pem`, 0o640);
  const result = await sandboxCli(["init", "--ca-dir", dir]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`mode 640 .*run: chmod 600 "${dir}/ca-key.pem"`));
  assert.equal(result.stdout, "");
});

Deno.test("sandbox init rejects unknown flags with a usage error", async () => {
  const result = await sandboxCli(["init", "--bogus"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /Invalid arguments for "sandbox init"/);
});

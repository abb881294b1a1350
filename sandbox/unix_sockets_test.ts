import assert from "node:assert/strict";
import {
  isUnder,
  listHostSocketPaths,
  parseProcNetUnix,
  resolveSocketPath,
} from "./unix_sockets.ts";

const TABLE = `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/systemd/private
0000000000000000: 00000002 00000000 00010000 0001 01   123 /tmp/with space.sock
0000000000000000: 00000003 00000000 00000000 0001 03  1062
0000000000000000: 00000002 00000000 00010000 0001 01 22222 @/tmp/.X11-unix/X0
0000000000000000: 00000002 00000000 00010000 0005 01 22223 /run/systemd/private
garbage line
`;

Deno.test("parseProcNetUnix() keeps distinct absolute paths, drops abstract and unbound sockets", () => {
  assert.deepEqual(parseProcNetUnix(TABLE), ["/run/systemd/private", "/tmp/with space.sock"]);
});

Deno.test("listHostSocketPaths() finds a socket this test binds and skips stale paths", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/s.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  try {
    const found = await listHostSocketPaths();
    assert.ok(found.includes(path));
    const table = `Num\n0000000000000000: 00000002 00000000 00010000 0001 01 1 ${path}\n` +
      `0000000000000000: 00000002 00000000 00010000 0001 01 2 ${dir}/gone.sock\n`;
    await Deno.writeTextFile(`${dir}/table`, table);
    assert.deepEqual(await listHostSocketPaths({ procNetUnix: `${dir}/table` }), [path]);
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveSocketPath() follows symlinks and tells a socket from a file", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  const listener = Deno.listen({ transport: "unix", path: `${dir}/real.sock` });
  try {
    await Deno.symlink(`${dir}/real.sock`, `${dir}/link.sock`);
    await Deno.writeTextFile(`${dir}/file`, "");
    assert.deepEqual(await resolveSocketPath(`${dir}/link.sock`), {
      kind: "socket",
      path: `${dir}/link.sock`,
      canonical: `${dir}/real.sock`,
    });
    assert.equal((await resolveSocketPath(`${dir}/file`)).kind, "not_socket");
    assert.equal((await resolveSocketPath(`${dir}/none`)).kind, "missing");
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("isUnder() compares whole path segments", () => {
  assert.ok(isUnder("/tmp/a", "/tmp"));
  assert.ok(isUnder("/tmp", "/tmp"));
  assert.ok(!isUnder("/tmpx/a", "/tmp"));
  assert.ok(isUnder("/anything", "/"));
});

Deno.test("listHostSocketPaths() gives each socket where it really is: symlinked parents resolved", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  await Deno.mkdir(`${dir}/real`);
  await Deno.symlink(`${dir}/real`, `${dir}/link`);
  const listener = Deno.listen({ transport: "unix", path: `${dir}/link/s.sock` });
  try {
    const table = "Num\n" +
      `0000000000000000: 00000002 00000000 00010000 0001 01 1 ${dir}/link/s.sock\n` +
      `0000000000000000: 00000002 00000000 00010000 0001 01 2 ${dir}/real/s.sock\n` +
      "0000000000000000: 00000002 00000000 00010000 0001 01 3 relative.sock\n";
    await Deno.writeTextFile(`${dir}/table`, table);
    assert.deepEqual(await listHostSocketPaths({ procNetUnix: `${dir}/table` }), [
      `${dir}/real/s.sock`,
    ]);
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("listHostSocketPaths() leaves out sockets in directories the command cannot search", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  await Deno.mkdir(`${dir}/private`, { mode: 0o700 });
  await Deno.chmod(`${dir}/private`, 0o700);
  const listener = Deno.listen({ transport: "unix", path: `${dir}/private/s.sock` });
  try {
    await Deno.writeTextFile(
      `${dir}/table`,
      `Num\n0000000000000000: 00000002 00000000 00010000 0001 01 1 ${dir}/private/s.sock\n`,
    );
    const owner = Deno.statSync(`${dir}/private`);
    const procNetUnix = `${dir}/table`;
    // The owner can search it; another user (neither owner nor group) cannot.
    assert.deepEqual(
      await listHostSocketPaths({ procNetUnix, identity: { uid: owner.uid!, gids: [] } }),
      [`${dir}/private/s.sock`],
    );
    assert.deepEqual(
      await listHostSocketPaths({ procNetUnix, identity: { uid: owner.uid! + 4242, gids: [] } }),
      [],
    );
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

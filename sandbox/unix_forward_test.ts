import assert from "node:assert/strict";
import { connectAllowedUnixSocket, UnixForwardError } from "./unix_forward.ts";

async function withServer(fn: (dir: string, path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  const path = `${dir}/s.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const serving = (async () => {
    for await (const conn of listener) {
      await conn.write(new TextEncoder().encode("hi"));
      conn.close();
    }
  })();
  try {
    await fn(dir, path);
  } finally {
    listener.close();
    await serving.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

function refused(reason: string) {
  return (error: unknown) => error instanceof UnixForwardError && error.reason === reason;
}

Deno.test("connectAllowedUnixSocket() connects to an allowlisted socket, also via an allowlisted symlink", async () => {
  await withServer(async (dir, path) => {
    await Deno.symlink(path, `${dir}/link.sock`);
    for (const [asked, allowed] of [[path, path], [`${dir}/link.sock`, `${dir}/link.sock`]]) {
      const { conn, canonical } = await connectAllowedUnixSocket(asked, { allowed: [allowed] });
      try {
        assert.equal(canonical, path);
        const buf = new Uint8Array(4);
        assert.equal(await conn.read(buf), 2);
      } finally {
        conn.close();
      }
    }
  });
});

Deno.test("connectAllowedUnixSocket() refuses relative, unnormalized, unlisted and non-socket paths", async () => {
  await withServer(async (dir, path) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    await Deno.symlink(path, `${dir}/other-link.sock`);
    await assert.rejects(
      () => connectAllowedUnixSocket("s.sock", { allowed: "all" }),
      refused("not_absolute"),
    );
    await assert.rejects(
      () => connectAllowedUnixSocket(`${dir}/x/../s.sock`, { allowed: [path] }),
      refused("not_absolute"),
    );
    await assert.rejects(
      () => connectAllowedUnixSocket(path, { allowed: [] }),
      refused("not_allowed"),
    );
    // Neither the symlink nor its target is on the list.
    await assert.rejects(
      () =>
        connectAllowedUnixSocket(`${dir}/other-link.sock`, { allowed: [`${dir}/elsewhere.sock`] }),
      refused("not_allowed"),
    );
    await assert.rejects(
      () => connectAllowedUnixSocket(`${dir}/file`, { allowed: [`${dir}/file`] }),
      refused("not_socket"),
    );
  });
});

import assert from "node:assert/strict";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { allowedSocketRules } from "../sandbox/build_plan.ts";
import { connectAllowedUnixSocket, UnixForwardError, unixSocketAllowlist } from "./unix_forward.ts";

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

/** Like assert.rejects, but closes the connection of an unexpected success so nothing hangs. */
async function assertRefused(
  attempt: () => Promise<{ conn: Deno.Conn }>,
  reason: string,
): Promise<void> {
  let result: { conn: Deno.Conn } | null = null;
  await assert.rejects(async () => {
    result = await attempt();
  }, refused(reason));
  (result as { conn: Deno.Conn } | null)?.conn.close();
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

/** A unix server that counts accepts and records what each client sent before closing. */
function countingServer(path: string) {
  const listener = Deno.listen({ transport: "unix", path });
  const received: string[] = [];
  const tasks: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      tasks.push((async () => {
        let text = "";
        const buf = new Uint8Array(256);
        try {
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) break;
            text += new TextDecoder().decode(buf.subarray(0, n));
          }
        } catch {
          // Reset by the peer: what arrived so far counts.
        } finally {
          conn.close();
          received.push(text);
        }
      })());
    }
  })();
  return {
    received,
    async close() {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await loop.catch(() => {});
      await Promise.all(tasks);
    },
  };
}

/** Waits (at most 5 s) until `check()` holds. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  const until = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("connectAllowedUnixSocket() refuses a client's symlink to an allowlisted socket and never connects", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  const server = countingServer(`${dir}/s.sock`);
  try {
    await Deno.symlink(`${dir}/s.sock`, `${dir}/client-link.sock`);
    await assertRefused(
      () => connectAllowedUnixSocket(`${dir}/client-link.sock`, { allowed: [`${dir}/s.sock`] }),
      "not_allowed",
    );
    // The first connection the server ever sees is this probe: the refusal connected nothing.
    const probe = await Deno.connect({ transport: "unix", path: `${dir}/s.sock` });
    probe.close();
    await eventually(() => server.received.length === 1, "the probe");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(server.received.length, 1);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("connectAllowedUnixSocket() accepts the canonical path of an allowlisted symlink and reports the rule", async () => {
  await withServer(async (dir, path) => {
    await Deno.symlink(path, `${dir}/listed-link.sock`);
    const { conn, canonical, rule, source } = await connectAllowedUnixSocket(path, {
      allowed: [{ path: `${dir}/listed-link.sock`, source: "flag:--allow-unix-socket" }],
    });
    conn.close();
    assert.equal(canonical, path);
    assert.equal(rule, `${dir}/listed-link.sock`);
    assert.equal(source, "flag:--allow-unix-socket");
  });
});

Deno.test("connectAllowedUnixSocket() never connects to an excluded socket, even with allow-all", async () => {
  await withServer(async (dir, path) => {
    await assert.rejects(
      () => connectAllowedUnixSocket(path, { allowed: "all", exclude: [path] }),
      refused("not_allowed"),
    );
    await assert.rejects(
      () => connectAllowedUnixSocket(`${dir}/missing.sock`, { allowed: "all" }),
      refused("not_socket"),
    );
    await assert.rejects(
      () => connectAllowedUnixSocket(`${dir}/s\n.sock`, { allowed: "all" }),
      refused("not_absolute"),
    );
  });
});

Deno.test("connectAllowedUnixSocket() detects a directory swapped for a symlink between check and connect", async () => {
  const base = await Deno.realPath(await Deno.makeTempDir());
  await Deno.mkdir(`${base}/a`);
  await Deno.mkdir(`${base}/b`);
  const allowed = countingServer(`${base}/a/s.sock`);
  const other = countingServer(`${base}/b/s.sock`);
  try {
    await assertRefused(
      () =>
        connectAllowedUnixSocket(`${base}/a/s.sock`, {
          allowed: [`${base}/a/s.sock`],
          beforeConnect: async () => {
            await Deno.rename(`${base}/a`, `${base}/a.old`);
            await Deno.symlink(`${base}/b`, `${base}/a`);
          },
        }),
      "swapped",
    );
    // The residual: the connect reached the swapped-in socket, but no byte was sent and it was closed.
    await eventually(() => other.received.length === 1, "the swapped-in socket's accept");
    assert.deepEqual(other.received, [""]);
    assert.equal(allowed.received.length, 0);
  } finally {
    await allowed.close();
    await other.close();
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("unixSocketAllowlist() merges rules in order like allowedSocketRules() and says all for allow-all", async () => {
  const config = await loadEffectiveConfig({}, { env: { HOME: "/nonexistent" }, cwd: "/" });
  const network = {
    ...config.network,
    unixSockets: [
      { path: "/run/a.sock", action: "allow", source: "one" },
      { path: "/run/b.sock", action: "allow", source: "one" },
      { path: "/run/a.sock", action: "none", source: "two" },
      { path: "/run/c.sock", action: "allow", source: "two" },
      { path: "/run/b.sock", action: "allow", source: "three" },
    ] as const,
  };
  const entries = unixSocketAllowlist(network);
  assert.deepEqual(entries, [
    { path: "/run/c.sock", source: "two" },
    { path: "/run/b.sock", source: "three" },
  ]);
  const paths = allowedSocketRules({ ...config, network });
  assert.deepEqual(
    [...(entries as { path: string }[]).map((e) => e.path)].sort(),
    [...paths].sort(),
  );
  assert.equal(unixSocketAllowlist({ ...network, dangerouslyAllowAllUnixSockets: true }), "all");
});

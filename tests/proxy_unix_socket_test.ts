/**
 * The proxy's `x-unix-socket` header on real unix sockets: an allowlisted
 * socket is reached (header removed, keep-alive, upgrades), everything
 * else is refused with 403 before any connect (servers count accepts), and
 * every decision is logged with host `unix:PATH` and port 0.
 */
import assert from "node:assert/strict";
import type { DecisionEvent } from "../proxy/server.ts";
import { createResolver } from "../proxy/resolver.ts";
import { startProxy } from "../proxy/server.ts";
import {
  completeResponse,
  configFor,
  exchange,
  fakeServer,
  parseResponse,
  proxyFor,
  readUntil,
  respondWith,
  send,
  serveConnections,
} from "./proxy_helpers.ts";

/** A raw-byte server on a unix socket; counts accepts. */
interface UnixFake extends AsyncDisposable {
  readonly path: string;
  readonly accepted: number;
  close(): Promise<void>;
}

function unixFake(path: string, handler: (conn: Deno.Conn) => Promise<void>): UnixFake {
  const served = serveConnections(Deno.listen({ transport: "unix", path }), handler);
  let closing: Promise<void> | null = null;
  const close = () => closing ??= served.close();
  return {
    path,
    get accepted() {
      return served.accepted();
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A temp dir (canonical path) removed afterwards. */
async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "proxy-unix-" }));
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Proves `server` never accepted before now: a probe connection must be its first accept. */
async function assertNeverConnected(server: UnixFake): Promise<void> {
  const probe = await Deno.connect({ transport: "unix", path: server.path });
  try {
    const until = Date.now() + 5000;
    while (server.accepted === 0) {
      if (Date.now() > until) throw new Error("Timed out waiting for the probe's accept");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(server.accepted, 1, "the probe was the only connection");
  } finally {
    probe.close();
  }
}

function request(path: string, socket: string | null, extra = ""): string {
  return `GET http://anything${path} HTTP/1.1\r\nHost: anything\r\n` +
    (socket === null ? "" : `X-Unix-Socket: ${socket}\r\n`) + extra + "\r\n";
}

Deno.test("proxy sends an x-unix-socket request to the allowlisted socket without the header, and logs it", async () => {
  await withDir(async (dir) => {
    await using server = unixFake(`${dir}/api.sock`, respondWith("$HEAD"));
    const events: DecisionEvent[] = [];
    await using proxy = await proxyFor({ "allow-unix-socket": [server.path] }, {
      onDecision: (event) => events.push(event),
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
    try {
      for (const path of ["/v1.41/info", "/v1.41/containers/json?all=1"]) {
        await send(conn, request(path, server.path, "X-Keep: 1\r\n"));
        const response = parseResponse(await readUntil(conn, completeResponse));
        assert.equal(response.status, 200);
        const forwarded: string = JSON.parse(response.body);
        assert.deepEqual(forwarded.split("\r\n"), [
          `GET ${path} HTTP/1.1`,
          "Host: anything",
          "X-Keep: 1",
        ]);
      }
    } finally {
      conn.close();
    }
    assert.equal(server.accepted, 1, "one unix connection carried both requests");
    assert.equal(events.length, 2);
    assert.deepEqual(
      { ...events[0], time: "" },
      {
        time: "",
        host: `unix:${server.path}`,
        port: 0,
        protocol: "http",
        method: "GET",
        decision: "allow",
        reason: "allowed",
        rule: server.path,
        source: "flag:--allow-unix-socket",
        guard: "baseline_policy",
        command: null,
      },
    );
  });
});

Deno.test("proxy: curl -H 'x-unix-socket: PATH' reaches an allowlisted socket", async () => {
  await withDir(async (dir) => {
    await using server = unixFake(`${dir}/curl.sock`, respondWith("hello from $REQUEST"));
    await using proxy = await proxyFor({ "allow-unix-socket": [server.path] });
    const out = await new Deno.Command("curl", {
      args: [
        "-sS",
        "--max-time",
        "10",
        "-x",
        `http://127.0.0.1:${proxy.http!.port}`,
        "-H",
        `x-unix-socket: ${server.path}`,
        "http://anything.invalid/ping",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(new TextDecoder().decode(out.stdout), "hello from GET /ping HTTP/1.1");
    assert.equal(server.accepted, 1);
  });
});

Deno.test("proxy refuses a non-allowlisted x-unix-socket with 403 and never connects to it", async () => {
  await withDir(async (dir) => {
    await using listed = unixFake(`${dir}/listed.sock`, respondWith("listed"));
    await using secret = unixFake(`${dir}/secret.sock`, respondWith("secret"));
    const events: DecisionEvent[] = [];
    await using proxy = await proxyFor({ "allow-unix-socket": [listed.path] }, {
      onDecision: (event) => events.push(event),
    });
    const text = await exchange(proxy.http!.port, request("/", secret.path));
    const response = parseResponse(text);
    assert.equal(response.status, 403, text);
    assert.equal(response.headers.get("x-proxy-error"), "blocked-by-policy");
    const body = JSON.parse(response.body);
    assert.equal(body.reason, "unix_socket_not_allowed");
    assert.equal(body.decision, "deny");
    assert.equal(body.host, `unix:${secret.path}`);
    assert.equal(body.port, 0);
    assert.match(body.detail, new RegExp(`"${secret.path}" is not allowlisted`));
    assert.equal(events.length, 1);
    assert.equal(events[0].decision, "deny");
    assert.equal(events[0].host, `unix:${secret.path}`);
    await assertNeverConnected(secret);
    await assertNeverConnected(listed);
  });
});

Deno.test("proxy refuses a symlink (not itself allowlisted) to an allowlisted socket, and relative paths", async () => {
  await withDir(async (dir) => {
    await using server = unixFake(`${dir}/real.sock`, respondWith("real"));
    await Deno.symlink(server.path, `${dir}/link.sock`);
    await using proxy = await proxyFor({ "allow-unix-socket": [server.path] });
    for (const asked of [`${dir}/link.sock`, "real.sock", `${dir}/./real.sock`, ""]) {
      const text = await exchange(proxy.http!.port, request("/", asked));
      const response = parseResponse(text);
      assert.equal(response.status, 403, `${asked}: ${text}`);
      assert.equal(JSON.parse(response.body).reason, "unix_socket_not_allowed");
    }
    await assertNeverConnected(server);
  });
});

Deno.test("proxy refuses x-unix-socket on CONNECT, in limited mode for POST, twice in one request, and its own socket", async () => {
  await withDir(async (dir) => {
    await using server = unixFake(`${dir}/s.sock`, respondWith("ok"));
    await using tcp = fakeServer("127.0.0.2", respondWith("tcp"));
    await using proxy = await proxyFor({
      "allow-unix-socket": [server.path],
      allow: ["allowed.test"],
    }, { names: { "allowed.test": ["127.0.0.2"] } });
    const connect = parseResponse(
      await exchange(
        proxy.http!.port,
        `CONNECT allowed.test:${tcp.port} HTTP/1.1\r\nHost: allowed.test:${tcp.port}\r\n` +
          `x-unix-socket: ${server.path}\r\n\r\n`,
      ),
    );
    assert.equal(connect.status, 403);
    assert.equal(JSON.parse(connect.body).reason, "unix_socket_unsupported");
    assert.match(JSON.parse(connect.body).detail, /not on CONNECT/);
    assert.equal(tcp.accepted, 0);

    const twice = await exchange(
      proxy.http!.port,
      request("/", server.path, `x-unix-socket: ${server.path}\r\n`),
    );
    assert.match(twice, /^HTTP\/1\.1 400 /);
    await assertNeverConnected(server);
  });

  await withDir(async (dir) => {
    await using server = unixFake(`${dir}/s.sock`, respondWith("ok"));
    await using limited = await proxyFor({ "allow-unix-socket": [server.path], mode: "limited" });
    const post = parseResponse(
      await exchange(
        limited.http!.port,
        `POST http://anything/ HTTP/1.1\r\nHost: anything\r\nx-unix-socket: ${server.path}\r\n` +
          `Content-Length: 0\r\n\r\n`,
      ),
    );
    assert.equal(post.status, 403);
    assert.equal(JSON.parse(post.body).reason, "method_not_allowed");
    await assertNeverConnected(server);
  });

  await withDir(async (dir) => {
    const config = await configFor({});
    await using _proxy = await startProxy({
      config: {
        ...config,
        network: { ...config.network, dangerouslyAllowAllUnixSockets: true },
      },
      resolver: createResolver(),
      http: null,
      socks: null,
      unixPath: `${dir}/proxy.sock`,
    });
    const conn = await Deno.connect({ transport: "unix", path: `${dir}/proxy.sock` });
    try {
      await send(conn, request("/", `${dir}/proxy.sock`));
      const own = parseResponse(await readUntil(conn, completeResponse));
      assert.equal(own.status, 403);
      assert.match(JSON.parse(own.body).detail, /the proxy's own listener/);
    } finally {
      conn.close();
    }
  });
});

Deno.test("proxy with dangerously_allow_all_unix_sockets reaches any socket and relays an upgrade", async () => {
  await withDir(async (dir) => {
    // Answers 101 and then echoes, like the Docker API's attach/exec upgrade.
    await using server = unixFake(`${dir}/any.sock`, async (conn) => {
      const head = await readUntil(conn, (text) => text.includes("\r\n\r\n"));
      assert.ok(!/x-unix-socket/i.test(head));
      await send(conn, "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n");
      const buf = new Uint8Array(1024);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) return;
        await send(conn, buf.subarray(0, n));
      }
    });
    const config = await configFor({});
    const events: DecisionEvent[] = [];
    await using proxy = await startProxy({
      config: {
        ...config,
        network: { ...config.network, dangerouslyAllowAllUnixSockets: true },
      },
      resolver: createResolver(),
      http: { hostname: "127.0.0.1", port: 0 },
      socks: null,
      onDecision: (event) => events.push(event),
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
    try {
      await send(
        conn,
        request("/attach", server.path, "Connection: Upgrade\r\nUpgrade: tcp\r\n"),
      );
      const head = await readUntil(conn, (text) => text.includes("\r\n\r\n"));
      assert.match(head, /^HTTP\/1\.1 101 /);
      await send(conn, "ping");
      assert.equal(await readUntil(conn, (text) => text.includes("ping")), "ping");
    } finally {
      conn.close();
    }
    assert.equal(events[0].rule, "dangerously_allow_all_unix_sockets");
    assert.equal(events[0].decision, "allow");
  });
});

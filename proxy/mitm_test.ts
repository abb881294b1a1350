/**
 * The MITM handler on real loopback sockets: a test HTTPS upstream with its
 * own CA, the handler serving tunnels accepted on a raw listener (the part of
 * the proxy before the handler is tested in tests/mitm_proxy_test.ts), and raw
 * TLS clients that trust only the MITM CA.
 */
import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import { connect as tlsConnect } from "node:tls";
import type { NetworkMode } from "../profiles/types.ts";
import { type CertificateAuthority, initCa } from "./ca.ts";
import type { DecisionEvent } from "./decision_log.ts";
import { SlotSweeper } from "./connection_slot.ts";
import { DEFAULT_HTTP_LIMITS } from "./http_parser.ts";
import { createLeafIssuer } from "./leaf_certs.ts";
import { createMitmHandler, type MitmTarget, type MitmTunnelContext, prepareMitm } from "./mitm.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { SandboxError } from "../errors.ts";
import { decideRequest } from "../policy/decide_request.ts";
import { readFramedResponse, testCa, withTimeout } from "../tests/proxy_helpers.ts";

const UPSTREAM_HOST = "upstream.test";
const UPSTREAM_ADDR = "127.0.0.2";

/** An HTTPS server on 127.0.0.2 whose certificate comes from `ca`; echoes method, path and body length. */
function startUpstream(ca: CertificateAuthority) {
  const leaf = createLeafIssuer(ca).certificateFor(UPSTREAM_HOST);
  const seen: string[] = [];
  const server = Deno.serve({
    hostname: UPSTREAM_ADDR,
    port: 0,
    cert: leaf.chainPem,
    key: leaf.keyPem,
    onListen() {},
  }, async (request) => {
    const body = new Uint8Array(await request.arrayBuffer());
    const url = new URL(request.url);
    seen.push(`${request.method} ${url.pathname}`);
    if (request.headers.has("x-unix-socket")) seen.push("x-unix-socket reached the origin");
    if (url.pathname === "/big") return new Response(new Uint8Array(3 * 1024 * 1024).fill(120));
    return new Response(`upstream saw ${request.method} ${url.pathname} body=${body.length}\n`, {
      headers: { "x-upstream": "yes" },
    });
  });
  return { server, port: server.addr.port, seen };
}

/** A raw listener whose connections go straight to the handler, with a policy like the proxy's. */
function startHarness(
  handler: ReturnType<typeof createMitmHandler>,
  target: MitmTarget,
  mode: NetworkMode = "limited",
) {
  const events: DecisionEvent[] = [];
  const abort = new AbortController();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const tasks: Promise<void>[] = [];
  // The proxy's one timeout mechanism, as the proxy runs it (short tick for the test).
  const sweeper = new SlotSweeper({ idleTimeoutMs: 300_000, tickMs: 50 });
  const context: Omit<MitmTunnelContext, "slot"> = {
    mode,
    httpLimits: DEFAULT_HTTP_LIMITS,
    signal: abort.signal,
    async decide(request) {
      // The proxy's own decision (door "mitm"); the tunnel was allowed by rule UPSTREAM_HOST.
      const verdict = await decideRequest({
        door: "mitm",
        host: request.host,
        port: request.port,
        method: request.method,
        upgrade: request.upgrade ? "upgrade" : null,
        body: request.body,
        malformed: request.malformed,
        tunnel: { ...target, rule: UPSTREAM_HOST, ruleSource: "test" },
      }, {
        policy: { allow: [], deny: [], enabled: true, allowLocalBinding: false, mode },
        resolver: () => Promise.reject(new Error("no lookups inside a tunnel")),
        socksEnabled: false,
        mitm: true,
      });
      const event: DecisionEvent = {
        time: new Date().toISOString(),
        host: verdict.host,
        port: verdict.port,
        protocol: "https-connect",
        method: request.method,
        decision: verdict.decision,
        reason: verdict.reason,
        rule: verdict.rule,
        source: verdict.ruleSource,
        command: null,
      };
      events.push(event);
      return { ...verdict, event };
    },
    log(event) {
      events.push(event);
    },
    connect: () => Deno.connect({ hostname: target.addresses[0], port: target.port }),
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      const slot = sweeper.add(conn);
      tasks.push(
        handler.handleTunnel(conn, target, { ...context, slot }).finally(() =>
          sweeper.delete(slot)
        ),
      );
    }
  })();
  return {
    port: listener.addr.port,
    events,
    async close() {
      abort.abort();
      listener.close();
      await accepting;
      await Promise.all(tasks);
      sweeper.stop();
    },
  };
}

/** A TLS client through the harness that trusts only `ca`, speaking raw HTTP/1.1. */
async function tlsClient(port: number, ca: CertificateAuthority, sni = UPSTREAM_HOST) {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  const conn = await Deno.startTls(tcp, {
    hostname: sni,
    caCerts: [ca.certPem],
    alpnProtocols: ["http/1.1"],
  });
  const state = { buffered: "" };
  return {
    conn,
    async send(text: string) {
      await conn.write(new TextEncoder().encode(text));
    },
    /** Reads one response (Content-Length framed); null when the connection ends first. */
    response: () => readFramedResponse(conn, state),
    close() {
      try {
        conn.close();
      } catch {
        // Already closed by the peer.
      }
    },
  };
}

async function setup(options: { trustUpstream?: boolean; mode?: NetworkMode } = {}) {
  const mitmCa = await testCa("mitm");
  const upstreamCa = await testCa("upstream");
  const upstream = startUpstream(upstreamCa);
  const handler = createMitmHandler({
    ca: mitmCa,
    upstreamCaCerts: options.trustUpstream === false ? [] : [upstreamCa.certPem],
    systemRoots: false,
  });
  const target = { host: UPSTREAM_HOST, port: upstream.port, addresses: [UPSTREAM_ADDR] };
  const harness = startHarness(handler, target, options.mode);
  return {
    mitmCa,
    upstream,
    harness,
    handler,
    async [Symbol.asyncDispose]() {
      await harness.close();
      await upstream.server.shutdown();
    },
  };
}

const get = (path: string, host = UPSTREAM_HOST, port?: number, extra = "") =>
  `GET ${path} HTTP/1.1\r\nHost: ${port === undefined ? host : `${host}:${port}`}\r\n${extra}\r\n`;

Deno.test("createMitmHandler() serves a GET over TLS with a leaf the client verifies; a Host without the port is refused", async () => {
  await using env = await setup();
  const client = await tlsClient(env.harness.port, env.mitmCa);
  try {
    const info = await withTimeout(client.conn.handshake(), 10_000, "handshake");
    assert.equal(info.alpnProtocol, "http/1.1");
    await client.send(get("/one", UPSTREAM_HOST, env.upstream.port));
    const first = await client.response();
    assert.equal(first?.status, 200);
    assert.equal(first?.body, "upstream saw GET /one body=0\n");
    assert.equal(first?.headers.get("x-upstream"), "yes");
    await client.send(get("/two"));
    const second = await client.response();
    assert.equal(
      second?.status,
      400,
      "a Host without a port means 443, but this tunnel is to another port",
    );
  } finally {
    client.close();
  }
  assert.deepEqual(env.upstream.seen, ["GET /one"]);
  assert.equal(env.handler.leaves.issued, 1);
});

Deno.test("createMitmHandler() lets several keep-alive requests through and reuses the leaf for a new tunnel", async () => {
  await using env = await setup();
  for (let round = 0; round < 2; round++) {
    const client = await tlsClient(env.harness.port, env.mitmCa);
    try {
      for (const path of ["/a", "/b", "/big"]) {
        await client.send(get(path, UPSTREAM_HOST, env.upstream.port));
        const response = await client.response();
        assert.equal(response?.status, 200);
        if (path === "/big") assert.equal(response?.body.length, 3 * 1024 * 1024);
        else assert.equal(response?.body, `upstream saw GET ${path} body=0\n`);
      }
    } finally {
      client.close();
    }
  }
  assert.equal(env.handler.leaves.issued, 1, "the second tunnel used the cached leaf");
  assert.equal(env.harness.events.filter((e) => e.decision === "allow").length, 6);
});

Deno.test("createMitmHandler() drops x-unix-socket: it addresses the proxy, not the origin", async () => {
  await using env = await setup();
  const client = await tlsClient(env.harness.port, env.mitmCa);
  try {
    await client.send(
      get("/sock", UPSTREAM_HOST, env.upstream.port, "x-unix-socket: /run/x.sock\r\n"),
    );
    assert.equal((await client.response())?.status, 200);
  } finally {
    client.close();
  }
  assert.deepEqual(env.upstream.seen, ["GET /sock"]);
});

Deno.test("createMitmHandler() blocks a POST with 403 blocked-by-method-policy and a JSON body", async () => {
  await using env = await setup();
  const client = await tlsClient(env.harness.port, env.mitmCa);
  try {
    await client.send(
      `POST /upload HTTP/1.1\r\nHost: ${UPSTREAM_HOST}:${env.upstream.port}\r\nContent-Length: 5\r\n\r\nhello`,
    );
    const response = await client.response();
    assert.equal(response?.status, 403);
    assert.equal(response?.headers.get("x-proxy-error"), "blocked-by-method-policy");
    assert.equal(response?.headers.get("content-type"), "application/json");
    const body = JSON.parse(response!.body);
    assert.equal(body.reason, "method_not_allowed");
    assert.equal(body.decision, "deny");
    assert.equal(body.method, "POST");
    assert.equal(body.host, UPSTREAM_HOST);
    assert.equal(body.protocol, "https-connect");
    assert.equal(await client.response(), null, "the connection is closed after a refusal");
  } finally {
    client.close();
  }
  assert.deepEqual(env.upstream.seen, [], "nothing reached the upstream");
  const denied = env.harness.events.find((e) => e.decision === "deny");
  assert.equal(denied?.method, "POST");
  assert.equal(denied?.protocol, "https-connect");
});

Deno.test("createMitmHandler() refuses a second request on the same connection with another Host (400)", async () => {
  await using env = await setup();
  const client = await tlsClient(env.harness.port, env.mitmCa);
  try {
    await client.send(get("/ok", UPSTREAM_HOST, env.upstream.port));
    assert.equal((await client.response())?.status, 200);
    await client.send(get("/steal", "attacker.test", env.upstream.port));
    const refused = await client.response();
    assert.equal(refused?.status, 400);
    assert.equal(refused?.headers.get("x-proxy-error"), "blocked-by-policy");
    assert.match(JSON.parse(refused!.body).message, /not the tunnel's host/);
    assert.equal(await client.response(), null);
  } finally {
    client.close();
  }
  assert.deepEqual(env.upstream.seen, ["GET /ok"]);
  assert.ok(env.harness.events.some((e) => e.decision === "deny" && e.host === "attacker.test"));
});

Deno.test("createMitmHandler() refuses a wrong port, an absolute-form target elsewhere and a missing Host", async () => {
  await using env = await setup();
  const cases = [
    get("/", UPSTREAM_HOST, env.upstream.port + 1),
    `GET https://attacker.test:${env.upstream.port}/ HTTP/1.1\r\nHost: ${UPSTREAM_HOST}:${env.upstream.port}\r\n\r\n`,
    `GET / HTTP/1.1\r\n\r\n`,
    `GET / HTTP/1.1\r\nHost: ${UPSTREAM_HOST}:${env.upstream.port}\r\nHost: ${UPSTREAM_HOST}:${env.upstream.port}\r\n\r\n`,
  ];
  for (const request of cases) {
    const client = await tlsClient(env.harness.port, env.mitmCa);
    try {
      await client.send(request);
      assert.equal((await client.response())?.status, 400, request);
    } finally {
      client.close();
    }
  }
  assert.deepEqual(env.upstream.seen, []);
});

Deno.test("createMitmHandler() refuses an inner CONNECT (405), an upgrade and a body on GET (403)", async () => {
  await using env = await setup();
  const authority = `${UPSTREAM_HOST}:${env.upstream.port}`;
  const cases: [string, number, string][] = [
    [
      `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`,
      405,
      "blocked-by-method-policy",
    ],
    [
      `GET /ws HTTP/1.1\r\nHost: ${authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
      403,
      "blocked-by-method-policy",
    ],
    [
      `GET / HTTP/1.1\r\nHost: ${authority}\r\nContent-Length: 4\r\n\r\nleak`,
      403,
      "blocked-by-method-policy",
    ],
    [
      `OPTIONS / HTTP/1.1\r\nHost: ${authority}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nleak\r\n0\r\n\r\n`,
      403,
      "blocked-by-method-policy",
    ],
  ];
  for (const [request, status, xProxyError] of cases) {
    const client = await tlsClient(env.harness.port, env.mitmCa);
    try {
      await client.send(request);
      const response = await client.response();
      assert.equal(response?.status, status, request);
      assert.equal(response?.headers.get("x-proxy-error"), xProxyError, request);
    } finally {
      client.close();
    }
  }
  assert.deepEqual(env.upstream.seen, []);
  assert.equal(env.harness.events.filter((e) => e.decision === "deny").length, 4);
});

Deno.test("createMitmHandler() closes the connection when the SNI is not the CONNECT host", async () => {
  await using env = await setup();
  // node:tls lets the test send another SNI and still accept the certificate, as a hostile client would.
  const socket = tlsConnect({
    host: "127.0.0.1",
    port: env.harness.port,
    servername: "other.test",
    ca: [env.mitmCa.certPem],
    checkServerIdentity: () => undefined,
  });
  try {
    const outcome = await withTimeout(
      new Promise<string>((resolve) => {
        let data = "";
        socket.on("secureConnect", () => socket.write(get("/", "other.test", env.upstream.port)));
        socket.on("data", (chunk: Buffer) => (data += chunk.toString()));
        socket.on("error", () => resolve(`error after "${data}"`));
        socket.on("close", () => resolve(`closed after "${data}"`));
      }),
      10_000,
      "SNI mismatch",
    );
    assert.match(outcome, /after ""$/, "no HTTP response at all");
  } finally {
    socket.destroy();
  }
  assert.deepEqual(env.upstream.seen, []);
});

Deno.test("createMitmHandler() answers 502 with the reason when the upstream certificate is not trusted", async () => {
  await using env = await setup({ trustUpstream: false });
  const client = await tlsClient(env.harness.port, env.mitmCa);
  try {
    await client.send(get("/", UPSTREAM_HOST, env.upstream.port));
    const response = await client.response();
    assert.equal(response?.status, 502);
    assert.equal(response?.headers.get("x-proxy-error"), "upstream-tls-error");
    assert.match(
      response!.body,
      /TLS to upstream "upstream\.test:\d+" failed: .*(UnknownIssuer|certificate)/i,
    );
  } finally {
    client.close();
  }
  assert.deepEqual(env.upstream.seen, []);
});

Deno.test("createMitmHandler() forwards a POST body in full mode", async () => {
  await using env = await setup({ mode: "full" });
  const client = await tlsClient(env.harness.port, env.mitmCa);
  try {
    await client.send(
      `POST /up HTTP/1.1\r\nHost: ${UPSTREAM_HOST}:${env.upstream.port}\r\nContent-Length: 5\r\n\r\nhello`,
    );
    const response = await client.response();
    assert.equal(response?.status, 200);
    assert.equal(response?.body, "upstream saw POST /up body=5\n");
  } finally {
    client.close();
  }
});

Deno.test("prepareMitm() loads the profile's mitm_ca before --ca-dir and reads SANDBOX_UPSTREAM_CA", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sandbox_prepare_mitm_" });
  try {
    const own = (await initCa(`${dir}/own`)).ca;
    const other = (await initCa(`${dir}/other`)).ca;
    await Deno.writeTextFile(`${dir}/upstream.pem`, other.certPem);
    const base = await loadEffectiveConfig({ mode: "limited", mitm: true }, {
      env: { HOME: `${dir}/home` },
    });
    const config = {
      ...base,
      network: { ...base.network, mitmCa: { cert: own.certPath!, key: own.keyPath! } },
    };
    const env = { HOME: `${dir}/home`, SANDBOX_UPSTREAM_CA: `${dir}/upstream.pem` };
    const fromProfile = await prepareMitm(config, { caDir: `${dir}/other`, env });
    assert.equal(fromProfile.ca.fingerprint256, own.fingerprint256);
    const fromDir = await prepareMitm(base, { caDir: `${dir}/other`, env });
    assert.equal(fromDir.ca.fingerprint256, other.fingerprint256);

    const isCaError = (pattern: RegExp) => (error: unknown) =>
      error instanceof SandboxError && error.code === "ca_error" && pattern.test(error.message);
    await assert.rejects(prepareMitm(base, { env }), isCaError(/run "sandbox init" first/));
    await assert.rejects(
      prepareMitm(base, {
        caDir: `${dir}/own`,
        env: { SANDBOX_UPSTREAM_CA: `${dir}/missing.pem` },
      }),
      isCaError(/Cannot read SANDBOX_UPSTREAM_CA/),
    );
    await Deno.writeTextFile(`${dir}/empty.pem`, "nothing here");
    await assert.rejects(
      prepareMitm(base, { caDir: `${dir}/own`, env: { SANDBOX_UPSTREAM_CA: `${dir}/empty.pem` } }),
      isCaError(/holds no PEM certificate/),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

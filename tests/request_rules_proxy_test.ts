/**
 * Per-host request rules and secrets through the real proxy, in full mode:
 * a hooked host's CONNECT is terminated (MITM) and each request checked
 * against its rules; a host without rules keeps a plain tunnel; without a
 * CA, CONNECT to a hooked host is refused; SOCKS5 to it is refused. Real
 * sockets on loopback, a local HTTPS upstream with its own test CA.
 */
import assert from "node:assert/strict";
import { compileDomainPattern } from "../policy/pattern.ts";
import type { RequestRule } from "../policy/types.ts";
import type { CertificateAuthority } from "../proxy/ca.ts";
import type { DecisionEvent } from "../proxy/decision_log.ts";
import { createLeafIssuer } from "../proxy/leaf_certs.ts";
import { createMitmHandler } from "../proxy/mitm.ts";
import { startProxy } from "../proxy/server.ts";
import { createResolver } from "../proxy/resolver.ts";
import { configFor, readFramedResponse, testCa, withTimeout } from "./proxy_helpers.ts";

const HOOKED = "registry.test";
const PLAIN = "plain.test";
const ADDR = "127.0.0.3";
const enc = new TextEncoder();

async function readHead(conn: Deno.Conn): Promise<string> {
  const one = new Uint8Array(1);
  let text = "";
  while (!text.endsWith("\r\n\r\n")) {
    const n = await withTimeout(conn.read(one), 10_000, "proxy answer");
    if (n === null) return text;
    text += String.fromCharCode(one[0]);
  }
  return text;
}

const RULES: RequestRule[] = [{
  name: 'requests."registry.test"',
  host: HOOKED,
  methods: ["GET", "HEAD"],
  paths: ["/"],
  query: {},
  headers: {},
  stripHeaders: ["x-drop-me"],
  injectHeaders: [{
    name: "x-injected",
    fromEnv: "RULE_TEST_TOKEN",
    fromFile: null,
    prefix: "Tok ",
  }],
  source: "test",
}];

interface Seen {
  method: string;
  path: string;
  headers: Headers;
}

async function setup(options: { mitm: boolean; secrets?: boolean }) {
  const mitmCa = await testCa("mitm");
  const upstreamCa = await testCa("upstream");
  const issuer = createLeafIssuer(upstreamCa);
  const seen: Seen[] = [];
  const serve = (host: string) => {
    const leaf = issuer.certificateFor(host);
    return Deno.serve(
      { hostname: ADDR, port: 0, cert: leaf.chainPem, key: leaf.keyPem, onListen() {} },
      (request) => {
        seen.push({
          method: request.method,
          path: new URL(request.url).pathname,
          headers: request.headers,
        });
        return new Response(`ok ${request.method}\n`);
      },
    );
  };
  const hooked = serve(HOOKED);
  const plain = serve(PLAIN);
  const base = await configFor({ allow: [HOOKED, PLAIN], "allow-local-binding": true });
  const config = { ...base, network: { ...base.network, requestRules: RULES } };
  const events: DecisionEvent[] = [];
  const real = "REALsecretVALUE-0123456789abcdef";
  const placeholder = "PLACEholderVALUE-0123456789abcdef";
  const proxy = await startProxy({
    config,
    resolver: createResolver({ overrides: new Map([[HOOKED, [ADDR]], [PLAIN, [ADDR]]]) }),
    http: { hostname: "127.0.0.1", port: 0 },
    socks: { hostname: "127.0.0.1", port: 0 },
    mitm: options.mitm
      ? createMitmHandler({ ca: mitmCa, upstreamCaCerts: [upstreamCa.certPem], systemRoots: false })
      : null,
    onDecision: (event) => events.push(event),
    env: (name) => (name === "RULE_TEST_TOKEN" ? "from-env" : undefined),
    secrets: options.secrets
      ? {
        bindings: [{
          name: "TOKEN",
          placeholder,
          hosts: [compileDomainPattern(HOOKED, "allow")],
        }],
        values: new Map([["TOKEN", real]]),
      }
      : null,
  });
  return {
    mitmCa,
    upstreamCa,
    seen,
    events,
    proxy,
    real,
    placeholder,
    ports: { hooked: hooked.addr.port, plain: plain.addr.port },
    async close() {
      await proxy.close();
      await hooked.shutdown();
      await plain.shutdown();
    },
  };
}

async function connectThrough(
  proxyPort: number,
  host: string,
  port: number,
): Promise<{ tcp: Deno.TcpConn; head: string }> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  await tcp.write(enc.encode(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`));
  return { tcp, head: await readHead(tcp) };
}

async function tls(tcp: Deno.TcpConn, host: string, ca: CertificateAuthority) {
  return await Deno.startTls(tcp, { hostname: host, caCerts: [ca.certPem] });
}

Deno.test("full mode, hooked host: GET served with the rule's strip and inject, PUT/POST refused as mitm_hook_denied and never sent upstream", async () => {
  const t = await setup({ mitm: true });
  try {
    const { tcp, head } = await connectThrough(t.proxy.http!.port, HOOKED, t.ports.hooked);
    assert.match(head, /^HTTP\/1\.1 200 /);
    // The hooked host is terminated: the client must trust the MITM CA.
    const conn = await tls(tcp, HOOKED, t.mitmCa);
    const state = { buffered: "" };
    const authority = `${HOOKED}:${t.ports.hooked}`;
    await conn.write(
      enc.encode(`GET /pkg HTTP/1.1\r\nHost: ${authority}\r\nX-Drop-Me: 1\r\n\r\n`),
    );
    const ok = await readFramedResponse(conn, state);
    assert.equal(ok?.status, 200);
    conn.close();
    for (const method of ["PUT", "POST"]) {
      // A refused request with a body ends its tunnel: one tunnel per method.
      const next = await connectThrough(t.proxy.http!.port, HOOKED, t.ports.hooked);
      const inner = await tls(next.tcp, HOOKED, t.mitmCa);
      await inner.write(
        enc.encode(`${method} /pkg HTTP/1.1\r\nHost: ${authority}\r\nContent-Length: 2\r\n\r\nhi`),
      );
      const refused = await readFramedResponse(inner, { buffered: "" });
      try {
        inner.close();
      } catch {
        // Closed by the proxy.
      }
      assert.equal(refused?.status, 403, method);
      assert.equal(refused?.headers.get("x-proxy-error"), "blocked-by-mitm-hook");
      assert.equal(JSON.parse(refused!.body).reason, "mitm_hook_denied");
    }
    assert.deepEqual(t.seen.map((s) => `${s.method} ${s.path}`), ["GET /pkg"]);
    assert.equal(t.seen[0].headers.get("x-drop-me"), null);
    assert.equal(t.seen[0].headers.get("x-injected"), "Tok from-env");
    const denied = t.events.filter((e) => e.decision === "deny");
    assert.deepEqual(denied.map((e) => `${e.method} ${e.reason}`), [
      "PUT mitm_hook_denied",
      "POST mitm_hook_denied",
    ]);
  } finally {
    await t.close();
  }
});

Deno.test("full mode: a host without rules keeps a plain tunnel (the upstream's own certificate)", async () => {
  const t = await setup({ mitm: true });
  try {
    const { tcp, head } = await connectThrough(t.proxy.http!.port, PLAIN, t.ports.plain);
    assert.match(head, /^HTTP\/1\.1 200 /);
    // Not terminated: the upstream CA verifies, and a POST reaches it.
    const conn = await tls(tcp, PLAIN, t.upstreamCa);
    const state = { buffered: "" };
    await conn.write(
      enc.encode(`POST /x HTTP/1.1\r\nHost: ${PLAIN}\r\nContent-Length: 2\r\n\r\nhi`),
    );
    assert.equal((await readFramedResponse(conn, state))?.status, 200);
    conn.close();
    assert.deepEqual(t.seen.map((s) => s.method), ["POST"]);
  } finally {
    await t.close();
  }
});

Deno.test("no CA: CONNECT to a hooked host is refused (mitm_required), never tunnelled unchecked; SOCKS5 to it is refused", async () => {
  const t = await setup({ mitm: false });
  try {
    const { tcp, head } = await connectThrough(t.proxy.http!.port, HOOKED, t.ports.hooked);
    tcp.close();
    assert.match(head, /^HTTP\/1\.1 403 /);
    assert.match(head, /x-proxy-error: blocked-by-mitm-required/i);
    // SOCKS5 CONNECT by name to the hooked host: reply code 0x02 (not allowed by ruleset).
    const socks = await Deno.connect({ hostname: "127.0.0.1", port: t.proxy.socks!.port });
    await socks.write(new Uint8Array([5, 1, 0]));
    const greet = new Uint8Array(2);
    await withTimeout(socks.read(greet), 10_000, "socks greeting");
    const name = enc.encode(HOOKED);
    await socks.write(
      new Uint8Array([
        5,
        1,
        0,
        3,
        name.length,
        ...name,
        t.ports.hooked >> 8,
        t.ports.hooked & 255,
      ]),
    );
    const reply = new Uint8Array(10);
    await withTimeout(socks.read(reply), 10_000, "socks reply");
    socks.close();
    assert.notEqual(reply[1], 0, "SOCKS5 to a hooked host must not succeed");
    assert.equal(t.seen.length, 0);
    const reasons = t.events.map((e) => e.reason);
    assert.deepEqual(reasons, ["mitm_required", "mitm_required"]);
  } finally {
    await t.close();
  }
});

Deno.test("secrets: the placeholder becomes the real value only on the bound host; to another host it is refused and the upstream sees nothing", async () => {
  const t = await setup({ mitm: true, secrets: true });
  try {
    const { tcp } = await connectThrough(t.proxy.http!.port, HOOKED, t.ports.hooked);
    const conn = await tls(tcp, HOOKED, t.mitmCa);
    const state = { buffered: "" };
    const authority = `${HOOKED}:${t.ports.hooked}`;
    const basic = btoa(`user:${t.placeholder}`);
    await conn.write(
      enc.encode(
        `GET /a HTTP/1.1\r\nHost: ${authority}\r\nAuthorization: Basic ${basic}\r\nX-Token: ${t.placeholder}\r\n\r\n`,
      ),
    );
    assert.equal((await readFramedResponse(conn, state))?.status, 200);
    conn.close();
    assert.equal(t.seen.length, 1);
    assert.equal(t.seen[0].headers.get("x-token"), t.real);
    assert.equal(t.seen[0].headers.get("authorization"), `Basic ${btoa(`user:${t.real}`)}`);

    // The plain host is terminated too? No: it has neither rules nor a binding, so a
    // placeholder sent there in plain HTTP is refused by the proxy.
    const other = await Deno.connect({ hostname: "127.0.0.1", port: t.proxy.http!.port });
    await other.write(
      enc.encode(
        `GET http://${PLAIN}:${t.ports.plain}/leak HTTP/1.1\r\nHost: ${PLAIN}:${t.ports.plain}\r\nAuthorization: Bearer ${t.placeholder}\r\n\r\n`,
      ),
    );
    const head = await readHead(other);
    other.close();
    assert.match(head, /^HTTP\/1\.1 403 /);
    assert.match(head, /x-proxy-error: blocked-by-secret-policy/i);
    assert.equal(t.seen.length, 1, "the other host saw nothing");
    const logged = JSON.stringify(t.events);
    assert.ok(!logged.includes(t.real), "the real value is in no decision");
    assert.ok(t.events.some((e) => e.reason === "secret_wrong_host"));
  } finally {
    await t.close();
  }
});

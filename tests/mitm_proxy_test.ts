/**
 * MITM through the real proxy: `startProxy()` in limited mode with the MITM
 * handler, a client that sends CONNECT and then speaks TLS trusting only the
 * MITM CA, and a local HTTPS upstream with its own test CA behind a
 * `--resolve`-style name.
 */
import assert from "node:assert/strict";
import type { CertificateAuthority } from "../proxy/ca.ts";
import type { DecisionEvent } from "../proxy/decision_log.ts";
import { createLeafIssuer } from "../proxy/leaf_certs.ts";
import { createMitmHandler } from "../proxy/mitm.ts";
import { proxyFor, readFramedResponse, testCa, withTimeout } from "./proxy_helpers.ts";

const HOST = "upstream.test";
const ADDR = "127.0.0.3";

async function readHead(conn: Deno.Conn): Promise<string> {
  // Byte by byte so that nothing after the head (TLS) is consumed.
  const one = new Uint8Array(1);
  let text = "";
  while (!text.endsWith("\r\n\r\n")) {
    const n = await withTimeout(conn.read(one), 10_000, "proxy answer");
    if (n === null) return text;
    text += String.fromCharCode(one[0]);
  }
  return text;
}

/** CONNECTs to `authority` through the proxy, then speaks TLS trusting only `ca`. */
async function tunnel(
  proxyPort: number,
  authority: string,
  ca: CertificateAuthority,
): Promise<Deno.TlsConn> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  try {
    await tcp.write(
      new TextEncoder().encode(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`),
    );
    assert.match(await readHead(tcp), /^HTTP\/1\.1 200 /);
  } catch (error) {
    tcp.close();
    throw error;
  }
  return await Deno.startTls(tcp, { hostname: HOST, caCerts: [ca.certPem] });
}

Deno.test("startProxy() with the MITM handler: GET passes, POST is 403 with JSON, decisions carry the method", async () => {
  const mitmCa = await testCa("mitm");
  const upstreamCa = await testCa("upstream");
  const leaf = createLeafIssuer(upstreamCa).certificateFor(HOST);
  const server = Deno.serve(
    { hostname: ADDR, port: 0, cert: leaf.chainPem, key: leaf.keyPem, onListen() {} },
    (request) => new Response(`hello ${request.method} ${new URL(request.url).pathname}\n`),
  );
  const events: DecisionEvent[] = [];
  const handler = createMitmHandler({
    ca: mitmCa,
    upstreamCaCerts: [upstreamCa.certPem],
    systemRoots: false,
  });
  const proxy = await proxyFor(
    { allow: [HOST], mode: "limited", mitm: true, "allow-local-binding": true },
    {
      names: { [HOST]: [ADDR] },
      mitm: handler,
      onDecision: (event) => events.push(event),
      socks: null,
    },
  );
  let conn: Deno.TlsConn | null = null;
  try {
    const authority = `${HOST}:${server.addr.port}`;
    conn = await tunnel(proxy.http!.port, authority, mitmCa);
    const state = { buffered: "" };
    await conn.write(new TextEncoder().encode(`GET /x HTTP/1.1\r\nHost: ${authority}\r\n\r\n`));
    const ok = await readFramedResponse(conn, state);
    assert.equal(ok?.status, 200);
    assert.equal(ok?.body, "hello GET /x\n");
    await conn.write(
      new TextEncoder().encode(
        `POST /x HTTP/1.1\r\nHost: ${authority}\r\nContent-Length: 2\r\n\r\nhi`,
      ),
    );
    const blocked = await readFramedResponse(conn, state);
    assert.equal(blocked?.status, 403);
    assert.equal(blocked?.headers.get("x-proxy-error"), "blocked-by-method-policy");
    assert.equal(JSON.parse(blocked!.body).reason, "method_not_allowed");
  } finally {
    try {
      conn?.close();
    } catch {
      // Closed by the proxy.
    }
    await proxy.close();
    await server.shutdown();
  }
  const summary = events.map((e) => `${e.protocol} ${e.method} ${e.decision} ${e.reason}`);
  assert.deepEqual(summary, [
    "https-connect null allow allowed",
    "https-connect GET allow allowed",
    "https-connect POST deny method_not_allowed",
  ]);
  assert.ok(events.every((e) => e.host === HOST));
});

Deno.test("startProxy() with the MITM handler keeps an active download alive past the proxy's idle timeout", async () => {
  const mitmCa = await testCa("mitm");
  const upstreamCa = await testCa("upstream");
  const leaf = createLeafIssuer(upstreamCa).certificateFor(HOST);
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const server = Deno.serve(
    { hostname: ADDR, port: 0, cert: leaf.chainPem, key: leaf.keyPem, onListen() {} },
    () => {
      // 12 chunks 100 ms apart: 1.2 s of steady traffic, idle timeout 400 ms.
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull: (controller) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              timers.delete(timer);
              if (sent++ < 12) controller.enqueue(new TextEncoder().encode(`chunk${sent};`));
              else controller.close();
              resolve();
            }, 100);
            timers.add(timer);
          }),
      });
      return new Response(body, {
        headers: { "content-length": String("chunkNN;".length * 3 + "chunkN;".length * 9) },
      });
    },
  );
  const handler = createMitmHandler({
    ca: mitmCa,
    upstreamCaCerts: [upstreamCa.certPem],
    systemRoots: false,
  });
  const proxy = await proxyFor(
    { allow: [HOST], mode: "limited", mitm: true, "allow-local-binding": true },
    { names: { [HOST]: [ADDR] }, mitm: handler, socks: null, limits: { idleTimeoutMs: 400 } },
  );
  let conn: Deno.TlsConn | null = null;
  try {
    const authority = `${HOST}:${server.addr.port}`;
    conn = await tunnel(proxy.http!.port, authority, mitmCa);
    await conn.write(new TextEncoder().encode(`GET /slow HTTP/1.1\r\nHost: ${authority}\r\n\r\n`));
    const response = await readFramedResponse(conn, { buffered: "" });
    assert.equal(response?.status, 200);
    assert.match(response!.body, /^chunk1;.*chunk12;$/);
  } finally {
    try {
      conn?.close();
    } catch {
      // Closed by the proxy.
    }
    await proxy.close();
    await server.shutdown();
    for (const timer of timers) clearTimeout(timer);
  }
});

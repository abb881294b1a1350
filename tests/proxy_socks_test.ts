import assert from "node:assert/strict";
import { createResolver } from "../proxy/resolver.ts";
import { type DecisionEvent, startProxy } from "../proxy/server.ts";
import { configFor, fakeServer, proxyFor, readAll, readUntil, send } from "./proxy_helpers.ts";

const NAMES = { "allowed.test": ["127.0.0.2"], "other.test": ["127.0.0.3"] };
const enc = new TextEncoder();

async function readBytes(conn: Deno.Conn, n: number, timeoutMs = 5000): Promise<number[]> {
  const out: number[] = [];
  const buf = new Uint8Array(n);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${out.length} bytes`)), timeoutMs);
  });
  try {
    while (out.length < n) {
      const got = await Promise.race([conn.read(buf.subarray(0, n - out.length)), timeout]);
      if (got === null) break;
      out.push(...buf.subarray(0, got));
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}

function domainRequest(host: string, port: number, command = 0x01): Uint8Array {
  const name = enc.encode(host);
  return new Uint8Array([0x05, command, 0x00, 0x03, name.length, ...name, port >> 8, port & 0xff]);
}

async function socksConnect(
  proxyPort: number,
  request: Uint8Array,
): Promise<{ conn: Deno.Conn; reply: number[] }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  await send(conn, new Uint8Array([0x05, 0x01, 0x00]));
  assert.deepEqual(await readBytes(conn, 2), [0x05, 0x00]);
  await send(conn, request);
  const reply = await readBytes(conn, 10);
  return { conn, reply };
}

function echoServer(hostname: string) {
  return fakeServer(hostname, async (conn) => {
    const buf = new Uint8Array(100);
    const n = await conn.read(buf);
    await send(conn, "echo:" + new TextDecoder().decode(buf.subarray(0, n ?? 0)));
  });
}

Deno.test("SOCKS5 CONNECT with a domain ATYP reaches the checked address and replies with the bound address", async () => {
  await using upstream = echoServer("127.0.0.2");
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  const { conn, reply } = await socksConnect(
    proxy.socks!.port,
    domainRequest("allowed.test", upstream.port),
  );
  try {
    assert.deepEqual(reply.slice(0, 4), [0x05, 0x00, 0x00, 0x01]);
    assert.equal(reply[4], 127, "bound address is the proxy's loopback side");
    assert.ok(((reply[8] << 8) | reply[9]) > 0, "bound port is set");
    await send(conn, "hi");
    assert.equal(await readAll(conn), "echo:hi");
  } finally {
    conn.close();
  }
});

Deno.test("SOCKS5 CONNECT with IPv4 and IPv6 ATYPs", async () => {
  await using upstream = echoServer("127.0.0.2");
  await using proxy = await proxyFor({ allow: ["127.0.0.2", "::1"] }, { names: NAMES });
  const v4 = await socksConnect(
    proxy.socks!.port,
    new Uint8Array([
      0x05,
      0x01,
      0x00,
      0x01,
      127,
      0,
      0,
      2,
      upstream.port >> 8,
      upstream.port & 0xff,
    ]),
  );
  try {
    assert.equal(v4.reply[1], 0x00);
    await send(v4.conn, "v4");
    assert.equal(await readAll(v4.conn), "echo:v4");
  } finally {
    v4.conn.close();
  }
  await using v6server = echoServer("::1");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.socks!.port });
  try {
    await send(conn, new Uint8Array([0x05, 0x01, 0x00]));
    assert.deepEqual(await readBytes(conn, 2), [0x05, 0x00]);
    const port = v6server.port;
    await send(
      conn,
      new Uint8Array([0x05, 0x01, 0x00, 0x04, ...new Array(15).fill(0), 1, port >> 8, port & 0xff]),
    );
    const reply = await readBytes(conn, 22);
    assert.deepEqual(reply.slice(0, 4), [0x05, 0x00, 0x00, 0x04], "IPv6 bound address");
    assert.deepEqual(reply.slice(4, 20), [...new Array(15).fill(0), 1]);
    await send(conn, "v6");
    assert.equal(await readAll(conn), "echo:v6");
  } finally {
    conn.close();
  }
});

Deno.test("SOCKS5 judges a domain that is an IP literal in any spelling as that IP", async () => {
  await using upstream = echoServer("127.0.0.2");
  await using proxy = await proxyFor({ allow: ["127.0.0.2"] }, { names: NAMES });
  for (const spelling of ["0x7f.0.0.2", "2130706434", "127.2"]) {
    const ok = await socksConnect(proxy.socks!.port, domainRequest(spelling, upstream.port));
    ok.conn.close();
    assert.equal(ok.reply[1], 0x00, spelling);
  }
  for (const spelling of ["0x7f.1", "2130706433", "[::ffff:127.0.0.1]"]) {
    const blocked = await socksConnect(proxy.socks!.port, domainRequest(spelling, upstream.port));
    blocked.conn.close();
    assert.equal(blocked.reply[1], 0x02, spelling);
  }
});

Deno.test("SOCKS5 answers a policy block with 0x02 and never connects", async () => {
  await using upstream = echoServer("127.0.0.3");
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  const { conn, reply } = await socksConnect(
    proxy.socks!.port,
    domainRequest("other.test", upstream.port),
  );
  conn.close();
  assert.equal(reply[1], 0x02);
  assert.equal(upstream.accepted, 0);
});

Deno.test("SOCKS5 refuses BIND and UDP ASSOCIATE with 0x07", async () => {
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  for (const command of [0x02, 0x03]) {
    const { conn, reply } = await socksConnect(
      proxy.socks!.port,
      domainRequest("allowed.test", 80, command),
    );
    conn.close();
    assert.equal(reply[1], 0x07);
  }
});

Deno.test("SOCKS5 offers only no-auth and closes on garbage", async () => {
  await using proxy = await proxyFor({ allow: ["allowed.test"] }, { names: NAMES });
  const userPass = await Deno.connect({ hostname: "127.0.0.1", port: proxy.socks!.port });
  try {
    await send(userPass, new Uint8Array([0x05, 0x01, 0x02]));
    assert.deepEqual(await readBytes(userPass, 3), [0x05, 0xff]);
  } finally {
    userPass.close();
  }
  const socks4 = await Deno.connect({ hostname: "127.0.0.1", port: proxy.socks!.port });
  try {
    await send(socks4, new Uint8Array([0x04, 0x01, 0x00, 0x50, 127, 0, 0, 2, 0]));
    assert.deepEqual(await readBytes(socks4, 1), []);
  } finally {
    socks4.close();
  }
});

Deno.test("SOCKS5 is refused in limited mode", async () => {
  await using upstream = echoServer("127.0.0.2");
  await using proxy = await proxyFor({ allow: ["allowed.test"], mode: "limited" }, {
    names: NAMES,
  });
  const { conn, reply } = await socksConnect(
    proxy.socks!.port,
    domainRequest("allowed.test", upstream.port),
  );
  conn.close();
  assert.equal(reply[1], 0x02);
  assert.equal(upstream.accepted, 0);
});

Deno.test("the unix socket serves HTTP and SOCKS5, told apart by the first byte", async () => {
  await using upstream = echoServer("127.0.0.2");
  const dir = await Deno.makeTempDir();
  const path = `${dir}/proxy.sock`;
  try {
    await using proxy = await proxyFor({ allow: ["allowed.test"] }, {
      names: NAMES,
      http: null,
      socks: null,
      unixPath: path,
    });
    assert.equal(proxy.unixPath, path);
    const socks = await Deno.connect({ path, transport: "unix" });
    try {
      await send(socks, new Uint8Array([0x05, 0x01, 0x00]));
      assert.deepEqual(await readBytes(socks, 2), [0x05, 0x00]);
      await send(socks, domainRequest("allowed.test", upstream.port));
      assert.equal((await readBytes(socks, 10))[1], 0x00);
      await send(socks, "via-socks");
      assert.equal(await readAll(socks), "echo:via-socks");
    } finally {
      socks.close();
    }
    const http = await Deno.connect({ path, transport: "unix" });
    try {
      await send(
        http,
        `CONNECT allowed.test:${upstream.port} HTTP/1.1\r\nHost: allowed.test:${upstream.port}\r\n\r\n`,
      );
      await readUntil(http, (t) => t.includes("\r\n\r\n"));
      await send(http, "via-http");
      assert.equal(await readAll(http), "echo:via-http");
    } finally {
      http.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SOCKS5 is refused with 0x02 when the configuration turns it off, even on the unix socket", async () => {
  await using upstream = echoServer("127.0.0.2");
  const dir = await Deno.makeTempDir();
  const path = `${dir}/proxy.sock`;
  const events: DecisionEvent[] = [];
  try {
    const config = await configFor({ allow: ["allowed.test"] });
    await using _proxy = await startProxy({
      config: { ...config, network: { ...config.network, enableSocks5: false } },
      resolver: createResolver({ overrides: new Map(Object.entries(NAMES)) }),
      http: null,
      socks: null,
      unixPath: path,
      onDecision: (event) => events.push(event),
    });
    const socks = await Deno.connect({ path, transport: "unix" });
    try {
      await send(socks, new Uint8Array([0x05, 0x01, 0x00]));
      assert.deepEqual(await readBytes(socks, 2), [0x05, 0x00]);
      await send(socks, domainRequest("allowed.test", upstream.port));
      assert.equal((await readBytes(socks, 10))[1], 0x02, "connection not allowed by ruleset");
    } finally {
      socks.close();
    }
    assert.deepEqual(events.map((e) => [e.protocol, e.decision, e.reason]), [
      ["socks5", "deny", "socks_disabled"],
    ]);
    assert.equal(upstream.accepted, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

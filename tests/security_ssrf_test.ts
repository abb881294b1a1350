/**
 * Regression probes for server-side request forgery through the proxy:
 * odd spellings of non-public addresses on every way in (absolute-form,
 * CONNECT, SOCKS5 with a domain, IPv4 and IPv6 address type), DNS
 * rebinding (the proxy connects only to the address it checked, and asks
 * the resolver once), and the proxy connecting to itself over SOCKS5 and
 * absolute-form (CONNECT is in tests/proxy_http_test.ts).
 *
 * The policy allows `*`: every public host, so only the non-public address
 * rules stand between a client and these targets. A fake server listens on
 * 127.0.0.1 and counts accepts; it must see none.
 */
import assert from "node:assert/strict";
import { parseIpLiteral } from "../policy/address.ts";
import { type DecisionEvent, startProxy } from "../proxy/server.ts";
import {
  completeResponse,
  configFor,
  exchange,
  fakeServer,
  parseResponse,
  readUntil,
  respondWith,
  send,
} from "./proxy_helpers.ts";

const enc = new TextEncoder();

/** Spellings of non-public addresses; each comes with what it must be judged as. */
const SPELLINGS: [string, string][] = [
  ["127.0.0.1", "127.0.0.1"],
  ["127.1", "127.0.0.1"],
  ["0x7f.1", "127.0.0.1"],
  ["0x7F000001", "127.0.0.1"],
  ["2130706433", "127.0.0.1"],
  ["017700000001", "127.0.0.1"],
  ["0177.0.0.01", "127.0.0.1"],
  ["127.0.0.1.", "127.0.0.1"],
  ["0", "0.0.0.0"],
  ["0.0.0.0", "0.0.0.0"],
  ["169.254.169.254", "169.254.169.254"],
  ["0xa9fea9fe", "169.254.169.254"],
  ["10.1", "10.0.0.1"],
  ["100.64.0.1", "100.64.0.1"],
  ["[::1]", "::1"],
  ["[::]", "::"],
  ["[::ffff:127.0.0.1]", "::ffff:127.0.0.1"],
  ["[::ffff:7f00:1]", "::ffff:127.0.0.1"],
  ["[0:0:0:0:0:ffff:7f00:0001]", "::ffff:127.0.0.1"],
  ["[::127.0.0.1]", "::7f00:1"],
  ["[64:ff9b::a9fe:a9fe]", "64:ff9b::a9fe:a9fe"],
  ["[2002:7f00:1::1]", "2002:7f00:1::1"],
  ["[fe80::1]", "fe80::1"],
  ["[fc00::1]", "fc00::1"],
];

async function readBytes(conn: Deno.Conn, n: number): Promise<number[]> {
  const out: number[] = [];
  const buf = new Uint8Array(n);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), 5000);
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

/** One SOCKS5 CONNECT; returns the reply code (or -1 when the proxy closed without one). */
async function socks(
  port: number,
  atyp: number,
  address: number[],
  target: number,
): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await send(conn, new Uint8Array([5, 1, 0]));
    assert.deepEqual(await readBytes(conn, 2), [5, 0]);
    const addr = atyp === 3 ? [address.length, ...address] : address;
    await send(conn, new Uint8Array([5, 1, 0, atyp, ...addr, target >> 8, target & 0xff]));
    const reply = await readBytes(conn, 10);
    return reply.length >= 2 ? reply[1] : -1;
  } finally {
    conn.close();
  }
}

async function allowAllProxy(events: DecisionEvent[]) {
  return await startProxy({
    config: await configFor({ allow: ["*"] }),
    resolver: () => Promise.reject(new Error("no lookups in this test")),
    http: { hostname: "127.0.0.1", port: 0 },
    socks: { hostname: "127.0.0.1", port: 0 },
    onDecision: (e) => events.push(e),
  });
}

Deno.test("SSRF: odd spellings of non-public addresses are refused on every way in, and never connected", async (t) => {
  await using target = fakeServer("127.0.0.1", respondWith("leak"));
  const events: DecisionEvent[] = [];
  await using proxy = await allowAllProxy(events);
  const p = target.port;
  for (const [spelling, meant] of SPELLINGS) {
    await t.step(spelling, async () => {
      const before = events.length;
      const get = parseResponse(
        await exchange(
          proxy.http!.port,
          `GET http://${spelling}:${p}/ HTTP/1.1\r\nHost: ${spelling}:${p}\r\n\r\n`,
        ),
      );
      assert.equal(get.status, 403, `absolute-form ${spelling}`);
      const connect = parseResponse(
        await exchange(proxy.http!.port, `CONNECT ${spelling}:${p} HTTP/1.1\r\n\r\n`),
      );
      assert.equal(connect.status, 403, `CONNECT ${spelling}`);
      const bare = spelling.replace(/^\[|\]$/g, "");
      assert.equal(
        await socks(proxy.socks!.port, 3, [...enc.encode(bare)], p),
        2,
        `SOCKS5 domain ${bare}`,
      );
      const ip = parseIpLiteral(meant)!;
      const atyp = ip.family === 4 ? 1 : 4;
      assert.equal(
        await socks(proxy.socks!.port, atyp, [...ip.bytes], p),
        2,
        `SOCKS5 ATYP ${atyp}`,
      );
      const seen = events.slice(before);
      assert.equal(seen.length, 4);
      for (const e of seen) {
        assert.equal(e.decision, "deny");
        assert.equal(e.reason, "not_allowed_local", JSON.stringify(e));
        assert.equal(parseIpLiteral(e.host)?.canonical, ip.canonical, JSON.stringify(e));
      }
    });
  }
  assert.equal(target.accepted, 0);
});

Deno.test("DNS rebinding: the proxy connects only to the address it checked and asks the resolver once", async (t) => {
  // Two servers on the same port: 127.0.0.2 is what the first answer says, 127.0.0.3 what the
  // name "rebinds" to on any later lookup. Only the first may ever be reached.
  await using checked = fakeServer("127.0.0.2", respondWith("checked"));
  const port = checked.port;
  // The rebound address listens on the same port (when it is free there) and counts accepts.
  let reboundAccepts = 0;
  let rebound: Deno.TcpListener | null = null;
  try {
    rebound = Deno.listen({ hostname: "127.0.0.3", port });
  } catch {
    // Port taken on 127.0.0.3: the lookup count and the answer still show where it went.
  }
  const reboundLoop = (async () => {
    if (rebound === null) return;
    for await (const conn of rebound) {
      reboundAccepts++;
      conn.close();
    }
  })();
  let lookups = 0;
  const resolver = (host: string) => {
    lookups++;
    return Promise.resolve(host === "rebind.test" && lookups > 1 ? ["127.0.0.3"] : ["127.0.0.2"]);
  };
  await using proxy = await startProxy({
    config: await configFor({ allow: ["rebind.test"] }),
    resolver,
    http: { hostname: "127.0.0.1", port: 0 },
    socks: { hostname: "127.0.0.1", port: 0 },
  });
  // Each way in, one fresh lookup each: the first answer of every decision is 127.0.0.2 only
  // for the very first lookup, so the resolver is reset between steps.
  const ways: [string, () => Promise<string>][] = [
    [
      "absolute-form",
      async () =>
        parseResponse(
          await exchange(
            proxy.http!.port,
            `GET http://rebind.test:${port}/ HTTP/1.1\r\nHost: rebind.test:${port}\r\nConnection: close\r\n\r\n`,
          ),
        ).body,
    ],
    [
      "CONNECT",
      async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.http!.port });
        try {
          await send(conn, `CONNECT rebind.test:${port} HTTP/1.1\r\n\r\n`);
          await readBytes(conn, "HTTP/1.1 200 Connection Established\r\n\r\n".length);
          await send(conn, `GET / HTTP/1.1\r\nHost: rebind.test\r\nConnection: close\r\n\r\n`);
          return parseResponse(await readUntil(conn, completeResponse)).body;
        } finally {
          conn.close();
        }
      },
    ],
    [
      "SOCKS5",
      async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.socks!.port });
        try {
          const name = [...enc.encode("rebind.test")];
          await send(
            conn,
            new Uint8Array([5, 1, 0, 5, 1, 0, 3, name.length, ...name, port >> 8, port & 0xff]),
          );
          const reply = await readBytes(conn, 12);
          assert.equal(reply[3], 0, JSON.stringify(reply));
          await send(conn, `GET / HTTP/1.1\r\nHost: rebind.test\r\nConnection: close\r\n\r\n`);
          return parseResponse(await readUntil(conn, completeResponse)).body;
        } finally {
          conn.close();
        }
      },
    ],
  ];
  for (const [name, run] of ways) {
    await t.step(name, async () => {
      lookups = 0;
      assert.equal(await run(), "checked");
      assert.equal(lookups, 1, "the proxy resolved the name again");
    });
  }
  rebound?.close();
  await reboundLoop;
  assert.equal(reboundAccepts, 0);
});

Deno.test("SSRF: a name whose answer is non-public is refused under a wildcard, before any connection", async () => {
  await using target = fakeServer("127.0.0.1", respondWith("leak"));
  let lookups = 0;
  await using proxy = await startProxy({
    config: await configFor({ allow: ["*.test"] }),
    resolver: (host) => {
      lookups++;
      return Promise.resolve(host === "mixed.test" ? ["127.0.0.2", "127.0.0.1"] : ["127.0.0.1"]);
    },
    http: { hostname: "127.0.0.1", port: 0 },
    socks: null,
  });
  for (const host of ["metadata.test", "mixed.test"]) {
    const r = parseResponse(
      await exchange(
        proxy.http!.port,
        `GET http://${host}:${target.port}/ HTTP/1.1\r\nHost: ${host}:${target.port}\r\n\r\n`,
      ),
    );
    assert.equal(r.status, 403, host);
    assert.equal(JSON.parse(r.body).reason, "not_allowed_local");
  }
  assert.equal(lookups, 2);
  assert.equal(target.accepted, 0);
});

Deno.test("self-connect: SOCKS5 and absolute-form requests to the proxy's own listeners are refused", async (t) => {
  const events: DecisionEvent[] = [];
  await using proxy = await startProxy({
    config: await configFor({ allow: ["127.0.0.1", "self.test"], "allow-local-binding": true }),
    resolver: () => Promise.resolve(["127.0.0.1"]),
    http: { hostname: "127.0.0.1", port: 0 },
    socks: { hostname: "127.0.0.1", port: 0 },
    onDecision: (e) => events.push(e),
  });
  for (const own of [proxy.http!.port, proxy.socks!.port]) {
    await t.step(`SOCKS5 to ${own}`, async () => {
      assert.equal(await socks(proxy.socks!.port, 1, [127, 0, 0, 1], own), 2);
      assert.equal(await socks(proxy.socks!.port, 3, [...enc.encode("self.test")], own), 2);
    });
    await t.step(`absolute-form to ${own}`, async () => {
      const r = parseResponse(
        await exchange(
          proxy.http!.port,
          `GET http://127.0.0.1:${own}/ HTTP/1.1\r\nHost: 127.0.0.1:${own}\r\n\r\n`,
        ),
      );
      assert.equal(r.status, 403);
      assert.match(JSON.parse(r.body).detail, /own listener/);
    });
  }
  assert.ok(events.every((e) => e.decision === "deny"));
});

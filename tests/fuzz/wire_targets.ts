/**
 * Fuzz targets that go through a real proxy on loopback sockets, one
 * connection per input (the SOCKS5 parser in proxy/socks5.ts reads straight
 * from the connection and has no pure parse function to call):
 *
 * - `socks5_wire`: greetings and requests built from valid and hostile parts
 *   (every ATYP, wrong versions, reserved bytes, commands, domain lengths,
 *   control bytes, IP literals in odd spellings inside a domain, truncation,
 *   trailing junk) and raw bytes.
 * - `http_wire`: absolute-form and CONNECT requests to allowed, denied and
 *   non-public targets, with smuggling headers and pipelined extras.
 *
 * Properties: the proxy answers within the time limit and closes; SOCKS5
 * replies are well-formed and carry the code the input calls for; every
 * decision matches a model of the policy; and a refused request never
 * causes an upstream connection (the fake upstream counts accepts; over the
 * whole run, accepts never exceed allowed decisions).
 *
 * @module
 */
import fc from "fast-check";
import { parseIpLiteral } from "../../policy/address.ts";
import { normalizeHost } from "../../policy/host.ts";
import type { DecisionEvent, RunningProxy } from "../../proxy/server.ts";
import { fakeServer, proxyFor, send } from "../proxy_helpers.ts";
import {
  check,
  type FuzzReport,
  type FuzzRunOptions,
  type FuzzTarget,
  runAsync,
} from "./harness.ts";

const ALLOWED_IP = "127.0.0.2";
/**
 * Every name a wildcard rule could let through has an override, so no input
 * ever makes the proxy ask real DNS; the non-public answers are refused by
 * policy before any connection.
 */
const NAMES = {
  "allowed.test": [ALLOWED_IP],
  "private.wild.test": ["10.0.0.1"],
  "loop.wild.test": ["127.0.0.1"],
};

/** A proxy allowing `allowed.test`, `127.0.0.2` and `*.wild.test`, with a counting upstream on 127.0.0.2. */
async function harness(): Promise<
  AsyncDisposable & {
    proxy: RunningProxy;
    upstreamPort: number;
    accepted: () => number;
    events: DecisionEvent[];
  }
> {
  const upstream = fakeServer(ALLOWED_IP, async (conn) => {
    // Read whatever comes (briefly), answer one small response, close.
    const buf = new Uint8Array(4096);
    const timer = setTimeout(() => conn.close(), 2000);
    try {
      const n = await conn.read(buf);
      if (n !== null) {
        await send(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
      }
    } finally {
      clearTimeout(timer);
    }
  });
  const events: DecisionEvent[] = [];
  const proxy = await proxyFor(
    { allow: ["allowed.test", ALLOWED_IP, "*.wild.test"], deny: ["denied.test"] },
    {
      names: NAMES,
      onDecision: (e) => events.push(e),
      limits: { socksHandshakeTimeoutMs: 3000, headerTimeoutMs: 3000, connectTimeoutMs: 2000 },
    },
  );
  return {
    proxy,
    upstreamPort: upstream.port,
    accepted: () => upstream.accepted,
    events,
    async [Symbol.asyncDispose]() {
      await proxy.close();
      await upstream.close();
    },
  };
}

async function exchangeBytes(port: number, bytes: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    try {
      await send(conn, bytes);
      await conn.closeWrite();
    } catch {
      // The proxy may close before reading everything: what it answered still counts.
    }
    const chunks: number[] = [];
    const buf = new Uint8Array(4096);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), 5000);
    });
    try {
      for (;;) {
        const n = await Promise.race([conn.read(buf).catch(() => null), timeout]);
        if (n === null) break;
        chunks.push(...buf.subarray(0, n));
      }
    } finally {
      clearTimeout(timer);
    }
    return new Uint8Array(chunks);
  } finally {
    conn.close();
  }
}

/** Waits (briefly) until `accepted()` reaches `want`. */
async function settle(accepted: () => number, want: number): Promise<void> {
  for (let i = 0; i < 200 && accepted() < want; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// ---------------------------------------------------------------- socks5_wire

interface SocksInput {
  greeting: readonly number[];
  version: number;
  command: number;
  reserved: number;
  atyp: number;
  address: readonly number[];
  port: "upstream" | number;
  cut: number | null;
  junk: readonly number[];
  raw: readonly number[] | null;
}

const DOMAINS = [
  "allowed.test",
  "ALLOWED.test.",
  "allowed.test:1",
  "denied.test",
  "other.test",
  "private.wild.test",
  "loop.wild.test",
  "127.0.0.2",
  "0x7f.0.0.2",
  "2130706434",
  "127.0.0.1",
  "0177.0.0.1",
  "localhost",
  "[::ffff:127.0.0.2]",
  "allowed.test\u0000.evil",
  "allowed.test evil",
];

const socksInput: fc.Arbitrary<SocksInput> = fc.record({
  greeting: fc.oneof(
    { weight: 8, arbitrary: fc.constant([5, 1, 0]) },
    {
      weight: 1,
      arbitrary: fc.constantFrom([5, 2, 2, 0], [5, 1, 2], [4, 1, 0], [5, 0], [5, 3, 0]),
    },
    { weight: 1, arbitrary: fc.array(fc.nat({ max: 255 }), { maxLength: 4 }) },
  ),
  version: fc.oneof({ weight: 12, arbitrary: fc.constant(5) }, fc.nat({ max: 255 })),
  command: fc.oneof({ weight: 10, arbitrary: fc.constant(1) }, fc.constantFrom(2, 3, 0, 9)),
  reserved: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, fc.nat({ max: 255 })),
  atyp: fc.oneof({ weight: 10, arbitrary: fc.constantFrom(1, 3, 3, 4) }, fc.nat({ max: 255 })),
  address: fc.oneof(
    fc.constantFrom(...DOMAINS).map((d) => Array.from(d, (c) => c.charCodeAt(0) & 0xff)),
    fc.constantFrom([127, 0, 0, 2], [127, 0, 0, 1], [10, 0, 0, 1], [0, 0, 0, 0]),
    fc.constantFrom(
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2],
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
      [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 2],
    ),
    fc.array(fc.nat({ max: 255 }), { maxLength: 20 }),
  ),
  port: fc.oneof({ weight: 6, arbitrary: fc.constant("upstream" as const) }, fc.constantFrom(0, 1)),
  cut: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, fc.nat({ max: 40 })),
  junk: fc.oneof(
    { weight: 6, arbitrary: fc.constant([]) },
    fc.array(fc.nat({ max: 255 }), { maxLength: 8 }),
  ),
  raw: fc.oneof(
    { weight: 9, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.array(fc.nat({ max: 255 }), { maxLength: 40 }) },
  ),
});

function socksBytes(input: SocksInput, upstreamPort: number): Uint8Array {
  if (input.raw !== null) return new Uint8Array(input.raw);
  const address = input.atyp === 3
    ? [input.address.length & 0xff, ...input.address]
    : input.address;
  const port = input.port === "upstream" ? upstreamPort : input.port;
  const all = [
    ...input.greeting,
    input.version,
    input.command,
    input.reserved,
    input.atyp,
    ...address,
    port >> 8,
    port & 0xff,
    ...input.junk,
  ];
  return new Uint8Array(input.cut === null ? all : all.slice(0, input.cut));
}

type SocksExpect =
  | { kind: "close"; methodReply: number | null }
  | { kind: "reply"; code: number; host: string | null; port: number };

/** What a correct SOCKS5 proxy with this policy answers to `bytes`. */
function socksModel(bytes: Uint8Array): SocksExpect {
  let i = 0;
  const need = (n: number) => i + n <= bytes.length;
  if (!need(2) || bytes[0] !== 5 || bytes[1] === 0) return { kind: "close", methodReply: null };
  const count = bytes[1];
  if (!need(2 + count)) return { kind: "close", methodReply: null };
  const noAuth = bytes.subarray(2, 2 + count).includes(0);
  i = 2 + count;
  if (!noAuth) return { kind: "close", methodReply: 0xff };
  if (!need(4) || bytes[i] !== 5 || bytes[i + 2] !== 0) return { kind: "close", methodReply: 0 };
  const command = bytes[i + 1];
  const atyp = bytes[i + 3];
  i += 4;
  let host: string;
  if (atyp === 1) {
    if (!need(4)) return { kind: "close", methodReply: 0 };
    host = Array.from(bytes.subarray(i, i + 4)).join(".");
    i += 4;
  } else if (atyp === 4) {
    if (!need(16)) return { kind: "close", methodReply: 0 };
    const groups: string[] = [];
    for (let g = 0; g < 16; g += 2) {
      groups.push(((bytes[i + g] << 8) | bytes[i + g + 1]).toString(16));
    }
    host = groups.join(":");
    i += 16;
  } else if (atyp === 3) {
    if (!need(1) || bytes[i] === 0 || !need(1 + bytes[i])) return { kind: "close", methodReply: 0 };
    const raw = bytes.subarray(i + 1, i + 1 + bytes[i]);
    i += 1 + bytes[i];
    host = raw.every((b) => b > 0x20 && b < 0x7f) ? String.fromCharCode(...raw) : "";
  } else {
    return { kind: "reply", code: 8, host: null, port: 0 };
  }
  if (!need(2)) return { kind: "close", methodReply: 0 };
  const port = (bytes[i] << 8) | bytes[i + 1];
  if (command !== 1) return { kind: "reply", code: 7, host: null, port };
  const name = normalizeHost(host);
  const ip = parseIpLiteral(name);
  const allowed = port >= 1 &&
    (name === "allowed.test" || (ip !== null && ip.canonical === ALLOWED_IP));
  return { kind: "reply", code: allowed ? 0 : 2, host, port };
}

/** `socks5_wire`. */
export const socks5WireTarget: FuzzTarget = {
  name: "socks5_wire",
  description:
    "SOCKS5 through a real loopback proxy: replies match a model, refusals never connect",
  kind: "socket",
  async run(options: FuzzRunOptions): Promise<FuzzReport> {
    await using h = await harness();
    let allowedConnects = 0;
    const result = await runAsync("socks5_wire", socksInput, async (input) => {
      const bytes = socksBytes(input, h.upstreamPort);
      const expect = socksModel(bytes);
      const eventsBefore = h.events.length;
      const acceptedBefore = h.accepted();
      const reply = await exchangeBytes(h.proxy.socks!.port, bytes);
      const text = `input ${JSON.stringify(Array.from(bytes))} got ${
        JSON.stringify(Array.from(reply))
      }`;
      const events = h.events.slice(eventsBefore).filter((e) => e.protocol === "socks5");
      if (expect.kind === "close") {
        const want = expect.methodReply === null ? [] : [5, expect.methodReply];
        check(
          reply.length === want.length && want.every((b, k) => reply[k] === b),
          `expected ${JSON.stringify(want)} then close; ${text}`,
        );
        check(events.length === 0, `a decision was made for an incomplete request; ${text}`);
      } else {
        check(reply[0] === 5 && reply[1] === 0, `no method reply; ${text}`);
        const r = reply.subarray(2);
        check(r.length >= 10 && r[0] === 5 && r[2] === 0, `malformed reply; ${text}`);
        const hostReached = expect.code === 0 && expect.port === h.upstreamPort;
        if (expect.code === 0 && !hostReached) {
          // Allowed but to a port nothing listens on: refused by the kernel, not the policy.
          check(r[1] !== 2, `an allowed request was refused by policy; ${text}`);
        } else {
          check(r[1] === expect.code, `reply code ${r[1]}, expected ${expect.code}; ${text}`);
        }
        const want = expect.code === 0 ? "allow" : expect.code === 2 ? "deny" : null;
        if (want === null) check(events.length === 0, `a decision for a refused command; ${text}`);
        else {check(
            events.length === 1 && events[0].decision === want,
            `decision ${JSON.stringify(events)}; ${text}`,
          );}
        if (hostReached) {
          allowedConnects++;
          await settle(h.accepted, acceptedBefore + 1);
        }
      }
      check(
        h.accepted() <= allowedConnects,
        `upstream accepted ${h.accepted()} connections for ${allowedConnects} allowed; ${text}`,
      );
    }, options);
    return { ...result, notes: `${allowedConnects} allowed connections reached the upstream` };
  },
};

// ---------------------------------------------------------------- http_wire

const HOSTS = [
  "allowed.test",
  "ALLOWED.TEST.",
  "denied.test",
  "other.test",
  "private.wild.test",
  "loop.wild.test",
  "127.0.0.2",
  "0x7f.0.0.2",
  "127.0.0.1",
  "2130706433",
  "[::ffff:127.0.0.1]",
  "[::1]",
  "localhost",
  "0",
  "10.1",
];

const EXTRA = [
  "",
  "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
  "Content-Length: 5\r\nContent-Length: 6\r\n",
  "Transfer-Encoding: chunked, identity\r\n",
  "Transfer-Encoding: chunked\r\n",
  "Content-Length: 0\r\n",
  "X-A: 1\r\n 2\r\n",
  "X-A: 1\n",
  "Connection: Upgrade\r\nUpgrade: websocket\r\n",
  "Host: other.test\r\n",
];

const httpInput = fc.record({
  method: fc.constantFrom("GET", "POST", "CONNECT", "HEAD", "get"),
  host: fc.constantFrom(...HOSTS),
  hostHeader: fc.constantFrom("same", "none", "other"),
  usePort: fc.constantFrom("upstream", "none", "1"),
  extra: fc.constantFrom(...EXTRA),
  body: fc.constantFrom(
    "",
    "hello",
    "0\r\n\r\n",
    "0\r\n\r\nGET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n",
  ),
  pipeline: fc.boolean(),
});

type HttpInput = typeof httpInput extends fc.Arbitrary<infer T> ? T : never;

function httpBytes(input: HttpInput, upstreamPort: number): string {
  const port = input.usePort === "upstream"
    ? `:${upstreamPort}`
    : input.usePort === "1"
    ? ":1"
    : "";
  const authority = `${input.host}${port}`;
  const target = input.method === "CONNECT" ? authority : `http://${authority}/x`;
  const host = input.hostHeader === "same"
    ? `Host: ${authority}\r\n`
    : input.hostHeader === "other"
    ? "Host: denied.test\r\n"
    : "";
  let text =
    `${input.method} ${target} HTTP/1.1\r\n${host}${input.extra}Connection: close\r\n\r\n${input.body}`;
  if (input.pipeline) text += `GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n`;
  return text;
}

/** `http_wire`. */
export const httpWireTarget: FuzzTarget = {
  name: "http_wire",
  description: "HTTP proxy requests through a real loopback proxy: refusals never connect",
  kind: "socket",
  async run(options: FuzzRunOptions): Promise<FuzzReport> {
    await using h = await harness();
    let allowed = 0;
    const result = await runAsync("http_wire", httpInput, async (input) => {
      const request = httpBytes(input, h.upstreamPort);
      const eventsBefore = h.events.length;
      const acceptedBefore = h.accepted();
      const reply = new TextDecoder().decode(
        await exchangeBytes(h.proxy.http!.port, new TextEncoder().encode(request)),
      );
      const text = `request ${JSON.stringify(request)} got ${JSON.stringify(reply.slice(0, 200))}`;
      const events = h.events.slice(eventsBefore);
      const allows = events.filter((e) => e.decision === "allow").length;
      allowed += allows;
      check(
        reply === "" || /^HTTP\/1\.1 [1-5][0-9][0-9] /.test(reply),
        `not an HTTP answer; ${text}`,
      );
      const status = Number(reply.slice(9, 12));
      if (status === 403) check(allows === 0, `refused by policy after an allow; ${text}`);
      for (const e of events) {
        if (e.decision !== "allow") continue;
        const name = normalizeHost(e.host);
        check(
          name === "allowed.test" || name === ALLOWED_IP,
          `allowed ${JSON.stringify(e.host)}; ${text}`,
        );
      }
      if (allows > 0 && input.usePort === "upstream") await settle(h.accepted, acceptedBefore + 1);
      check(
        h.accepted() - acceptedBefore <= allows,
        `${
          h.accepted() - acceptedBefore
        } upstream connections for ${allows} allowed decisions; ${text}`,
      );
    }, options);
    return { ...result, notes: `${allowed} requests were allowed` };
  },
};

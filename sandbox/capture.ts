/**
 * Transparent capture, the listening side: names without DNS and listeners
 * that learn which name a connection was for. It runs in the launcher itself
 * as root (its socket-creating steps wrapped to happen inside the sandbox's
 * namespace) and in the bridge process unprivileged.
 *
 * Inside the sandbox's network namespace it
 * 1. puts {@linkcode CAPTURE_DNS_ADDRESS}/15 on the loopback device (rtnetlink,
 *    spoken directly: a Deno process has no iproute2, and an `ip` child would
 *    cost a fork and a dependency). On a loopback device the kernel routes the
 *    whole prefix locally, so every address of 198.18.0.0/15 can be bound;
 * 2. answers DNS on {@linkcode CAPTURE_DNS_ADDRESS}:53 (UDP): every A query
 *    gets a synthetic address from that range, remembered with its name; AAAA
 *    and other types get an empty answer (the namespace has no IPv6 route
 *    besides ::1, so clients fall back to the A record). Nothing is looked up
 *    for real: a name the policy refuses costs no lookup anywhere;
 * 3. binds, before it answers, one listener per captured port on the new
 *    address; a connection accepted there is for that name and that port.
 *    The accepted socket's local address says so: no iptables, no packet
 *    handling, and nothing listens on the sandbox's own loopback
 *    (127.0.0.0/8 and ::1 stay the command's).
 *
 * 4. puts each literal address an allow rule names (`203.0.113.7:5432`,
 *    `[2001:db8::7]:443`) on the loopback device too (a /32 or /128) and binds
 *    the same listeners there, so a program that connects to the address
 *    itself is decided by the policy with that address as the host. Only
 *    those addresses: a wildcard listener would take 127.0.0.1:80 and :443
 *    from the command's own servers, and an address no rule names keeps
 *    having no route. Never loopback, the synthetic range, or an address a
 *    listener cannot own ({@linkcode uncapturableAddress}).
 *
 * Each captured connection goes to the proxy with what was learnt about it
 * (`{"host","port","kind","program"}`): handed over in-process (root), or on
 * the proxy's capture socket after one header line (the bridge process); the
 * proxy trusts that line only on that socket, which only the bridge can reach.
 *
 * Why 198.18.0.0/15: reserved for benchmarking (RFC 2544), never routed on the
 * internet and, unlike 100.64.0.0/10 (carrier-grade NAT, Tailscale) or
 * 10.0.0.0/8, not used by company networks, so a synthetic address is never
 * mistaken for a real one a program was given in its configuration.
 *
 * Imports only `bridge.ts` and `libc.ts` (the bridge's start-up).
 *
 * @module
 */
import { forwardToProxy } from "./bridge.ts";
import { dlopenLibc } from "./libc.ts";

/** The address of the DNS stub inside the sandbox; also the first address of the synthetic range. */
export const CAPTURE_DNS_ADDRESS = "198.18.0.1";
/** The synthetic range, as a prefix length on {@linkcode CAPTURE_DNS_ADDRESS}. */
export const CAPTURE_PREFIX_LENGTH = 15;
/** Most names one run may be given addresses for (each costs a listener per captured port). */
export const CAPTURE_MAX_NAMES = 4096;
/**
 * Most literal addresses one run captures (each costs a loopback address and a listener per
 * captured port, all bound before the command starts); the rest are left out, said once.
 */
export const CAPTURE_MAX_ADDRESSES = 256;

/** How the proxy treats a captured connection. */
export type CaptureKind = "tls" | "http" | "tcp";

/** The header the bridge sends before a captured connection's bytes. */
export interface CaptureHeader {
  /** The name the synthetic address stands for. */
  readonly host: string;
  /** The port the program connected to. */
  readonly port: number;
  /** `tls` (decided like CONNECT, SNI checked), `http` (like absolute-form), `tcp` (a plain tunnel). */
  readonly kind: CaptureKind;
  /** The connecting program (`/proc/PID/exe`), when it could be read. */
  readonly program: string | null;
}

/** Options for {@linkcode startCapture}. */
export interface CaptureOptions {
  /** Ports to capture on every synthetic address. */
  readonly ports: readonly number[];
  /** Ports whose connections are TLS (443 and any a rule marks). */
  readonly tlsPorts: readonly number[];
  /** Ports whose connections are plain HTTP (80). */
  readonly httpPorts: readonly number[];
  /** The sandbox's pid in the launcher's pid namespace, to name connecting programs; null: unnamed. */
  readonly sandboxPid: number | null;
  /**
   * Where each captured connection goes: to the proxy's capture socket (`target`, absolute),
   * after one header line, or handed with its header to a proxy in the same process, which owns
   * it from then on.
   */
  readonly deliver:
    | { readonly target: string }
    | { readonly handoff: (conn: Deno.TcpConn, header: CaptureHeader) => void };
  /**
   * Runs socket-creating steps (the address, the DNS stub, the listeners)
   * inside the sandbox's network namespace; default: where the thread is.
   */
  readonly inNamespace?: <T>(fn: () => T) => T;
  /** The `/proc` net directory that shows the sandbox's sockets (default `/proc/thread-self/net`). */
  readonly procNet?: string;
  /** Skip the rtnetlink step (tests that run outside a namespace and bind a loopback address). */
  readonly addressReady?: boolean;
  /** Where the DNS stub listens (default {@linkcode CAPTURE_DNS_ADDRESS}:53). */
  readonly dns?: { readonly hostname: string; readonly port: number };
  /** First synthetic address (default the one after {@linkcode CAPTURE_DNS_ADDRESS}). */
  readonly firstAddress?: string;
  /**
   * Literal addresses (IPv4 dotted quad or IPv6, no brackets) to capture on
   * the same ports, each put on the loopback device first. One that
   * {@linkcode uncapturableAddress} refuses, or that cannot be added or
   * bound, is left out and reported through `onProblem`: it then has no
   * route at all, as before.
   */
  readonly addresses?: readonly string[];
  /** Told, for people, why a literal address is not captured. */
  readonly onProblem?: (message: string) => void;
}

/** Running capture: the DNS stub and the per-name listeners. */
export interface RunningCapture extends AsyncDisposable {
  /** Where the DNS stub listens. */
  readonly dns: Deno.NetAddr;
  /** The address given to `name`, allocating one (and its listeners) if needed. */
  addressFor(name: string): string | null;
  /** Stops everything. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();

/**
 * Sets up the synthetic range, starts the DNS stub and returns; listeners are
 * bound per name as names are asked for.
 *
 * @example
 * ```ts
 * await using capture = startCapture({ ports: [80, 443], tlsPorts: [443], httpPorts: [80],
 *   deliver: { target: "/tmp/run/capture.sock" }, sandboxPid: 1234 });
 * ```
 */
export function startCapture(options: CaptureOptions): RunningCapture {
  const deliver = options.deliver;
  const inside = options.inNamespace ?? (<T>(fn: () => T): T => fn());
  const procNet = options.procNet ?? "/proc/thread-self/net";
  if (options.addressReady !== true) {
    inside(() => addLoopbackAddress(CAPTURE_DNS_ADDRESS, CAPTURE_PREFIX_LENGTH));
  }
  const dnsAt = options.dns ?? { hostname: CAPTURE_DNS_ADDRESS, port: 53 };
  const udp = inside(() =>
    Deno.listenDatagram({ transport: "udp", hostname: dnsAt.hostname, port: dnsAt.port })
  );
  const names = new Map<string, string>();
  const hosts = new Map<string, string>();
  const listeners: Deno.TcpListener[] = [];
  const open = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const track = (task: Promise<void>) => {
    tasks.add(task);
    task.finally(() => tasks.delete(task));
  };
  let next = ipv4ToNumber(options.firstAddress ?? "198.18.0.2");
  const last = ipv4ToNumber(CAPTURE_DNS_ADDRESS) + 2 ** (32 - CAPTURE_PREFIX_LENGTH) - 2;
  const tls = new Set(options.tlsPorts);
  const http = new Set(options.httpPorts);
  let closed = false;

  /** Binds every captured port on `address` for `host`; throws (nothing left bound) when one fails. */
  const listenFor = (address: string, host: string): void => {
    const bound: Deno.TcpListener[] = [];
    try {
      inside(() => {
        for (const port of options.ports) bound.push(Deno.listen({ hostname: address, port }));
      });
    } catch (error) {
      for (const listener of bound) safeClose(listener);
      throw error;
    }
    for (const listener of bound) {
      listeners.push(listener);
      const port = (listener.addr as Deno.NetAddr).port;
      const kind: CaptureKind = tls.has(port) ? "tls" : http.has(port) ? "http" : "tcp";
      track(acceptLoop(listener, { host, port, kind }));
    }
  };

  const addressFor = (name: string): string | null => {
    const known = names.get(name);
    if (known !== undefined) return known;
    if (closed || names.size >= CAPTURE_MAX_NAMES || next > last) return null;
    const address = numberToIpv4(next++);
    try {
      listenFor(address, name);
    } catch {
      return null;
    }
    names.set(name, address);
    hosts.set(address, name);
    return address;
  };

  const acceptLoop = async (
    listener: Deno.TcpListener,
    target: Omit<CaptureHeader, "program">,
  ) => {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await listener.accept();
      } catch {
        return;
      }
      const program = options.sandboxPid === null
        ? null
        : findConnectingProgram(client, options.sandboxPid, procNet);
      const header: CaptureHeader = { ...target, program };
      if ("handoff" in deliver) {
        deliver.handoff(client, header);
        continue;
      }
      const line = encoder.encode(JSON.stringify(header) + "\n");
      track(forwardToProxy(client, deliver.target, open, line));
    }
  };

  const serveDns = async () => {
    for (;;) {
      let packet: [Uint8Array, Deno.Addr];
      try {
        packet = await udp.receive();
      } catch {
        return;
      }
      const answer = answerDnsQuery(packet[0], addressFor);
      if (answer === null) continue;
      try {
        await udp.send(answer, packet[1]);
      } catch {
        // The asker is gone.
      }
    }
  };
  const problems = captureAddresses(options.addresses ?? [], {
    add: (literals) =>
      options.addressReady === true ? literals.map(() => null) : inside(() =>
        addLoopbackAddresses(
          literals.map((address) => ({ address, prefix: address.includes(":") ? 128 : 32 })),
        )
      ),
    bind: (literal) => listenFor(literal, literal),
  });
  for (const problem of problems) options.onProblem?.(problem);

  track(serveDns());

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      closed = true;
      safeClose(udp);
      for (const listener of listeners) safeClose(listener);
      for (const conn of open) safeClose(conn);
      while (tasks.size > 0) await Promise.allSettled([...tasks]);
    })();
    return closing;
  };
  return {
    dns: udp.addr as Deno.NetAddr,
    addressFor,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** The two steps of capturing literal addresses (see {@linkcode captureAddresses}). */
export interface CaptureAddressSteps {
  /** Puts the addresses on the loopback device; per address, null or why not. */
  add(addresses: readonly string[]): readonly (string | null)[];
  /** Binds the captured ports on one added address; throws when it cannot. */
  bind(address: string): void;
}

/**
 * Captures literal addresses: at most {@linkcode CAPTURE_MAX_ADDRESSES},
 * never one {@linkcode uncapturableAddress} refuses; all are added in one
 * go, then each is bound. Returns what was left out, for people: a few
 * lines and counts, not a line per address of a long list.
 *
 * @example
 * ```ts
 * captureAddresses(["203.0.113.7", "127.0.0.1"], { add, bind });
 * // ["Cannot capture connections to 127.0.0.1: 127.0.0.1 is loopback, the sandbox's own"]
 * ```
 */
export function captureAddresses(
  addresses: readonly string[],
  steps: CaptureAddressSteps,
): string[] {
  const literals = [...new Set(addresses)];
  const problems: string[] = [];
  const fail = (literal: string, why: unknown) =>
    problems.push(
      `Cannot capture connections to ${literal}: ${
        why instanceof Error ? why.message : String(why)
      }`,
    );
  const candidates: string[] = [];
  for (const literal of literals.slice(0, CAPTURE_MAX_ADDRESSES)) {
    const why = uncapturableAddress(literal);
    if (why === null) candidates.push(literal);
    else fail(literal, why);
  }
  let added: readonly (string | null)[];
  try {
    added = steps.add(candidates);
  } catch (error) {
    added = candidates.map(() => error instanceof Error ? error.message : String(error));
  }
  for (const [i, literal] of candidates.entries()) {
    const why = added[i] ?? null;
    if (why !== null) {
      fail(literal, why);
      continue;
    }
    try {
      steps.bind(literal);
    } catch (error) {
      fail(literal, error);
    }
  }
  const out = problems.slice(0, 5);
  if (problems.length > 5) {
    out.push(`Cannot capture connections to ${problems.length - 5} more addresses`);
  }
  if (literals.length > CAPTURE_MAX_ADDRESSES) {
    out.push(
      `Connections to ${literals.length - CAPTURE_MAX_ADDRESSES} of the ${literals.length} ` +
        `literal addresses the rules name are not captured: at most ${CAPTURE_MAX_ADDRESSES} per run ` +
        "(the proxy variables still reach them)",
    );
  }
  return out;
}

/**
 * Answers one DNS query packet: A for any valid name with its synthetic
 * address (`localhost` and `*.localhost` with 127.0.0.1), an empty answer
 * for other types, REFUSED when no address can be given, FORMERR for a
 * malformed query; null for something that is not a query at all.
 *
 * @example
 * ```ts
 * const reply = answerDnsQuery(query, (name) => "198.18.0.2");
 * ```
 */
export function answerDnsQuery(
  query: Uint8Array,
  addressFor: (name: string) => string | null,
): Uint8Array | null {
  if (query.length < 12) return null;
  const flags = (query[2] << 8) | query[3];
  if ((flags & 0x8000) !== 0) return null; // a response, not a query
  const opcode = (flags >> 11) & 0xf;
  const qdcount = (query[4] << 8) | query[5];
  const reply = (rcode: number, question: Uint8Array, answer: Uint8Array | null) => {
    const out = new Uint8Array(12 + question.length + (answer?.length ?? 0));
    out[0] = query[0];
    out[1] = query[1];
    // QR, the query's opcode and RD; RA set (we "recurse": every name has an answer).
    out[2] = 0x80 | (query[2] & 0x79);
    out[3] = 0x80 | rcode;
    out[5] = question.length > 0 ? 1 : 0;
    out[7] = answer === null ? 0 : 1;
    out.set(question, 12);
    if (answer !== null) out.set(answer, 12 + question.length);
    return out;
  };
  if (opcode !== 0 || qdcount !== 1) return reply(opcode !== 0 ? 4 : 1, new Uint8Array(0), null);
  const labels: string[] = [];
  let offset = 12;
  for (;;) {
    if (offset >= query.length) return reply(1, new Uint8Array(0), null);
    const length = query[offset];
    if (length === 0) break;
    if (length > 63 || offset + 1 + length > query.length) {
      return reply(1, new Uint8Array(0), null);
    }
    labels.push(new TextDecoder().decode(query.subarray(offset + 1, offset + 1 + length)));
    offset += 1 + length;
  }
  offset += 1;
  if (offset + 4 > query.length) return reply(1, new Uint8Array(0), null);
  const question = query.slice(12, offset + 4);
  const qtype = (query[offset] << 8) | query[offset + 1];
  const qclass = (query[offset + 2] << 8) | query[offset + 3];
  const name = labels.join(".").toLowerCase();
  if (qclass !== 1 || !VALID_NAME.test(name) || name.length > 253) {
    return reply(qclass !== 1 ? 4 : 3, question, null);
  }
  if (qtype !== 1) return reply(0, question, null); // AAAA and the rest: no records
  const address = name === "localhost" || name.endsWith(".localhost")
    ? "127.0.0.1"
    : addressFor(name);
  if (address === null) return reply(5, question, null);
  const answer = new Uint8Array(16);
  answer.set([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4], 0); // name ptr, A, IN, TTL 3600, len 4
  answer.set(address.split(".").map(Number), 12);
  return reply(0, question, answer);
}

const VALID_NAME = /^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$/;

/**
 * The executable of the sandboxed process that owns the client end of
 * `conn`: its socket inode from the sandbox namespace's TCP tables
 * (under `procNet`), then a walk of the sandbox's process tree. Null when
 * anything cannot be read.
 */
function findConnectingProgram(
  conn: Deno.TcpConn,
  sandboxPid: number,
  procNet: string,
): string | null {
  try {
    const peer = conn.remoteAddr as Deno.NetAddr;
    const local = conn.localAddr as Deno.NetAddr;
    const inode = socketInode(peer, local, procNet);
    if (inode === null) return null;
    const wanted = `socket:[${inode}]`;
    const queue = [sandboxPid];
    for (let seen = 0; queue.length > 0 && seen < 4096; seen++) {
      const pid = queue.shift()!;
      try {
        for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
          let link: string;
          try {
            link = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
          } catch {
            continue;
          }
          if (link === wanted) return Deno.readLinkSync(`/proc/${pid}/exe`);
        }
      } catch {
        // Gone, or not ours to read: look further down.
      }
      for (const task of safeReadDir(`/proc/${pid}/task`)) {
        const text = safeReadText(`/proc/${pid}/task/${task}/children`);
        for (const child of text.split(" ")) {
          const n = Number(child);
          if (child !== "" && Number.isSafeInteger(n)) queue.push(n);
        }
      }
    }
  } catch {
    // Naming the program is best effort.
  }
  return null;
}

function socketInode(
  client: Deno.NetAddr,
  server: Deno.NetAddr,
  procNet: string,
): string | null {
  const v6 = server.hostname.includes(":");
  const text = safeReadText(`${procNet}/${v6 ? "tcp6" : "tcp"}`);
  const want = `${hexAddress(client.hostname)}:${hexPort(client.port)}`;
  const remote = `${hexAddress(server.hostname)}:${hexPort(server.port)}`;
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length > 9 && fields[1] === want && fields[2] === remote) return fields[9];
  }
  return null;
}

function hexAddress(ip: string): string {
  // /proc/net/tcp prints an IPv4 address as one 32-bit word in host (little-endian) order;
  // /proc/net/tcp6 an IPv6 address as four such words.
  const bytes = addressBytes(ip) ?? new Uint8Array(0);
  let out = "";
  for (let word = 0; word < bytes.length; word += 4) {
    for (let i = 3; i >= 0; i--) out += bytes[word + i].toString(16).padStart(2, "0");
  }
  return out.toUpperCase();
}

/**
 * The bytes of an IPv4 address in dotted-decimal form or of an IPv6 address
 * (no brackets, no zone), or null for anything else.
 *
 * @example
 * ```ts
 * addressBytes("203.0.113.7"); // Uint8Array [203, 0, 113, 7]
 * addressBytes("2001:db8::7")?.length; // 16
 * ```
 */
export function addressBytes(text: string): Uint8Array | null {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4 !== null) {
    const parts = v4.slice(1).map(Number);
    if (parts.some((n, i) => n > 255 || (v4[i + 1].length > 1 && v4[i + 1].startsWith("0")))) {
      return null;
    }
    return new Uint8Array(parts);
  }
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(":")) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (half: string): number[] | null => {
    if (half === "") return [];
    const out: number[] = [];
    const pieces = half.split(":");
    for (const [i, piece] of pieces.entries()) {
      if (i === pieces.length - 1 && piece.includes(".")) {
        const tail = addressBytes(piece);
        if (tail === null || tail.length !== 4) return null;
        out.push((tail[0] << 8) | tail[1], (tail[2] << 8) | tail[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return null;
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const words = [...head, ...new Array(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  words.forEach((word, i) => {
    bytes[2 * i] = word >> 8;
    bytes[2 * i + 1] = word & 0xff;
  });
  return bytes;
}

/**
 * Why a literal address cannot be captured, or null when it can. Loopback
 * (127.0.0.0/8, `::1`) is the sandbox's own and is never taken from the
 * command's servers; the synthetic range is the DNS stub's; the others
 * (unspecified, multicast, broadcast and reserved, link-local, IPv4-mapped
 * and -compatible IPv6) are not addresses one listener can stand for.
 *
 * @example
 * ```ts
 * uncapturableAddress("203.0.113.7"); // null
 * uncapturableAddress("127.0.0.1"); // "127.0.0.1 is loopback, the sandbox's own"
 * ```
 */
export function uncapturableAddress(text: string): string | null {
  const b = addressBytes(text);
  if (b === null) return `"${text}" is not an IPv4 or IPv6 address`;
  if (b.length === 4) {
    if (b[0] === 127) return `${text} is loopback, the sandbox's own`;
    if (b[0] === 0) return `${text} is in 0.0.0.0/8 (this network)`;
    if (b[0] === 198 && (b[1] & 0xfe) === 18) {
      return `${text} is in 198.18.0.0/15, the range of the sandbox's synthetic addresses`;
    }
    if (b[0] >= 224) return `${text} is multicast, reserved or broadcast`;
    return null;
  }
  const zeroUpTo = (n: number) => b.subarray(0, n).every((byte) => byte === 0);
  if (zeroUpTo(15) && b[15] === 1) return `${text} is loopback, the sandbox's own`;
  if (zeroUpTo(16)) return `${text} is the unspecified address`;
  if (zeroUpTo(10) && b[10] === 0xff && b[11] === 0xff) {
    return `${text} is an IPv4-mapped address: write the IPv4 address`;
  }
  if (zeroUpTo(12)) return `${text} is an IPv4-compatible address: write the IPv4 address`;
  if (b[0] === 0xff) return `${text} is multicast`;
  if (b[0] === 0xfe && (b[1] & 0xc0) === 0x80) return `${text} is link-local (needs a zone)`;
  return null;
}

function hexPort(port: number): string {
  return port.toString(16).padStart(4, "0").toUpperCase();
}

function safeReadText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

function safeReadDir(path: string): string[] {
  try {
    return [...Deno.readDirSync(path)].map((entry) => entry.name);
  } catch {
    return [];
  }
}

function ipv4ToNumber(ip: string): number {
  return ip.split(".").reduce((sum, part) => sum * 256 + Number(part), 0);
}

function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function safeClose(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed.
  }
}

// rtnetlink, spoken through libc.

const NETLINK_SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

/**
 * Adds `address/prefix` (IPv4 or IPv6) to the loopback device (ifindex 1)
 * of the calling thread's network namespace with one RTM_NEWADDR request
 * (see {@linkcode addLoopbackAddresses}). An address that is already there
 * is fine. Throws with the kernel's errno otherwise.
 */
export function addLoopbackAddress(address: string, prefix: number): void {
  const [error] = addLoopbackAddresses([{ address, prefix }]);
  if (error !== null) throw new Error(error);
}

/**
 * Adds each `address/prefix` to the loopback device (ifindex 1) of the
 * calling thread's network namespace: one netlink socket, one RTM_NEWADDR
 * request each (AF_INET, or AF_INET6 with IFA_F_NODAD so the address can be
 * bound at once), each acknowledged. Returns, per entry, null when it is
 * there (already there is fine) or why not. Throws when netlink itself
 * cannot be used.
 */
export function addLoopbackAddresses(
  entries: readonly { readonly address: string; readonly prefix: number }[],
): (string | null)[] {
  if (entries.length === 0) return [];
  using lib = dlopenLibc(NETLINK_SYMBOLS);
  const AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0o2000000, NETLINK_ROUTE = 0;
  const fd = lib.symbols.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) throw new Error("cannot open a netlink socket");
  try {
    const kernel = new Uint8Array(12);
    kernel[0] = AF_NETLINK;
    const answer = new Uint8Array(1024);
    return entries.map(({ address, prefix }, index) => {
      const bytes = addressBytes(address);
      if (bytes === null) return `"${address}" is not an IPv4 or IPv6 address`;
      const message = newAddressMessage(bytes, prefix, index + 1);
      const size = message.length;
      if (Number(lib.symbols.sendto(fd, message, BigInt(size), 0, kernel, 12)) !== size) {
        return "cannot send to the kernel's netlink socket";
      }
      const n = Number(lib.symbols.recv(fd, answer, 1024n, 0));
      const reply = new DataView(answer.buffer);
      if (n < 20 || reply.getUint16(4, true) !== 2) return "no netlink acknowledgement";
      const errno = -reply.getInt32(16, true);
      const EEXIST = 17;
      return errno === 0 || errno === EEXIST
        ? null
        : `the kernel refused the address (errno ${errno})`;
    });
  } finally {
    lib.symbols.close(fd);
  }
}

/** One RTM_NEWADDR request for `bytes/prefix` on ifindex 1, acknowledged, with sequence `seq`. */
function newAddressMessage(bytes: Uint8Array, prefix: number, seq: number): Uint8Array {
  const v6 = bytes.length === 16;
  const attribute = 4 + bytes.length;
  const size = 24 + 2 * attribute;
  const message = new Uint8Array(size);
  const view = new DataView(message.buffer);
  const RTM_NEWADDR = 20;
  const NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400;
  view.setUint32(0, size, true);
  view.setUint16(4, RTM_NEWADDR, true);
  view.setUint16(6, NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE, true);
  view.setUint32(8, seq, true);
  // ifaddrmsg: family, prefix length, flags, scope, ifindex 1 (loopback). IPv4: scope host;
  // IPv6: the kernel takes the scope from the address, and IFA_F_NODAD (2) so it is usable now.
  const AF_INET = 2, AF_INET6 = 10, IFA_F_NODAD = 2, RT_SCOPE_HOST = 254;
  message.set(v6 ? [AF_INET6, prefix, IFA_F_NODAD, 0] : [AF_INET, prefix, 0, RT_SCOPE_HOST], 16);
  view.setUint32(20, 1, true);
  for (const [offset, type] of [[24, 2], [24 + attribute, 1]]) { // IFA_LOCAL, IFA_ADDRESS
    view.setUint16(offset, attribute, true);
    view.setUint16(offset + 2, type, true);
    message.set(bytes, offset + 4);
  }
  return message;
}

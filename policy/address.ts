/**
 * IP address literals: parsing every spelling a C resolver accepts, and
 * classifying an address as public or not (loopback, private, link-local,
 * documentation, multicast, reserved, and IPv6 forms that embed one of
 * those IPv4 addresses). Pure functions, no I/O.
 *
 * @module
 */

/** A parsed IP address. */
export interface IpAddress {
  /** 4 or 6. */
  readonly family: 4 | 6;
  /**
   * The one spelling of this address: dotted decimal for IPv4; RFC 5952 for
   * IPv6 (lower case, longest zero run compressed, IPv4-mapped as
   * `::ffff:a.b.c.d`), followed by `%zone` when a zone id was given.
   */
  readonly canonical: string;
  /** The address bytes (4 or 16), network order. */
  readonly bytes: Uint8Array;
  /** The IPv6 zone id (`lo0` in `fe80::1%lo0`), or null. */
  readonly zone: string | null;
}

/**
 * Parses an IPv4 number the way `inet_aton` does: 0x/0X prefix = hex,
 * leading 0 = octal, else decimal. Returns null on anything else.
 */
function parseIpv4Part(part: string): number | null {
  let digits: string;
  let radix: number;
  if (/^0[xX]/.test(part)) {
    digits = part.slice(2);
    radix = 16;
    // "0x" alone is accepted by some parsers as 0 and rejected by others:
    // refuse it, so nobody disagrees with us about what it means.
    if (!/^[0-9a-fA-F]+$/.test(digits)) return null;
  } else if (part.length > 1 && part.startsWith("0")) {
    digits = part.slice(1);
    radix = 8;
    if (!/^[0-7]+$/.test(digits)) return null;
  } else {
    digits = part;
    radix = 10;
    if (!/^[0-9]+$/.test(digits)) return null;
  }
  // Strip leading zeros so a long zero run cannot overflow the length check.
  const trimmed = digits.replace(/^0+(?=.)/, "");
  if (trimmed.length > 12) return null;
  const value = parseInt(trimmed, radix);
  return Number.isSafeInteger(value) ? value : null;
}

/**
 * Parses every IPv4 spelling `inet_aton` accepts: 1 to 4 parts, each
 * decimal, octal (leading 0) or hex (0x); the last part fills the remaining
 * bytes (`127.1`, `127.0.1`, `2130706433`, `0x7f.1`, `0177.0.0.1`).
 */
function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length < 1 || parts.length > 4) return null;
  const values: number[] = [];
  for (const part of parts) {
    const value = parseIpv4Part(part);
    if (value === null) return null;
    values.push(value);
  }
  const last = values.pop()!;
  for (const value of values) if (value > 0xff) return null;
  const lastBytes = 4 - values.length;
  if (last >= 2 ** (8 * lastBytes)) return null;
  const bytes = new Uint8Array(4);
  values.forEach((value, i) => (bytes[i] = value));
  for (let i = 0; i < lastBytes; i++) {
    bytes[3 - i] = Math.floor(last / 2 ** (8 * i)) & 0xff;
  }
  return bytes;
}

/**
 * The bytes of an IPv4 address written in canonical form (four decimal
 * numbers 0-255 without leading zeros, e.g. `93.184.215.14`), or null for
 * any other text (which may still be an address in another spelling).
 */
function canonicalDottedQuad(text: string): Uint8Array | null {
  if (text.length < 7 || text.length > 15) return null;
  const bytes = new Uint8Array(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const code = i === text.length ? 0x2e : text.charCodeAt(i);
    if (code === 0x2e) { // `.` (or the end)
      if (digits === 0 || value > 255 || part > 3) return null;
      bytes[part++] = value;
      value = 0;
      digits = 0;
    } else if (code >= 0x30 && code <= 0x39) {
      if (digits === 1 && value === 0) return null; // A leading zero: octal to inet_aton.
      value = value * 10 + (code - 0x30);
      if (++digits > 3) return null;
    } else {
      return null;
    }
  }
  return part === 4 ? bytes : null;
}

/** Strict dotted-quad decimal, as allowed at the end of an IPv6 address. */
function parseDottedQuad(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(parts[i])) return null;
    const value = Number(parts[i]);
    if (value > 255) return null;
    bytes[i] = value;
  }
  return bytes;
}

function parseHexGroups(text: string): number[] | null {
  if (text === "") return [];
  const groups: number[] = [];
  for (const group of text.split(":")) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return null;
    groups.push(parseInt(group, 16));
  }
  return groups;
}

const ZONE = /^[0-9A-Za-z_.~-]+$/;

function parseIpv6(text: string): { bytes: Uint8Array; zone: string | null } | null {
  let zone: string | null = null;
  let body = text;
  const percent = text.indexOf("%");
  if (percent !== -1) {
    zone = text.slice(percent + 1);
    body = text.slice(0, percent);
    if (!ZONE.test(zone)) return null;
  }
  if (!body.includes(":")) return null;
  // An embedded IPv4 address may only be the last 32 bits.
  let tail: Uint8Array | null = null;
  const lastColon = body.lastIndexOf(":");
  if (body.slice(lastColon + 1).includes(".")) {
    tail = parseDottedQuad(body.slice(lastColon + 1));
    if (tail === null) return null;
    body = body.slice(0, lastColon + 1) + "0:0";
  }
  const groupsWanted = 8;
  let groups: number[];
  const doubleColon = body.indexOf("::");
  if (doubleColon !== -1) {
    if (body.indexOf("::", doubleColon + 1) !== -1) return null;
    const head = parseHexGroups(body.slice(0, doubleColon));
    const rest = parseHexGroups(body.slice(doubleColon + 2));
    if (head === null || rest === null) return null;
    const missing = groupsWanted - head.length - rest.length;
    if (missing < 1) return null;
    groups = [...head, ...new Array(missing).fill(0), ...rest];
  } else {
    const all = parseHexGroups(body);
    if (all === null || all.length !== groupsWanted) return null;
    groups = all;
  }
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  if (tail !== null) bytes.set(tail, 12);
  return { bytes, zone };
}

function formatIpv4(bytes: Uint8Array): string {
  return Array.from(bytes).join(".");
}

function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  // IPv4-mapped addresses keep their dotted tail (RFC 5952, section 5).
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIpv4(bytes.subarray(12))}`;
  }
  // Longest run of two or more zero groups; the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

/**
 * Parses an IP literal: every IPv4 spelling `inet_aton` accepts (1-4 parts,
 * decimal, octal, hex), and IPv6 with `::`, an embedded dotted IPv4 tail and
 * a zone id (`fe80::1%lo0`), with or without brackets. Returns null when
 * `host` is not an IP literal. The caller normalizes first (case, trailing
 * dots, port); see {@linkcode normalizeHost}.
 *
 * @example
 * ```ts
 * parseIpLiteral("0x7f.1")?.canonical; // "127.0.0.1"
 * parseIpLiteral("[::FFFF:7f00:1]")?.canonical; // "::ffff:127.0.0.1"
 * parseIpLiteral("example.com"); // null
 * ```
 */
export function parseIpLiteral(host: string): IpAddress | null {
  let text = host;
  if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
  if (text === "") return null;
  if (!text.includes(":")) {
    // The usual spelling (what resolvers answer, what the proxy checks per request) skips the
    // general inet_aton reading; it is already canonical.
    const quad = canonicalDottedQuad(text);
    if (quad !== null) return { family: 4, canonical: text, bytes: quad, zone: null };
    const bytes = parseIpv4(text);
    if (bytes === null) return null;
    return { family: 4, canonical: formatIpv4(bytes), bytes, zone: null };
  }
  const parsed = parseIpv6(text);
  if (parsed === null) return null;
  const zone = parsed.zone;
  const canonical = formatIpv6(parsed.bytes) + (zone === null ? "" : `%${zone}`);
  return { family: 6, canonical, bytes: parsed.bytes, zone };
}

/** Why an address is not public: the range it is in and what that range is. */
export interface AddressRange {
  /** CIDR, e.g. `127.0.0.0/8`. */
  readonly cidr: string;
  /** What the range is for, e.g. `loopback`. */
  readonly label: string;
}

/** How an address is classified: public, or the non-public range it is in. */
export type AddressClass =
  | { readonly public: true }
  | {
    readonly public: false;
    /** The range that made it non-public. */
    readonly range: AddressRange;
    /** For an IPv6 address judged by the IPv4 address it embeds: that address. */
    readonly embedded: string | null;
  };

/**
 * A range as constant data, so that loading this module parses nothing (it is on every
 * `sandbox run`'s start-up path). `address_test.ts` checks each row against its `cidr`.
 */
interface Range extends AddressRange {
  readonly family: 4 | 6;
  readonly prefix: number;
  /** The network address's leading bytes: as many as the prefix reaches into. */
  readonly bytes: readonly number[];
}

function zeros(count: number): number[] {
  return new Array(count).fill(0);
}

/** Non-public IPv4 ranges (IANA special-purpose registry, the non-global rows). */
const IPV4_NON_PUBLIC: readonly Range[] = [
  { cidr: "0.0.0.0/8", label: "this network", family: 4, prefix: 8, bytes: [0] },
  { cidr: "10.0.0.0/8", label: "private", family: 4, prefix: 8, bytes: [10] },
  {
    cidr: "100.64.0.0/10",
    label: "shared address space (carrier-grade NAT)",
    family: 4,
    prefix: 10,
    bytes: [100, 64],
  },
  { cidr: "127.0.0.0/8", label: "loopback", family: 4, prefix: 8, bytes: [127] },
  { cidr: "169.254.0.0/16", label: "link-local", family: 4, prefix: 16, bytes: [169, 254] },
  { cidr: "172.16.0.0/12", label: "private", family: 4, prefix: 12, bytes: [172, 16] },
  {
    cidr: "192.0.0.0/24",
    label: "IETF protocol assignments",
    family: 4,
    prefix: 24,
    bytes: [192, 0, 0],
  },
  {
    cidr: "192.0.2.0/24",
    label: "documentation (TEST-NET-1)",
    family: 4,
    prefix: 24,
    bytes: [192, 0, 2],
  },
  {
    cidr: "192.88.99.0/24",
    label: "deprecated 6to4 relay anycast",
    family: 4,
    prefix: 24,
    bytes: [192, 88, 99],
  },
  { cidr: "192.168.0.0/16", label: "private", family: 4, prefix: 16, bytes: [192, 168] },
  { cidr: "198.18.0.0/15", label: "benchmarking", family: 4, prefix: 15, bytes: [198, 18] },
  {
    cidr: "198.51.100.0/24",
    label: "documentation (TEST-NET-2)",
    family: 4,
    prefix: 24,
    bytes: [198, 51, 100],
  },
  {
    cidr: "203.0.113.0/24",
    label: "documentation (TEST-NET-3)",
    family: 4,
    prefix: 24,
    bytes: [203, 0, 113],
  },
  { cidr: "224.0.0.0/4", label: "multicast", family: 4, prefix: 4, bytes: [224] },
  { cidr: "240.0.0.0/4", label: "reserved", family: 4, prefix: 4, bytes: [240] },
  {
    cidr: "255.255.255.255/32",
    label: "broadcast",
    family: 4,
    prefix: 32,
    bytes: [255, 255, 255, 255],
  },
];

/** IPv6 ranges that carry an IPv4 address; judged by that address. */
const IPV6_EMBEDDING: readonly (Range & { readonly offset: number })[] = [
  {
    cidr: "::ffff:0:0/96",
    label: "IPv4-mapped",
    family: 6,
    prefix: 96,
    bytes: [...zeros(10), 0xff, 0xff],
    offset: 12,
  },
  {
    cidr: "::ffff:0:0:0/96",
    label: "IPv4-translated (SIIT)",
    family: 6,
    prefix: 96,
    bytes: [...zeros(8), 0xff, 0xff, 0, 0],
    offset: 12,
  },
  {
    cidr: "64:ff9b::/96",
    label: "NAT64 well-known prefix",
    family: 6,
    prefix: 96,
    bytes: [0x00, 0x64, 0xff, 0x9b, ...zeros(8)],
    offset: 12,
  },
  { cidr: "2002::/16", label: "6to4", family: 6, prefix: 16, bytes: [0x20, 0x02], offset: 2 },
  // IPv4-compatible (deprecated); also holds :: and ::1, which the embedded
  // 0.0.0.0/8 address makes non-public.
  {
    cidr: "::/96",
    label: "IPv4-compatible",
    family: 6,
    prefix: 96,
    bytes: zeros(12),
    offset: 12,
  },
];

/** Non-public IPv6 ranges inside the global unicast block 2000::/3. */
const IPV6_NON_PUBLIC: readonly Range[] = [
  {
    cidr: "2001::/23",
    label: "IETF protocol assignments (Teredo, benchmarking, ORCHID)",
    family: 6,
    prefix: 23,
    bytes: [0x20, 0x01, 0x00],
  },
  {
    cidr: "2001:db8::/32",
    label: "documentation",
    family: 6,
    prefix: 32,
    bytes: [0x20, 0x01, 0x0d, 0xb8],
  },
  { cidr: "3fff::/20", label: "documentation", family: 6, prefix: 20, bytes: [0x3f, 0xff, 0x00] },
];

/** Everything outside 2000::/3 that is not an embedding form is non-public. */
const IPV6_OUTSIDE_GLOBAL: readonly Range[] = [
  { cidr: "::1/128", label: "loopback", family: 6, prefix: 128, bytes: [...zeros(15), 1] },
  { cidr: "::/128", label: "unspecified", family: 6, prefix: 128, bytes: zeros(16) },
  {
    cidr: "64:ff9b:1::/48",
    label: "NAT64 local-use prefix",
    family: 6,
    prefix: 48,
    bytes: [0x00, 0x64, 0xff, 0x9b, 0x00, 0x01],
  },
  { cidr: "100::/64", label: "discard-only", family: 6, prefix: 64, bytes: [0x01, ...zeros(7)] },
  { cidr: "fc00::/7", label: "unique local", family: 6, prefix: 7, bytes: [0xfc] },
  { cidr: "fe80::/10", label: "link-local", family: 6, prefix: 10, bytes: [0xfe, 0x80] },
  {
    cidr: "fec0::/10",
    label: "site-local (deprecated)",
    family: 6,
    prefix: 10,
    bytes: [0xfe, 0xc0],
  },
  { cidr: "ff00::/8", label: "multicast", family: 6, prefix: 8, bytes: [0xff] },
];

const GLOBAL_UNICAST: Range = {
  cidr: "2000::/3",
  label: "global unicast",
  family: 6,
  prefix: 3,
  bytes: [0x20],
};
const OUTSIDE_GLOBAL_UNICAST: AddressRange = {
  cidr: "not in 2000::/3",
  label: "IPv6 space not allocated for global unicast",
};

function inRange(bytes: Uint8Array, r: Range): boolean {
  if (bytes.length !== (r.family === 4 ? 4 : 16)) return false;
  const full = Math.floor(r.prefix / 8);
  for (let i = 0; i < full; i++) if (bytes[i] !== r.bytes[i]) return false;
  const bits = r.prefix % 8;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (bytes[full] & mask) === (r.bytes[full] & mask);
}

function classifyIpv4(bytes: Uint8Array): AddressClass {
  const hit = IPV4_NON_PUBLIC.find((r) => inRange(bytes, r));
  if (hit === undefined) return { public: true };
  return { public: false, range: { cidr: hit.cidr, label: hit.label }, embedded: null };
}

/**
 * Classifies an address. IPv6 forms that embed an IPv4 address
 * (IPv4-mapped, IPv4-compatible, SIIT, NAT64 `64:ff9b::/96`, 6to4
 * `2002::/16`) are judged by that IPv4 address. Other IPv6 addresses are
 * public only inside the global unicast block `2000::/3` and outside its
 * non-public rows (Teredo and the rest of `2001::/23`, documentation).
 *
 * @example
 * ```ts
 * classifyAddress(parseIpLiteral("::ffff:10.0.0.1")!);
 * // { public: false, range: { cidr: "10.0.0.0/8", label: "private" }, embedded: "10.0.0.1" }
 * ```
 */
export function classifyAddress(ip: IpAddress): AddressClass {
  if (ip.family === 4) return classifyIpv4(ip.bytes);
  for (const r of IPV6_EMBEDDING) {
    if (!inRange(ip.bytes, r)) continue;
    // ::1 and :: are in ::/96 too; name them as what they are.
    const special = IPV6_OUTSIDE_GLOBAL.find((s) => s.prefix === 128 && inRange(ip.bytes, s));
    if (special !== undefined) {
      return { public: false, range: { cidr: special.cidr, label: special.label }, embedded: null };
    }
    const v4 = ip.bytes.slice(r.offset, r.offset + 4);
    const inner = classifyIpv4(v4);
    if (inner.public) return inner;
    return { ...inner, embedded: formatIpv4(v4) };
  }
  const hit = [...IPV6_NON_PUBLIC, ...IPV6_OUTSIDE_GLOBAL].find((r) => inRange(ip.bytes, r));
  if (hit !== undefined) {
    return { public: false, range: { cidr: hit.cidr, label: hit.label }, embedded: null };
  }
  if (!inRange(ip.bytes, GLOBAL_UNICAST)) {
    return { public: false, range: OUTSIDE_GLOBAL_UNICAST, embedded: null };
  }
  return { public: true };
}

/**
 * Whether an address is non-public (see {@linkcode classifyAddress}). A
 * string that is not an IP literal counts as non-public: fail closed.
 *
 * @example
 * ```ts
 * isNonPublicAddress("127.1"); // true
 * isNonPublicAddress("::ffff:8.8.8.8"); // false
 * ```
 */
export function isNonPublicAddress(ip: IpAddress | string): boolean {
  const parsed = typeof ip === "string" ? parseIpLiteral(ip) : ip;
  if (parsed === null) return true;
  return !classifyAddress(parsed).public;
}

/** The non-public ranges this module knows, for documentation and tests. */
export const NON_PUBLIC_RANGES: readonly AddressRange[] = Object.freeze(
  [...IPV4_NON_PUBLIC, ...IPV6_OUTSIDE_GLOBAL, ...IPV6_NON_PUBLIC].map((r) =>
    Object.freeze({ cidr: r.cidr, label: r.label })
  ),
);

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  classifyAddress,
  type IpAddress,
  isNonPublicAddress,
  NON_PUBLIC_RANGES,
  parseIpLiteral,
} from "./address.ts";

Deno.test("parseIpLiteral() reads every inet_aton spelling of an IPv4 address", () => {
  const cases: [string, string][] = [
    ["1.2.3.4", "1.2.3.4"],
    ["16909060", "1.2.3.4"],
    ["0x01020304", "1.2.3.4"],
    ["0X1.0x2.3.4", "1.2.3.4"],
    ["1.0x20304", "1.2.3.4"],
    ["1.2.0x304", "1.2.3.4"],
    ["01.02.03.04", "1.2.3.4"],
    ["0", "0.0.0.0"],
    ["4294967295", "255.255.255.255"],
    ["0xffffffff", "255.255.255.255"],
    ["037777777777", "255.255.255.255"],
    ["0000000000000000177.1", "127.0.0.1"],
    ["000000000000000127.1", "87.0.0.1"],
  ];
  for (const [input, canonical] of cases) {
    const parsed = parseIpLiteral(input);
    assert.equal(parsed?.canonical, canonical, input);
    assert.equal(parsed?.family, 4, input);
  }
});

Deno.test("parseIpLiteral() rejects what inet_aton rejects", () => {
  for (
    const input of [
      "1.2.3.4.5",
      "0x1g",
      "08.1",
      "09",
      "256.1.1.1",
      "1.256.1.1",
      "1.2.65536",
      "1.16777216",
      "4294967296",
      "0x100000000",
      "1..2",
      ".1",
      "1.",
      "0x",
      "-1",
      "+1",
      "1 .2",
      "1e3",
      "example.com",
    ]
  ) {
    assert.equal(parseIpLiteral(input), null, input);
  }
});

Deno.test("parseIpLiteral() reads IPv6 with compression, embedded IPv4, brackets and zones", () => {
  const cases: [string, string][] = [
    ["::1", "::1"],
    ["[::1]", "::1"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8::", "2001:db8::"],
    ["::ffff:7f00:1", "::ffff:127.0.0.1"],
    ["::127.0.0.1", "::7f00:1"],
    ["fe80::1%lo0", "fe80::1%lo0"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["1:0:2:0:0:3:0:0", "1:0:2::3:0:0"],
  ];
  for (const [input, canonical] of cases) {
    assert.equal(parseIpLiteral(input)?.canonical, canonical, input);
  }
  for (
    const input of [
      ":::1",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "12345::",
      "::1%",
      "::1%a b",
      "::1.2.3",
      "::01.2.3.4",
      "g::1",
      "[::1",
    ]
  ) {
    assert.equal(parseIpLiteral(input), null, input);
  }
});

Deno.test("classifyAddress() judges embedded IPv4 in NAT64, 6to4, mapped, compatible and SIIT forms", () => {
  for (
    const host of [
      "64:ff9b::7f00:1",
      "64:ff9b::10.0.0.1",
      "2002:7f00:1::",
      "2002:c0a8:101::1",
      "::ffff:0:10.0.0.1",
      "::ffff:192.168.1.1",
      "::10.0.0.1",
    ]
  ) {
    const result = classifyAddress(parseIpLiteral(host)!);
    assert.equal(result.public, false, host);
    assert.notEqual(result.public === false && result.embedded, null, host);
  }
  for (const host of ["64:ff9b::8.8.8.8", "2002:808:808::1", "::ffff:0:8.8.8.8", "::8.8.8.8"]) {
    assert.equal(classifyAddress(parseIpLiteral(host)!).public, true, host);
  }
});

Deno.test("classifyAddress() blocks Teredo, NAT64 local-use, discard and unallocated IPv6 space", () => {
  for (
    const host of [
      "2001::1",
      "2001:0:4136:e378:8000:63bf:3fff:fdd2",
      "64:ff9b:1::8.8.8.8",
      "100::1",
      "3fff::1",
      "4000::1",
      "e000::1",
      "fec0::1",
      "ff02::1",
      "1::",
    ]
  ) {
    assert.equal(isNonPublicAddress(host), true, host);
  }
  for (const host of ["2606:4700::1111", "2a00:1450:4001::1", "3ffe::1"]) {
    assert.equal(isNonPublicAddress(host), false, host);
  }
});

Deno.test("isNonPublicAddress() fails closed on text that is not an address", () => {
  assert.equal(isNonPublicAddress("example.com"), true);
  assert.equal(isNonPublicAddress(""), true);
});

Deno.test("NON_PUBLIC_RANGES: the first and last address of every range is non-public", () => {
  for (const { cidr } of NON_PUBLIC_RANGES) {
    const [base, prefixText] = cidr.split("/");
    const ip = parseIpLiteral(base)!;
    const prefix = Number(prefixText);
    const last = ip.bytes.slice();
    for (let bit = prefix; bit < last.length * 8; bit++) last[bit >> 3] |= 0x80 >> (bit & 7);
    assert.equal(classifyAddress(ip).public, false, cidr);
    assert.equal(classifyAddress({ ...ip, bytes: last }).public, false, `${cidr} last`);
  }
});

/** `bytes` plus `delta` as one big-endian number; null when it wraps. */
function step(bytes: Uint8Array, delta: 1 | -1): Uint8Array | null {
  const out = bytes.slice();
  for (let i = out.length - 1; i >= 0; i--) {
    const value = out[i] + delta;
    out[i] = value & 0xff;
    if (value >= 0 && value <= 0xff) return out;
  }
  return null;
}

/** -1, 0 or 1 as `a` is below, equal to or above `b` (same length). */
function compare(a: Uint8Array, b: Uint8Array): number {
  const i = a.findIndex((x, j) => x !== b[j]);
  return i === -1 ? 0 : Math.sign(a[i] - b[i]);
}

/** The first and last address of `cidr`. */
function bounds(cidr: string): [IpAddress, IpAddress] {
  const [base, prefixText] = cidr.split("/");
  const first = parseIpLiteral(base)!;
  const last = first.bytes.slice();
  for (let bit = Number(prefixText); bit < last.length * 8; bit++) {
    last[bit >> 3] |= 0x80 >> (bit & 7);
  }
  return [first, { ...first, bytes: last }];
}

Deno.test("NON_PUBLIC_RANGES: each row covers exactly its CIDR (first and last in it, neighbours not)", () => {
  // The table is constant data (no parsing at module load): this checks each row's bytes and
  // prefix against the CIDR it names.
  for (const { cidr } of NON_PUBLIC_RANGES) {
    const [first, last] = bounds(cidr);
    // An earlier row that holds this whole range names it (255.255.255.255 is in 240.0.0.0/4).
    const holder = NON_PUBLIC_RANGES.find((row) => {
      const [lo, hi] = bounds(row.cidr);
      return lo.family === first.family && compare(lo.bytes, first.bytes) <= 0 &&
        compare(last.bytes, hi.bytes) <= 0;
    })!;
    for (const ip of [first, last]) {
      const result = classifyAddress(ip);
      assert.ok(!result.public, cidr);
      assert.deepEqual(
        result.range,
        { cidr: holder.cidr, label: holder.label },
        `${cidr}: ${ip.bytes.join(",")}`,
      );
    }
    if (holder.cidr !== cidr) continue;
    for (const bytes of [step(first.bytes, -1), step(last.bytes, 1)]) {
      if (bytes === null) continue;
      const result = classifyAddress({ ...first, bytes });
      assert.ok(result.public || result.range.cidr !== cidr, `${cidr}: ${bytes.join(",")}`);
    }
  }
});

Deno.test("classifyAddress() reads the embedded IPv4 address exactly inside each embedding prefix", () => {
  const prefixes: [string, number][] = [
    ["::ffff:0:0/96", 12],
    ["::ffff:0:0:0/96", 12],
    ["64:ff9b::/96", 12],
    ["2002::/16", 2],
    ["::/96", 12],
  ];
  for (const [cidr, offset] of prefixes) {
    const [first, last] = bounds(cidr);
    const inside = first.bytes.slice();
    inside.set([10, 0, 0, 1], offset);
    const result = classifyAddress({ ...first, bytes: inside });
    assert.ok(!result.public && result.embedded === "10.0.0.1", cidr);
    assert.deepEqual(result.range, { cidr: "10.0.0.0/8", label: "private" }, cidr);
    const top = classifyAddress(last);
    assert.ok(!top.public && top.embedded === "255.255.255.255", `${cidr} last`);
    for (const bytes of [step(first.bytes, -1), step(last.bytes, 1)]) {
      if (bytes === null) continue;
      const outside = classifyAddress({ ...first, bytes });
      assert.ok(outside.public || outside.embedded === null, `${cidr}: ${bytes.join(",")}`);
    }
  }
});

Deno.test("parseIpLiteral() round-trips its canonical form, and every IPv4 spelling agrees (property)", () => {
  const byte = fc.integer({ min: 0, max: 255 });
  fc.assert(
    fc.property(fc.array(byte, { minLength: 4, maxLength: 4 }), (bytes) => {
      const [a, b, c, d] = bytes;
      const dotted = bytes.join(".");
      const n = ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
      const spellings = [
        String(n),
        `0x${n.toString(16)}`,
        `0${n.toString(8)}`,
        `${a}.${(b << 16) + (c << 8) + d}`,
        `0x${a.toString(16)}.0${b.toString(8)}.${(c << 8) + d}`,
      ];
      return spellings.every((s) => parseIpLiteral(s)?.canonical === dotted) &&
        parseIpLiteral(dotted)?.canonical === dotted;
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }),
      (groups) => {
        const ip = parseIpLiteral(groups.map((g) => g.toString(16)).join(":"));
        if (ip === null) return false;
        const again = parseIpLiteral(ip.canonical);
        return again !== null && again.canonical === ip.canonical &&
          again.bytes.every((byte, i) => byte === ip.bytes[i]);
      },
    ),
    { numRuns: 1000 },
  );
});

/** A plain reference reading of IPv4 text as inet_aton does (decimal, 0 octal, 0x hex parts). */
function inetAton(text: string): string | null {
  const parts = text.split(".");
  if (parts.length > 4) return null;
  const values: number[] = [];
  for (const part of parts) {
    const [digits, radix] = /^0[xX]/.test(part)
      ? [part.slice(2), 16]
      : part.length > 1 && part[0] === "0"
      ? [part.slice(1), 8]
      : [part, 10];
    const valid = radix === 16 ? /^[0-9a-fA-F]+$/ : radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
    if (!valid.test(digits)) return null;
    values.push(parseInt(digits, radix));
  }
  const last = values.pop()!;
  if (values.some((v) => v > 255) || last >= 2 ** (8 * (4 - values.length))) return null;
  const bytes = [...values];
  for (let i = 4 - values.length - 1; i >= 0; i--) {
    bytes.push(Math.floor(last / 2 ** (8 * i)) % 256);
  }
  return bytes.join(".");
}

Deno.test("parseIpLiteral() reads dotted decimal text the way inet_aton does, leading zeros and all (property)", () => {
  const part = fc.oneof(
    fc.integer({ min: 0, max: 300 }).map(String),
    fc.constantFrom("0", "00", "01", "010", "08", "0255", "1000", "", "255", "256"),
  );
  fc.assert(
    fc.property(fc.array(part, { minLength: 1, maxLength: 5 }), (parts) => {
      const text = parts.join(".");
      const expected = inetAton(text);
      const parsed = parseIpLiteral(text);
      assert.equal(parsed?.canonical ?? null, expected, text);
      if (parsed !== null) assert.equal([...parsed.bytes].join("."), expected, text);
    }),
    { numRuns: 3000 },
  );
});

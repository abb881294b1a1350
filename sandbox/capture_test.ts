import assert from "node:assert/strict";
import {
  addressBytes,
  CAPTURE_MAX_ADDRESSES,
  captureAddresses,
  uncapturableAddress,
} from "./capture.ts";

Deno.test("addressBytes() reads dotted-quad IPv4 and every IPv6 spelling, nothing else", () => {
  assert.deepEqual([...addressBytes("203.0.113.7")!], [203, 0, 113, 7]);
  assert.deepEqual(
    [...addressBytes("2001:db8::7")!],
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
  );
  assert.deepEqual([...addressBytes("::1")!], [...new Array(15).fill(0), 1]);
  assert.deepEqual([...addressBytes("::")!], new Array(16).fill(0));
  assert.deepEqual(
    [...addressBytes("::ffff:203.0.113.7")!],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7],
  );
  assert.deepEqual(
    [...addressBytes("1:2:3:4:5:6:7:8")!],
    [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8],
  );
  for (
    const bad of [
      "",
      "203.0.113",
      "203.0.113.256",
      "0203.0.113.7",
      "0x7f.0.0.1",
      "2130706433",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "::1%lo",
      "[::1]",
      "12345::",
      "example.test",
    ]
  ) {
    assert.equal(addressBytes(bad), null, bad);
  }
});

Deno.test("uncapturableAddress() refuses loopback, the synthetic range and what one listener cannot own", () => {
  for (const ok of ["203.0.113.7", "10.0.0.5", "192.168.1.1", "2001:db8::7", "fd00::1"]) {
    assert.equal(uncapturableAddress(ok), null, ok);
  }
  const refused: [string, RegExp][] = [
    ["127.0.0.1", /loopback, the sandbox's own/],
    ["127.5.6.7", /loopback/],
    ["::1", /loopback/],
    ["0:0:0:0:0:0:0:1", /loopback/],
    ["0.0.0.0", /0\.0\.0\.0\/8/],
    ["::", /unspecified/],
    ["198.18.0.1", /synthetic/],
    ["198.19.255.254", /synthetic/],
    ["224.0.0.1", /multicast/],
    ["255.255.255.255", /broadcast/],
    ["::ffff:127.0.0.1", /IPv4-mapped/],
    ["::ffff:203.0.113.7", /IPv4-mapped/],
    ["::127.0.0.1", /IPv4-compatible/],
    ["ff02::1", /multicast/],
    ["fe80::1", /link-local/],
    ["localhost", /not an IPv4 or IPv6 address/],
  ];
  for (const [text, why] of refused) assert.match(uncapturableAddress(text) ?? "(null)", why, text);
  // The range's neighbours are ordinary addresses.
  assert.equal(uncapturableAddress("198.17.255.255"), null);
  assert.equal(uncapturableAddress("198.20.0.0"), null);
});

Deno.test("captureAddresses() binds only what may be captured, at most CAPTURE_MAX_ADDRESSES, and says the rest briefly", () => {
  const added: string[][] = [];
  const bound: string[] = [];
  const problems = captureAddresses(
    ["203.0.113.7", "127.0.0.1", "203.0.113.7", "::1", "2001:db8::7", "203.0.113.9"],
    {
      add: (list) => {
        added.push([...list]);
        return list.map((a) => a === "203.0.113.9" ? "the kernel refused the address" : null);
      },
      bind: (address) => void bound.push(address),
    },
  );
  assert.deepEqual(added, [["203.0.113.7", "2001:db8::7", "203.0.113.9"]]);
  assert.deepEqual(bound, ["203.0.113.7", "2001:db8::7"]);
  assert.deepEqual(problems, [
    "Cannot capture connections to 127.0.0.1: 127.0.0.1 is loopback, the sandbox's own",
    "Cannot capture connections to ::1: ::1 is loopback, the sandbox's own",
    "Cannot capture connections to 203.0.113.9: the kernel refused the address",
  ]);

  // A long list: the first CAPTURE_MAX_ADDRESSES are tried, failures are counted, not listed.
  const many = Array.from(
    { length: CAPTURE_MAX_ADDRESSES + 44 },
    (_, i) => `10.99.${i >> 8}.${i & 255}`,
  );
  let tried = 0;
  const failed = captureAddresses(many, {
    add: (list) => list.map(() => null),
    bind: () => {
      tried++;
      throw new Error("no such address");
    },
  });
  assert.equal(tried, CAPTURE_MAX_ADDRESSES);
  assert.equal(failed.length, 7);
  assert.equal(failed[0], "Cannot capture connections to 10.99.0.0: no such address");
  assert.equal(
    failed[5],
    `Cannot capture connections to ${CAPTURE_MAX_ADDRESSES - 5} more addresses`,
  );
  assert.match(
    failed[6],
    new RegExp(`^Connections to 44 of the ${CAPTURE_MAX_ADDRESSES + 44} literal`),
  );
});

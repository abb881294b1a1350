import assert from "node:assert/strict";
import { logSafeHost, normalizeHost, splitHostPort } from "./host.ts";
import fc from "fast-check";

Deno.test("splitHostPort() splits names, bracketed and bare IPv6", () => {
  assert.deepEqual(splitHostPort("example.com:443"), { host: "example.com", port: 443 });
  assert.deepEqual(splitHostPort("example.com"), { host: "example.com", port: null });
  assert.deepEqual(splitHostPort("[::1]:443"), { host: "::1", port: 443 });
  assert.deepEqual(splitHostPort("[fe80::1%lo0]"), { host: "fe80::1%lo0", port: null });
  assert.deepEqual(splitHostPort("2001:db8::1"), { host: "2001:db8::1", port: null });
  assert.deepEqual(splitHostPort(" 10.0.0.1:80 "), { host: "10.0.0.1", port: 80 });
});

Deno.test("splitHostPort() keeps a malformed port in the host instead of guessing", () => {
  for (
    const input of [
      "example.com:",
      "example.com:0",
      "example.com:65536",
      "example.com:8o",
      "[::1]x",
    ]
  ) {
    assert.equal(splitHostPort(input).port, null, input);
    assert.equal(splitHostPort(input).host, input, input);
  }
  assert.deepEqual(splitHostPort("example.com:65535"), { host: "example.com", port: 65535 });
});

Deno.test("normalizeHost() trims, drops brackets and port, lower-cases ASCII, strips dots", () => {
  assert.equal(normalizeHost(" ExAmPlE.CoM "), "example.com");
  assert.equal(normalizeHost("EXAMPLE.com..:8080"), "example.com");
  assert.equal(normalizeHost("[::FFFF:127.0.0.1]:443"), "::ffff:127.0.0.1");
  assert.equal(normalizeHost("Ünïcode.Example"), "Ünïcode.example");
  assert.equal(normalizeHost(""), "");
});

Deno.test("normalizeHost() is idempotent on awkward inputs", () => {
  const inputs = [
    "a:1.",
    "[::1].",
    "[[::1]]",
    "a.b.:1.",
    " x :2",
    "[::1]:443.",
    ":",
    "[",
    "]:1",
    "...:3",
  ];
  for (const input of inputs) {
    const once = normalizeHost(input);
    assert.equal(normalizeHost(once), once, JSON.stringify(input));
  }
});

Deno.test("normalizeHost() is idempotent on arbitrary host-like text (property)", () => {
  const alphabet = fc.constantFrom(..."aZ09.:[]%- _*".split(""));
  fc.assert(
    fc.property(fc.string({ unit: alphabet, maxLength: 24 }), (input) => {
      const once = normalizeHost(input);
      return normalizeHost(once) === once;
    }),
    { numRuns: 2000 },
  );
});

Deno.test("logSafeHost() keeps valid hosts and percent-encodes everything else", () => {
  for (
    const ok of ["example.com", "a-b.c_d", "::1", "[2001:db8::1]", "10.0.0.1", "unix:/r/a.sock"]
  ) {
    assert.equal(logSafeHost(ok), ok);
  }
  assert.equal(logSafeHost("$(sh<x)"), "%24%28sh%3Cx%29");
  assert.equal(logSafeHost("a b\n`id`"), "a%20b%0A%60id%60");
  assert.equal(logSafeHost("\x1b[31mred"), "%1B[31mred");
  assert.equal(logSafeHost("é"), "%C3%A9");
});

import assert from "node:assert/strict";
import { BadRequest, parseAbsoluteTarget, parseAuthority, sameHost } from "./request_parts.ts";

Deno.test("parseAuthority() splits names, IPv4 and bracketed IPv6, with or without a port", () => {
  assert.deepEqual(parseAuthority("example.com"), { host: "example.com", port: null });
  assert.deepEqual(parseAuthority("example.com:8080"), { host: "example.com", port: 8080 });
  assert.deepEqual(parseAuthority("10.0.0.1:1"), { host: "10.0.0.1", port: 1 });
  assert.deepEqual(parseAuthority("[::1]:443"), { host: "::1", port: 443 });
  assert.deepEqual(parseAuthority("[::1]"), { host: "::1", port: null });
});

Deno.test("parseAuthority() refuses userinfo, percent-encoding, empty and out-of-range ports, bad brackets", () => {
  for (
    const text of [
      "user@example.com",
      "ex%61mple.com",
      "example.com:",
      "example.com:0",
      "example.com:65536",
      "example.com:80x",
      "[::1",
      "[example.com]:80",
      "",
      " example.com",
      "exa mple.com",
    ]
  ) {
    assert.throws(() => parseAuthority(text), BadRequest, text);
  }
});

Deno.test("parseAbsoluteTarget() takes its scheme's default port and keeps the raw path and query", () => {
  assert.deepEqual(parseAbsoluteTarget("http://a.test/x/../y?q=1", "http"), {
    authority: "a.test",
    host: "a.test",
    port: 80,
    path: "/x/../y?q=1",
  });
  assert.deepEqual(parseAbsoluteTarget("https://[::1]:8443?x", "https"), {
    authority: "[::1]:8443",
    host: "::1",
    port: 8443,
    path: "/?x",
  });
  assert.equal(parseAbsoluteTarget("HTTPS://a.test", "https").port, 443);
});

Deno.test("parseAbsoluteTarget() refuses origin-form, another scheme, fragments and credentials", () => {
  const cases: [string, "http" | "https", RegExp][] = [
    ["/path", "http", /absolute form/],
    ["*", "https", /absolute form/],
    ["https://a.test/", "http", /use CONNECT for https/],
    ["http://a.test/", "https", /inside a TLS tunnel/],
    ["http://a.test/#frag", "http", /fragment/],
    ["http://u:p@a.test/", "http", /Credentials/],
  ];
  for (const [target, scheme, message] of cases) {
    assert.throws(() => parseAbsoluteTarget(target, scheme), message, target);
  }
});

Deno.test("sameHost() is the one host equality both sides use", () => {
  assert.ok(sameHost("A.Test.", "a.test"));
  assert.ok(sameHost("[0:0::1]", "::1"));
  assert.ok(!sameHost("a.test", "b.test"));
});

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  compileDomainPattern,
  matchesDomainPattern,
  matchesPatternPort,
  PatternError,
  validateDomainPattern,
} from "./pattern.ts";
import { normalizeHost } from "./host.ts";

function matches(pattern: string, host: string): boolean {
  return matchesDomainPattern(compileDomainPattern(pattern, "allow"), host);
}

Deno.test("compileDomainPattern() scopes: exact, strict subdomains, apex and subdomains", () => {
  assert.equal(matches("example.com", "example.com"), true);
  assert.equal(matches("example.com", "a.example.com"), false);
  assert.equal(matches("*.example.com", "a.b.example.com"), true);
  assert.equal(matches("*.example.com", "example.com"), false);
  assert.equal(matches("*.example.com", "badexample.com"), false);
  assert.equal(matches("**.example.com", "example.com"), true);
  assert.equal(matches("**.example.com", "x.y.example.com"), true);
  assert.equal(matches("**.example.com", "x.notexample.com"), false);
});

Deno.test("compileDomainPattern() mid-label globs stay inside their label", () => {
  assert.equal(matches("region*.v2.example.com", "region.v2.example.com"), true);
  assert.equal(matches("region*.v2.example.com", "region-eu-1.v2.example.com"), true);
  assert.equal(matches("region*.v2.example.com", "region1.x.v2.example.com"), false);
  assert.equal(matches("a*b*c.example.com", "abc.example.com"), true);
  assert.equal(matches("a*b*c.example.com", "a-b-b-c.example.com"), true);
  assert.equal(matches("a*b*c.example.com", "acb.example.com"), false);
  assert.equal(matches("api.*.example.com", "api.eu.example.com"), true);
  assert.equal(matches("api.*.example.com", "api.a.b.example.com"), false);
  assert.equal(matches("*.cdn*.example.com", "x.cdn2.example.com"), true);
  assert.equal(matches("*.cdn*.example.com", "cdn2.example.com"), false);
});

Deno.test("matchesDomainPattern() lets a deny rule on an IPv4 address stop its IPv4-mapped spelling", () => {
  const deny = (pattern: string, host: string) =>
    matchesDomainPattern(compileDomainPattern(pattern, "deny"), normalizeHost(host));
  assert.equal(deny("10.0.0.1", "[::ffff:10.0.0.1]"), true);
  assert.equal(deny("10.0.0.1", "::ffff:a00:1"), true);
  assert.equal(deny("::ffff:10.0.0.1", "10.0.0.1"), true);
  assert.equal(deny("10.0.0.1", "::ffff:10.0.0.2"), false);
  assert.equal(deny("10.0.0.1", "::10.0.0.1"), false);
  // Allow rules stay exact: the mapped spelling is not unlocked by an IPv4 allow.
  assert.equal(matches("10.0.0.1", "::ffff:10.0.0.1"), false);
});

Deno.test("compileDomainPattern() matches IP-literal hosts only by address", () => {
  assert.equal(matches("127.0.0.1", "0x7f.1"), true);
  assert.equal(matches("127.0.0.1", "127.0.0.2"), false);
  assert.equal(matches("[::1]", "0:0:0:0:0:0:0:1"), true);
  assert.equal(matches("::ffff:127.0.0.1", "127.0.0.1"), false);
  assert.equal(matches("fe80::1%eth0", "fe80::1%eth0"), true);
  assert.equal(matches("fe80::1%eth0", "fe80::1%lo0"), false);
  assert.equal(matches("fe80::1", "fe80::1%lo0"), true);
  assert.equal(matches("*.example.com", "127.0.0.1"), false);
  assert.equal(matches("*", "127.0.0.1"), true);
  assert.equal(matches("*", ""), false);
});

Deno.test("compileDomainPattern() is case-insensitive and ignores trailing dots", () => {
  const p = compileDomainPattern("*.Example.COM.", "deny");
  assert.equal(p.kind, "name");
  assert.equal(p.normalized, "*.example.com");
  assert.equal(p.text, "*.Example.COM.");
  assert.equal(p.exact, false);
  assert.equal(compileDomainPattern("Example.COM", "deny").exact, true);
});

Deno.test("validateDomainPattern() explains every rejected pattern", () => {
  const cases: [string, "allow" | "deny", RegExp][] = [
    ["", "allow", /empty/],
    ["a b.com", "allow", /whitespace/],
    ["*", "deny", /global wildcard/],
    ["[*]", "allow", /brackets hold an IPv6 address/],
    ["[127.0.0.1]", "allow", /not an IPv6 address/],
    ["[::1", "allow", /brackets/],
    ["a..b.com", "allow", /empty label/],
    ["example.*", "allow", /top-level domain/],
    ["*.*", "allow", /top-level domain/],
    ["**", "allow", /top-level domain|"\*\*"/],
    ["a.**.com", "allow", /"\*\*"/],
    ["**example.com", "allow", /"\*\*"/],
    ["10.0.0.*", "allow", /top-level domain/],
    ["*.10.0.0.1", "allow", /wildcards do not apply to IP addresses/],
    ["1.2.3.4.5", "allow", /neither an IPv4 address nor a domain name/],
    ["0x7f.1", "deny", /write "127.0.0.1"/],
    ["example.com:0", "allow", /not a port number/],
    ["example.com:65536", "allow", /not a port number/],
    ["example.com:http", "allow", /a port goes after the host/],
    ["exa$mple.com", "allow", /may only contain/],
    ["bücher.de", "allow", /IDNA/],
    [`${"a".repeat(64)}.com`, "allow", /63 characters/],
  ];
  for (const [pattern, action, wanted] of cases) {
    const message = validateDomainPattern(pattern, action);
    assert.match(message ?? "(accepted)", wanted, pattern);
    assert.throws(() => compileDomainPattern(pattern, action), PatternError);
  }
  for (
    const ok of [
      "example.com",
      "*.example.com",
      "**.example.com",
      "region*.example.com",
      "[::1]",
      "10.0.0.1",
      "_dmarc.example.com",
      "xn--bcher-kva.de",
      "localhost",
    ]
  ) {
    assert.equal(validateDomainPattern(ok, "deny"), null, ok);
  }
});

Deno.test("compileDomainPattern() puts the pattern in its PatternError message", () => {
  assert.throws(() => compileDomainPattern("*", "deny"), {
    name: "PatternError",
    message: 'Invalid pattern "*": a global wildcard is not allowed in a deny rule',
  });
});

Deno.test("compileDomainPattern() either compiles or throws PatternError, never anything else (property)", () => {
  const alphabet = fc.constantFrom(..."ab1.*[]:%-_ ".split(""));
  fc.assert(
    fc.property(
      fc.string({ unit: alphabet, maxLength: 16 }),
      fc.constantFrom("allow", "deny"),
      (pattern, action) => {
        const message = validateDomainPattern(pattern, action as "allow" | "deny");
        try {
          compileDomainPattern(pattern, action as "allow" | "deny");
          return message === null;
        } catch (error) {
          return error instanceof PatternError && message !== null;
        }
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("compileDomainPattern() keeps a port apart from the host part", () => {
  const cases: [string, string, number | null][] = [
    ["github.com:22", "github.com:22", 22],
    ["*.Example.com:8443", "*.example.com:8443", 8443],
    ["[::1]:22", "[::1]:22", 22],
    ["10.0.0.1:5432", "10.0.0.1:5432", 5432],
    ["2001:db8::1", "2001:db8::1", null],
    ["example.com", "example.com", null],
  ];
  for (const [text, normalized, port] of cases) {
    const pattern = compileDomainPattern(text, "allow");
    assert.equal(pattern.normalized, normalized, text);
    assert.equal(pattern.port, port, text);
  }
  const ssh = compileDomainPattern("github.com:22", "allow");
  assert.equal(matchesDomainPattern(ssh, "github.com"), true);
  assert.equal(matchesPatternPort(ssh, 22), true);
  assert.equal(matchesPatternPort(ssh, 443), false);
  assert.equal(matchesPatternPort(ssh, null), false);
  assert.equal(matchesPatternPort(compileDomainPattern("github.com", "allow"), 2222), true);
});

Deno.test("compileDomainPattern() compiles a plain name the same way as its spelling with a trailing dot (property)", () => {
  // A trailing dot takes the general path; the plain spelling takes the fast one.
  const label = fc.stringMatching(/^[a-z0-9_*-]{1,8}$/);
  const pattern = fc.tuple(
    fc.constantFrom("", "*.", "**."),
    fc.array(label, { minLength: 1, maxLength: 4 }),
  ).map(([prefix, labels]) => prefix + labels.join("."));
  fc.assert(
    fc.property(pattern, fc.constantFrom<"allow" | "deny">("allow", "deny"), (text, action) => {
      const general = validateDomainPattern(`${text}.`, action);
      assert.equal(validateDomainPattern(text, action), general);
      if (general === null) {
        assert.deepEqual(compileDomainPattern(text, action), {
          ...compileDomainPattern(`${text}.`, action),
          text,
        });
      }
    }),
    { numRuns: 3000 },
  );
  assert.equal(validateDomainPattern(`a.${"b".repeat(64)}.com`, "allow") !== null, true);
  assert.equal(validateDomainPattern(`${"a.".repeat(127)}com`, "allow") !== null, true);
});

Deno.test("compileDomainPattern() reads tls://HOST:PORT as that host and port, marked as TLS", () => {
  const cases: [string, string, number][] = [
    ["tls://registry.example:8443", "tls://registry.example:8443", 8443],
    ["TLS://*.Example.com:993", "tls://*.example.com:993", 993],
    ["tls://[2001:db8::7]:443", "tls://[2001:db8::7]:443", 443],
    ["tls://203.0.113.7:8443", "tls://203.0.113.7:8443", 8443],
  ];
  for (const [text, normalized, port] of cases) {
    const pattern = compileDomainPattern(text, "allow");
    assert.equal(pattern.text, text);
    assert.equal(pattern.normalized, normalized, text);
    assert.equal(pattern.port, port, text);
    assert.equal(pattern.tls, true, text);
    assert.equal(validateDomainPattern(text, "allow"), null, text);
  }
  const marked = compileDomainPattern("tls://registry.example:8443", "allow");
  assert.equal(matchesDomainPattern(marked, "registry.example"), true);
  assert.equal(matchesDomainPattern(marked, "other.example"), false);
  assert.equal(matchesPatternPort(marked, 8443), true);
  assert.equal(matchesPatternPort(marked, 443), false);
  // Without the marker nothing is TLS: a port-less or ported rule keeps today's meaning.
  assert.notEqual(compileDomainPattern("registry.example:8443", "allow").tls, true);
  assert.notEqual(compileDomainPattern("registry.example", "allow").tls, true);
});

Deno.test("validateDomainPattern() refuses tls:// without a port, on a deny rule, twice, and other schemes", () => {
  const cases: [string, "allow" | "deny", RegExp][] = [
    ["tls://registry.example", "allow", /marks one port as TLS: add the port/],
    ["tls://registry.example:8443", "deny", /a deny rule refuses the host whatever it speaks/],
    ["tls://tls://registry.example:8443", "allow", /write "tls:\/\/" once/],
    ["https://registry.example:8443", "allow", /the only marker is "tls:\/\/"/],
    ["tls://", "allow", /cannot be empty/],
  ];
  for (const [text, action, message] of cases) {
    assert.match(validateDomainPattern(text, action) ?? "(valid)", message, text);
    assert.throws(() => compileDomainPattern(text, action), PatternError, text);
  }
});

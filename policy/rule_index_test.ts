import assert from "node:assert/strict";
import fc from "fast-check";
import { parseIpLiteral } from "./address.ts";
import { normalizeHost } from "./host.ts";
import {
  compileDomainPattern,
  matchesDomainPattern,
  matchesPatternPort,
  type PlainNameParts,
  plainNameParts,
  validateDomainPattern,
} from "./pattern.ts";
import { RuleIndex, ruleIndexOf } from "./rule_index.ts";

interface Rule {
  pattern: ReturnType<typeof compileDomainPattern>;
  source: string;
  name?: PlainNameParts;
}

/** The same rules with the plain-name hint the policy gives them (the index then skips `pattern`). */
function hinted(rules: readonly Rule[]): Rule[] {
  return rules.map((rule) => {
    const name = plainNameParts(rule.pattern.text, rule.pattern.action);
    return name === null ? rule : { ...rule, name };
  });
}

/** The straightforward reference: scan every rule in order. */
function reference(
  rules: readonly Rule[],
  host: string,
  options: { exactOnly?: boolean; accept?: (rule: Rule) => boolean } = {},
): Rule | undefined {
  const address = parseIpLiteral(host);
  return rules.find((rule) =>
    (!options.exactOnly || rule.pattern.exact) &&
    matchesDomainPattern(rule.pattern, host, { address }) &&
    (options.accept === undefined || options.accept(rule))
  );
}

function compile(texts: readonly string[], action: "allow" | "deny"): Rule[] {
  return texts.map((text, i) => ({
    pattern: compileDomainPattern(text, action),
    source: `rule ${i}`,
  }));
}

// A small alphabet, so random patterns and hosts overlap often.
const label = fc.constantFrom("a", "b", "ab", "x-1", "_s", "com", "example", "");
const globLabel = fc.constantFrom("a*", "*b", "a*b", "*", "x*1");
const name = fc.array(label, { minLength: 1, maxLength: 5 }).map((ls) => ls.join("."));
const address = fc.constantFrom(
  "127.0.0.1",
  "10.0.0.1",
  "::1",
  "::ffff:10.0.0.1",
  "[::ffff:127.0.0.1]",
  "fe80::1%eth0",
  "fe80::1",
  "0:0:0:0:0:0:0:1",
  "1.2.3.4",
);
const patternText = fc.oneof(
  name,
  name.map((n) => `*.${n}`),
  name.map((n) => `**.${n}`),
  fc.tuple(globLabel, name).map(([g, n]) => `${g}.${n}`),
  fc.tuple(name, globLabel, name).map(([a, g, b]) => `${a}.${g}.${b}`),
  address,
  fc.constant("*"),
  name.map((n) => n.toUpperCase() + "."),
  fc.tuple(name, fc.constantFrom(80, 443)).map(([n, port]) => `**.${n}:${port}`),
  fc.tuple(address, fc.constantFrom(80, 443)).map(([a, port]) =>
    `${a.includes(":") && !a.startsWith("[") ? `[${a}]` : a}:${port}`
  ),
);
const hostText = fc.oneof(
  name,
  address,
  fc.tuple(label, name).map(([l, n]) => `${l}.${n}`),
  name.map((n) => `.${n}`),
  name.map((n) => `${n}..${n}`),
);

function validPatterns(texts: readonly string[], action: "allow" | "deny"): string[] {
  return texts.filter((text) => validateDomainPattern(text, action) === null);
}

Deno.test("RuleIndex.first() finds the same rule as a scan of the list, over random patterns and hosts", () => {
  fc.assert(
    fc.property(
      fc.array(patternText, { maxLength: 30 }),
      fc.constantFrom<"allow" | "deny">("allow", "deny"),
      fc.array(hostText, { minLength: 1, maxLength: 10 }),
      (texts, action, hosts) => {
        const plain = compile(validPatterns(texts, action), action);
        for (const rules of [plain, hinted(plain)]) {
          const index = new RuleIndex(rules);
          for (const raw of hosts) {
            const host = normalizeHost(raw);
            const address = parseIpLiteral(host);
            assert.equal(index.first(host, address), reference(rules, host), `host ${host}`);
            assert.equal(
              index.first(host, address, { exactOnly: true }),
              reference(rules, host, { exactOnly: true }),
              `exact, host ${host}`,
            );
            const onPort = (rule: Rule) => matchesPatternPort(rule.pattern, 80);
            assert.equal(
              index.first(host, address, { accept: onPort }),
              reference(rules, host, { accept: onPort }),
              `port 80, host ${host}`,
            );
          }
        }
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("RuleIndex.first() returns the earliest of several matching rules, whatever their kind", () => {
  const rules = compile(
    ["**.example.com", "*", "a.example.com", "*.example.com", "a*.example.com"],
    "allow",
  );
  const index = new RuleIndex(rules);
  assert.equal(index.first("a.example.com", null)?.pattern.text, "**.example.com");
  assert.equal(
    index.first("a.example.com", null, { exactOnly: true })?.pattern.text,
    "a.example.com",
  );
  const later = new RuleIndex(rules.slice(1));
  assert.equal(later.first("a.example.com", null)?.pattern.text, "*");
  const globs = new RuleIndex(rules.slice(4));
  assert.equal(globs.first("ab.example.com", null)?.pattern.text, "a*.example.com");
  assert.equal(globs.first("b.example.com", null), undefined);
});

Deno.test("RuleIndex.first() keeps an exact rule first when wildcards of the same name follow it", () => {
  // The index stores a lone exact rule as a bare position and widens it to a full entry when a
  // wildcard of the same name arrives: the exact rule must survive the widening.
  for (const rules of [compile(["a.test", "**.a.test", "*.a.test"], "allow")]) {
    for (const index of [new RuleIndex(rules), new RuleIndex(hinted(rules))]) {
      assert.equal(index.first("a.test", null)?.pattern.text, "a.test");
      assert.equal(index.first("b.a.test", null)?.pattern.text, "**.a.test");
      assert.equal(index.first("a.test", null, { exactOnly: true })?.pattern.text, "a.test");
    }
  }
});

Deno.test("RuleIndex.first() keeps *. strict and **. apex-inclusive at 100,000 rules", () => {
  const texts: string[] = [];
  for (let i = 0; i < 100_000; i++) texts.push(i % 2 === 0 ? `*.d${i}.test` : `**.d${i}.test`);
  const index = new RuleIndex(compile(texts, "deny"));
  assert.equal(index.first("d0.test", null), undefined);
  assert.equal(index.first("a.d0.test", null)?.pattern.text, "*.d0.test");
  assert.equal(index.first("d99999.test", null)?.pattern.text, "**.d99999.test");
  assert.equal(index.first("a.b.d99999.test", null)?.pattern.text, "**.d99999.test");
  assert.equal(index.first("d100000.test", null), undefined);
});

Deno.test("RuleIndex.first() matches a deny rule on an IPv4 address in its IPv4-mapped spelling, an allow rule not", () => {
  const host = normalizeHost("::ffff:10.0.0.1");
  const address = parseIpLiteral(host);
  assert.equal(
    new RuleIndex(compile(["10.0.0.1"], "deny")).first(host, address)?.pattern.text,
    "10.0.0.1",
  );
  assert.equal(new RuleIndex(compile(["10.0.0.1"], "allow")).first(host, address), undefined);
});

Deno.test("ruleIndexOf() builds one index per list and a new one for a copied list", () => {
  const rules = compile(["a.test"], "allow");
  assert.equal(ruleIndexOf(rules), ruleIndexOf(rules));
  const widened = [...rules, ...compile(["b.test"], "allow")];
  assert.notEqual(ruleIndexOf(widened), ruleIndexOf(rules));
  assert.equal(ruleIndexOf(widened).first("b.test", null)?.pattern.text, "b.test");
});

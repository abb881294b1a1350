import assert from "node:assert/strict";
import fc from "fast-check";
import { parse } from "smol-toml";
import { materializeEntries, parsePlainToml, PlainEntries } from "./_toml_fast.ts";

/** smol-toml's reading of `text`, or "error". */
function full(text: string): unknown {
  try {
    return parse(text);
  } catch {
    return "error";
  }
}

// Few names, so duplicates, redefinitions and key/table clashes come up often.
const name = fc.constantFrom(
  "a",
  "b",
  "net",
  "x-1",
  "_k",
  '"a"',
  '"a.b"',
  '""',
  '"q r"',
  "__proto__",
  "domains",
  "1",
  '"07"',
);
const value = fc.constantFrom(
  '"allow"',
  '"deny"',
  '""',
  '"#x"',
  '"t\tab"',
  "true",
  "false",
  "0",
  "42",
  "-7",
  "123456789012345",
  // Outside the subset: the fast reader must hand these to the full parser.
  "[1, 2]",
  "{ a = 1 }",
  "'lit'",
  '"esc\\"q"',
  "1.5",
  "+1",
  "1_000",
  "007",
  '"""m"""',
  "1979-05-27",
  "",
  "-0",
  "0x1",
  "1234567890123456",
  "truex",
  '"unclosed',
);
const line = fc.oneof(
  fc.tuple(name, value, fc.constantFrom("", " ", "\t")).map(([k, v, s]) => `${s}${k}${s}=${s}${v}`),
  fc.array(name, { minLength: 1, maxLength: 3 }).map((ks) => `[${ks.join(".")}]`),
  fc.array(name, { minLength: 1, maxLength: 2 }).map((ks) => `[[${ks.join(".")}]]`),
  fc.tuple(name, name, value).map(([a, b, v]) => `${a}.${b} = ${v}`),
  fc.constantFrom(
    "",
    "# comment",
    "  # indented",
    "a = 1 # trailing",
    "[a] # c",
    "é = 1",
    "\ufeffa = 1",
  ),
);
const doc = fc.tuple(fc.array(line, { maxLength: 12 }), fc.constantFrom("\n", "\r\n"), fc.boolean())
  .map(([lines, eol, last]) => lines.join(eol) + (last ? eol : ""));

Deno.test("parsePlainToml() agrees with smol-toml on everything it accepts (property)", () => {
  let accepted = 0;
  fc.assert(
    fc.property(doc, (text) => {
      const plain = parsePlainToml(text);
      if (plain === null) return;
      accepted++;
      assert.deepStrictEqual(plain, full(text), JSON.stringify(text));
    }),
    { numRuns: 5000 },
  );
  assert.ok(accepted > 500, `only ${accepted} documents took the fast path`);
});

// Documents that open with a `domains` table (then anything, further `domains` tables included).
const entriesDoc = fc.tuple(
  fc.constantFrom("[domains]", "[a.domains]", '[a."domains"]', "[net.domains]"),
  fc.array(fc.tuple(name, value).map(([k, v]) => `${k} = ${v}`), { maxLength: 6 }),
  doc,
).map(([header, pairs, rest]) => [header, ...pairs, rest].join("\n"));

Deno.test("parsePlainToml() with entries: the same value once materialized, entries in object order (property)", () => {
  let withEntries = 0;
  fc.assert(
    fc.property(entriesDoc, (text) => {
      const plain = parsePlainToml(text, { entries: true });
      if (plain === null) return;
      if (JSON.stringify(plain, (_, v) => v instanceof PlainEntries ? "E" : v).includes('"E"')) {
        withEntries++;
      }
      const expected = full(text);
      // Entries are visited in the order the object's keys are.
      const visit = (value: unknown, reference: unknown) => {
        if (value instanceof PlainEntries) {
          assert.deepStrictEqual(value.keys, Object.keys(reference as object), text);
        } else if (typeof value === "object" && value !== null) {
          for (const key of Object.keys(value)) {
            visit(
              (value as Record<string, unknown>)[key],
              (reference as Record<string, unknown>)[key],
            );
          }
        }
      };
      visit(plain, expected);
      assert.deepStrictEqual(materializeEntries(plain), expected, JSON.stringify(text));
    }),
    { numRuns: 5000 },
  );
  assert.ok(withEntries > 100, `only ${withEntries} documents had an entries table`);
});

Deno.test("parsePlainToml() with entries finds a duplicate key among 100,000 and leaves it to the full parser", () => {
  const lines = ["[p.domains]"];
  for (let i = 0; i < 100_000; i++) lines.push(`"d${i}.example.com" = "allow"`);
  const text = lines.join("\n") + "\n";
  const parsed = parsePlainToml(text, { entries: true });
  const table = (parsed?.p as Record<string, unknown>).domains;
  assert.ok(table instanceof PlainEntries);
  assert.equal(table.keys.length, 100_000);
  assert.equal(table.keys[99_999], "d99999.example.com");
  assert.equal(parsePlainToml(text + '"d5.example.com" = "deny"\n', { entries: true }), null);
  assert.equal(
    parsePlainToml('[p.domains]\n"a" = "allow"\n[p.domains]\n', { entries: true }),
    null,
  );
  assert.equal(
    parsePlainToml('[p.domains]\n"a" = "allow"\n[p.domains.x]\n', { entries: true }),
    null,
  );
});

Deno.test("parsePlainToml() reads a large allowlist and leaves errors to the full parser", () => {
  const lines = ['default_permissions = "big"', "", "[permissions.big.network.domains]"];
  for (let i = 0; i < 1000; i++) lines.push(`"d${i}.example.com" = "allow" # rule ${i}`);
  const text = lines.join("\n") + "\n";
  assert.deepStrictEqual(parsePlainToml(text), parse(text));
  // A value cut off by the end of the text is not a value.
  for (const cut of ["a =", "a = -", 'a = "x', "a = tru", "[a"]) {
    assert.equal(parsePlainToml(cut), null);
  }
  assert.equal(parsePlainToml('a = "x"\na = "y"\n'), null);
  assert.equal(parsePlainToml("[a]\n[a]\n"), null);
  assert.equal(parsePlainToml("a = 1\n[a]\n"), null);
  assert.equal(parsePlainToml("[a.b]\n[a]\nb = 1\n"), null);
  assert.deepStrictEqual(parsePlainToml("[a.b]\n[a]\nc = 1\n"), parse("[a.b]\n[a]\nc = 1\n"));
});

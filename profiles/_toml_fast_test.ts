import assert from "node:assert/strict";
import fc from "fast-check";
import { parse } from "smol-toml";
import { parsePlainToml } from "./_toml_fast.ts";

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

import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import fc from "fast-check";
import { type OptionSpecs, parseCommandArgs, SHARED_OPTIONS } from "./args.ts";
import { UsageError } from "../errors.ts";

/** A spec with a string short option too, for the short-option paths. */
const SPECS = {
  ...SHARED_OPTIONS,
  out: { type: "string", short: "o" },
  verbose: { type: "boolean", short: "v", multiple: true },
} as const satisfies OptionSpecs;

function usageError(command: string, detail: string): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${error}`);
    assert.equal(error.code, "usage");
    assert.equal(error.command, command);
    assert.equal(error.message, `Invalid arguments for "sandbox ${command}": ${detail}`);
    return true;
  };
}

function rejects(args: string[], detail: string, options: { allowPositionals?: boolean } = {}) {
  assert.throws(() => parseCommandArgs("run", args, SPECS, options), usageError("run", detail));
}

Deno.test("parseCommandArgs() reads --name VALUE, --name=VALUE, repeats and booleans", () => {
  const { values, positionals, rest } = parseCommandArgs("run", [
    "--allow",
    "a.test",
    "--allow=b.test",
    "--profile",
    "one",
    "--profile=two",
    "--json",
    "--mitm",
    "--log=",
  ], SPECS);
  assert.deepEqual({ ...values }, {
    allow: ["a.test", "b.test"],
    profile: "two",
    json: true,
    mitm: true,
    log: "",
  });
  assert.deepEqual(positionals, []);
  assert.equal(rest, null);
});

Deno.test("parseCommandArgs() returns a null-prototype object without absent options", () => {
  const { values } = parseCommandArgs("run", ["--json"], SPECS);
  assert.equal(Object.getPrototypeOf(values), null);
  assert.deepEqual(Object.keys(values), ["json"]);
  assert.equal(values.allow, undefined);
});

Deno.test("parseCommandArgs() leaves everything after the first lone -- untouched", () => {
  const { values, rest } = parseCommandArgs(
    "run",
    ["--json", "--", "curl", "--allow", "-h", "--", "--bogus=1", ""],
    SPECS,
  );
  assert.deepEqual({ ...values }, { json: true });
  assert.deepEqual(rest, ["curl", "--allow", "-h", "--", "--bogus=1", ""]);
  assert.deepEqual(parseCommandArgs("run", ["--"], SPECS).rest, []);
  assert.deepEqual(parseCommandArgs("run", [], SPECS), {
    values: Object.create(null),
    positionals: [],
    rest: null,
  });
});

Deno.test("parseCommandArgs() reads short options: -h, groups, -oVALUE, -o VALUE", () => {
  assert.deepEqual({ ...parseCommandArgs("run", ["-h"], SPECS).values }, { help: true });
  assert.deepEqual({ ...parseCommandArgs("run", ["-hvv"], SPECS).values }, {
    help: true,
    verbose: [true, true],
  });
  assert.deepEqual({ ...parseCommandArgs("run", ["-ofile"], SPECS).values }, { out: "file" });
  assert.deepEqual({ ...parseCommandArgs("run", ["-o", "file"], SPECS).values }, { out: "file" });
  assert.deepEqual({ ...parseCommandArgs("run", ["-ho", "file"], SPECS).values }, {
    help: true,
    out: "file",
  });
  // In a group, a string option takes the rest of the group as its value.
  assert.deepEqual({ ...parseCommandArgs("run", ["-hohv"], SPECS).values }, {
    help: true,
    out: "hv",
  });
});

Deno.test("parseCommandArgs() takes positionals in order only when allowed", () => {
  const parsed = parseCommandArgs("policy host", ["a.test", "--json", "-", "", "b.test"], SPECS, {
    allowPositionals: true,
  });
  assert.deepEqual(parsed.positionals, ["a.test", "-", "", "b.test"]);
  assert.deepEqual({ ...parsed.values }, { json: true });
  const after = parseCommandArgs("policy check", ["x", "--", "y"], SPECS, {
    allowPositionals: true,
  });
  assert.deepEqual(after.positionals, ["x"]);
  assert.deepEqual(after.rest, ["y"]);
});

Deno.test("parseCommandArgs() rejects positionals when not allowed, '-' and '' included", () => {
  for (const arg of ["curl", "-", ""]) {
    rejects(
      ["--json", arg, "--", "true"],
      `unexpected argument "${arg}": "sandbox run" takes only options before a lone "--"`,
    );
  }
});

Deno.test("parseCommandArgs() rejects an unknown long option and suggests a close one", () => {
  rejects(["--alow", "a.test"], 'unknown option "--alow": did you mean "--allow"?');
  rejects(["--alow=a.test"], 'unknown option "--alow": did you mean "--allow"?');
  rejects(["--pofile", "x"], 'unknown option "--pofile": did you mean "--profile"?');
  rejects(["--jsno"], 'unknown option "--jsno": did you mean "--json"?');
  rejects(["--JSON"], 'unknown option "--JSON": did you mean "--json"?');
  rejects(["--dry-run"], 'unknown option "--dry-run"');
  // A unique prefix of a known option.
  rejects(
    ["--allow-unix", "/s"],
    'unknown option "--allow-unix": did you mean "--allow-unix-socket"?',
  );
  // An ambiguous prefix ("allow", "allow-local-binding", "allow-unix-socket") suggests by distance.
  rejects(["--allo", "x"], 'unknown option "--allo": did you mean "--allow"?');
  rejects(["--frobnicate"], 'unknown option "--frobnicate"');
  rejects(["---json"], 'unknown option "---json": did you mean "--json"?');
  rejects(["--=x"], 'unknown option "--"');
});

Deno.test("parseCommandArgs() does not take inherited object keys for options", () => {
  for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
    assert.throws(
      () => parseCommandArgs("run", [`--${name}`], SPECS),
      (error) =>
        error instanceof UsageError && error.message.includes(`unknown option "--${name}"`),
    );
  }
});

Deno.test("parseCommandArgs() rejects an unknown short option, alone and in a group", () => {
  rejects(["-x"], 'unknown option "-x"');
  rejects(["-hx"], 'unknown option "-x" in "-hx"');
  rejects(["-1"], 'unknown option "-1"');
  rejects(["-="], 'unknown option "-="');
  // A long option written with one dash.
  rejects(["-allow", "a.test"], 'unknown option "-a" in "-allow": did you mean "--allow"?');
  rejects(["-json"], 'unknown option "-j" in "-json": did you mean "--json"?');
});

Deno.test("parseCommandArgs() rejects a value given to a boolean option", () => {
  rejects(["--json=1"], 'option "--json" takes no value: write "--json" instead of "--json=1"');
  rejects(["--json="], 'option "--json" takes no value: write "--json" instead of "--json="');
  rejects(["-h=1"], 'option "-h" takes no value: write "-h" instead of "-h=1"');
});

Deno.test("parseCommandArgs() rejects a string option without a value", () => {
  rejects(["--allow"], 'missing value for "--allow": write "--allow VALUE" or "--allow=VALUE"');
  rejects(["-o"], 'missing value for "-o": write "-o VALUE" or "-o=VALUE"');
  // A lone -- ends the options: it is never taken as a value.
  rejects(
    ["--profile", "--", "true"],
    'missing value for "--profile": write "--profile VALUE" or "--profile=VALUE"',
  );
});

Deno.test("parseCommandArgs() takes a value starting with '-' only as --name=VALUE", () => {
  // `--allow -x` is far more often a forgotten value than a pattern "-x": refuse it and say how.
  rejects(
    ["--allow", "-x"],
    'missing value for "--allow": "-x" looks like an option; write "--allow=-x" if it is the value',
  );
  rejects(
    ["--log", "--json"],
    'missing value for "--log": "--json" looks like an option; write "--log=--json" if it is the value',
  );
  rejects(
    ["-o", "-h"],
    'missing value for "-o": "-h" looks like an option; write "-o=-h" if it is the value',
  );
  assert.deepEqual(parseCommandArgs("run", ["--allow=-x"], SPECS).values.allow, ["-x"]);
  assert.deepEqual(parseCommandArgs("run", ["--allow=--json"], SPECS).values.allow, ["--json"]);
  assert.equal(parseCommandArgs("run", ["-o-h"], SPECS).values.out, "-h");
  // "-" alone (e.g. stdout) and the empty string are values, not options.
  assert.equal(parseCommandArgs("run", ["--log", "-"], SPECS).values.log, "-");
  assert.equal(parseCommandArgs("run", ["--log", ""], SPECS).values.log, "");
  assert.equal(parseCommandArgs("run", ["--log=a=b"], SPECS).values.log, "a=b");
});

Deno.test("parseCommandArgs() names the command it parses for, subcommands included", () => {
  assert.throws(
    () => parseCommandArgs("policy host", ["--bogus"], SHARED_OPTIONS),
    usageError("policy host", 'unknown option "--bogus"'),
  );
});

Deno.test("parseCommandArgs() agrees with node:util parseArgs (strict) on every argv it accepts or refuses", () => {
  // The parser replaced node:util's to keep the Node compatibility layer out of start-up; the
  // contract is the same: same values and positionals where node accepts, a UsageError where it
  // refuses.
  const token = fc.constantFrom(
    "--allow",
    "--allow=a.test",
    "--allow=-x",
    "--allow=",
    "a.test",
    "-x",
    "-",
    "",
    "--json",
    "--json=1",
    "--mitm",
    "--profile",
    "--profile=p",
    "-h",
    "-hh",
    "-hv",
    "-h=1",
    "-o",
    "-ofile",
    "-ho",
    "-vx",
    "--alow",
    "---json",
    "--constructor",
    "-1",
    "--",
  );
  const seen = { accepted: 0, refused: 0 };
  fc.assert(
    fc.property(fc.array(token, { maxLength: 8 }), fc.boolean(), (args, allowPositionals) => {
      const dashDash = args.indexOf("--");
      const head = dashDash === -1 ? args : args.slice(0, dashDash);
      let expected: { values: unknown; positionals: string[] } | null;
      try {
        const parsed = parseArgs({ args: head, options: SPECS, allowPositionals, strict: true });
        expected = { values: parsed.values, positionals: parsed.positionals };
      } catch {
        expected = null;
      }
      seen[expected === null ? "refused" : "accepted"]++;
      if (expected === null) {
        assert.throws(
          () => parseCommandArgs("run", args, SPECS, { allowPositionals }),
          UsageError,
          JSON.stringify(args),
        );
        return;
      }
      const actual = parseCommandArgs("run", args, SPECS, { allowPositionals });
      assert.deepEqual(
        { values: actual.values, positionals: actual.positionals },
        expected,
        JSON.stringify(args),
      );
      assert.deepEqual(actual.rest, dashDash === -1 ? null : args.slice(dashDash + 1));
    }),
    { numRuns: 2000 },
  );
  // Both sides of the contract were exercised, not just one.
  assert.ok(seen.accepted > 100 && seen.refused > 100, JSON.stringify(seen));
});

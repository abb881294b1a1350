/**
 * Fuzz target for the profile loader's text path (`profile_config`):
 * config values built from the real key set with valid and hostile values
 * (wrong types, odd patterns, control characters, unknown keys), written as
 * TOML with smol-toml, plus byte-level mutations of that text.
 *
 * Properties: validateConfigText never throws and every problem names its
 * file and says something; the same text validates identically twice; the
 * value validates the same as its TOML text; and a config that validates
 * re-validates to an identical config after a parse -> stringify round trip.
 *
 * @module
 */
import fc from "fast-check";
import { parse, stringify } from "smol-toml";
import { type ConfigKind, validateConfig, validateConfigText } from "../../profiles/validate.ts";
import {
  check,
  type FuzzReport,
  type FuzzRunOptions,
  type FuzzTarget,
  runAsync,
} from "./harness.ts";

const FILE = "/fuzz/config.toml";

const str = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("ci", "dev", "", " ", "a.b", "x\u0000y", "é", "*") },
  { weight: 1, arbitrary: fc.string({ maxLength: 10 }) },
);
const pattern = fc.oneof(
  fc.constantFrom(
    "example.com",
    "*.example.com",
    "**.example.com",
    "*",
    "127.0.0.1",
    "[::1]",
    "0x7f.1",
    "a..b",
    "EXAMPLE.com.",
    "xn--bcher-kva.example",
    "é.example",
    "",
  ),
  fc.string({ unit: fc.constantFrom(..."ab.*-1".split("")), maxLength: 10 }),
);
const wrong = fc.oneof(fc.integer(), fc.boolean(), fc.constant([1, "a"]), fc.constant({ x: 1 }));
const maybeWrong = <T>(arb: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 30, arbitrary: arb }, { weight: 1, arbitrary: wrong });

const network = fc.record({
  enabled: maybeWrong(fc.boolean()),
  mode: maybeWrong(fc.oneof(fc.constantFrom("full", "limited"), fc.constantFrom("FULL", "none"))),
  allow_local_binding: maybeWrong(fc.boolean()),
  enable_socks5: maybeWrong(fc.boolean()),
  ask: maybeWrong(fc.boolean()),
  presets: maybeWrong(fc.array(fc.constantFrom("common-dependencies", "nope"), { maxLength: 2 })),
  domains: maybeWrong(fc.dictionary(pattern, fc.constantFrom("allow", "deny", "allow", "maybe"), {
    maxKeys: 4,
  })),
  unix_sockets: maybeWrong(fc.dictionary(
    fc.constantFrom("/run/a.sock", "/tmp/x.sock", "relative.sock", ""),
    fc.constantFrom("allow", "none", "deny"),
    { maxKeys: 2 },
  )),
  proxy_url: maybeWrong(fc.constantFrom("http://127.0.0.1:3128", "http://0.0.0.0:1", "nonsense")),
  dangerously_allow_all_unix_sockets: maybeWrong(fc.boolean()),
  allowed_domains: fc.array(pattern, { maxLength: 2 }),
  http_port: fc.integer({ min: -1, max: 70000 }),
  bogus: fc.integer(),
}, { requiredKeys: [] }).map((n) => {
  // Keys that only a managed file knows (or nobody knows) appear now and then.
  const out: Record<string, unknown> = { ...n };
  for (const key of ["allowed_domains", "http_port", "bogus", "proxy_url"]) {
    if (key in out && JSON.stringify(out[key]).length % 5 !== 0) delete out[key];
  }
  return out;
});

const profile = fc.record({
  description: maybeWrong(str),
  extends: maybeWrong(fc.constantFrom("ci", "dev", "missing")),
  network: maybeWrong(network),
  filesystem: maybeWrong(fc.record({
    writable: fc.array(fc.constantFrom("/tmp/w", "~/x", "rel", "", "/a\u0000b"), { maxLength: 2 }),
    deny_read: fc.array(fc.constantFrom("~/.ssh", "/etc/shadow", "x"), { maxLength: 2 }),
  }, { requiredKeys: [] })),
  env: maybeWrong(fc.record({
    allow: fc.array(fc.constantFrom("PATH", "HOME", "A*", ""), { maxLength: 2 }),
    deny: fc.array(fc.constantFrom("AWS_*", "TOKEN", ""), { maxLength: 2 }),
  }, { requiredKeys: [] })),
}, { requiredKeys: [] });

const execRule = fc.oneof(
  fc.constantFrom("allow", "deny", "allow-network", "maybe"),
  fc.record({
    decision: maybeWrong(fc.constantFrom("allow", "deny", "allow-network")),
    justification: str,
    match: fc.array(fc.constantFrom("git push origin", "git push origin", "'unclosed", ""), {
      maxLength: 2,
    }),
    not_match: fc.array(fc.constantFrom("git status", "curl", "a b c"), { maxLength: 2 }),
  }, { requiredKeys: [] }),
);

const userConfig = fc.record({
  default_permissions: maybeWrong(fc.constantFrom("ci", "dev", "missing", "")),
  permissions: maybeWrong(fc.dictionary(fc.constantFrom("ci", "dev", "x y", ""), profile, {
    maxKeys: 2,
  })),
  execpolicy: maybeWrong(
    fc.dictionary(
      fc.constantFrom("git push *", "curl *", "rm -rf /", "git push *", "'unclosed", "", "[z-a]"),
      execRule,
      { maxKeys: 3 },
    ),
  ),
  execpolicy_default: maybeWrong(fc.constantFrom("allow", "deny", "allow-network", "x")),
  model: fc.constant("gpt"),
}, { requiredKeys: [] });

const managedConfig = fc.record({
  experimental_network: maybeWrong(network),
  execpolicy: maybeWrong(fc.dictionary(fc.constantFrom("git push *", "curl *"), execRule, {
    maxKeys: 2,
  })),
  execpolicy_default: fc.constantFrom("allow", "deny"),
}, { requiredKeys: [] });

type ProfileInput = { kind: ConfigKind; value: Record<string, unknown>; edits: [number, string][] };

const input: fc.Arbitrary<ProfileInput> = fc.oneof(
  fc.record({
    kind: fc.constant<ConfigKind>("user"),
    value: userConfig as fc.Arbitrary<Record<string, unknown>>,
  }),
  fc.record({
    kind: fc.constant<ConfigKind>("managed"),
    value: managedConfig as fc.Arbitrary<Record<string, unknown>>,
  }),
).chain((base) =>
  fc.array(fc.tuple(fc.nat(), fc.constantFrom("", "[", "]", "=", '"', "\n", "#", "x", ".", "\\")), {
    maxLength: 3,
  }).map((edits) => ({ ...base, edits }))
);

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function checkProfile({ kind, value, edits }: ProfileInput): Promise<boolean> {
  let text: string;
  try {
    text = stringify(value);
  } catch {
    return false; // Not representable as TOML (e.g. a key smol-toml refuses): nothing to test.
  }
  for (const [at, insert] of edits) {
    const i = text.length === 0 ? 0 : at % (text.length + 1);
    text = text.slice(0, i) + insert + text.slice(i + (insert === "" ? 1 : 0));
  }
  const options = { file: FILE, kind };
  if (edits.length === 0) {
    const fromValue = validateConfig(value, options);
    const fromText = await validateConfigText(text, options);
    check(fromValue.ok === fromText.ok, "a value and its TOML text disagree on validity");
  }
  const first = await validateConfigText(text, options);
  const second = await validateConfigText(text, options);
  check(same(first, second), "the same text validated differently twice");
  if (!first.ok) {
    check(first.problems.length > 0, "refused without a problem");
    for (const p of first.problems) {
      check(p.file === FILE, `a problem names file ${JSON.stringify(p.file)}`);
      check(typeof p.message === "string" && p.message.length > 0, "a problem without a message");
      check(typeof p.keyPath === "string", "a problem without a key path");
    }
  }
  if (edits.length === 0 && first.ok) {
    // The value as TOML orders keys its own way; compare with what the text holds.
    const direct = validateConfig(parse(text), options);
    check(direct.ok === first.ok, "the value and its TOML text validate differently");
    if (direct.ok && first.ok) check(same(direct.config, first.config), "configs differ");
  }
  if (!first.ok) return false;
  const again = await validateConfigText(stringify(parse(text)), options);
  check(again.ok, "a config that validated does not re-validate after a round trip");
  check(same(again.config, first.config), "a round trip changed the validated config");
  return true;
}

/** `profile_config`. */
export const profileConfigTarget: FuzzTarget = {
  name: "profile_config",
  description: "validateConfigText on generated and mutated TOML: no throw, stable, round-trips",
  kind: "pure",
  async run(options: FuzzRunOptions): Promise<FuzzReport> {
    let valid = 0;
    // Async since validateConfigText loads the TOML parser on first use.
    const result = await runAsync("profile_config", input, async (i) => {
      if (await checkProfile(i)) valid++;
    }, options);
    return {
      ...result,
      notes: `${valid} inputs validated and were round-tripped`,
    };
  },
};

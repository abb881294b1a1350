/**
 * Fuzz targets for the policy engine, run in memory:
 *
 * - `host_normalize`: normalizeHost/splitHostPort on arbitrary text. Never
 *   throws; idempotent; ASCII case never matters; ports are 1-65535.
 * - `address_spelling`: generated spellings of non-public addresses (IPv4 in
 *   1-4 parts, each decimal, octal or hex, upper/lower case, with or without
 *   a trailing dot; IPv4-mapped, -compatible, SIIT, NAT64 and 6to4 IPv6
 *   forms, bracketed, zero-padded, with zones). Each must parse to the
 *   intended address, be classified non-public, and be refused by a policy
 *   that allows `*`, without any lookup. A slice of the inputs is random text
 *   over the IPv4 alphabet checked against libc `inet_aton` (through FFI, no
 *   network): whatever libc reads as an address, the parser reads as the same
 *   address or refuses, and a non-public one is never allowed. Every 97th
 *   libc-accepted input is also looked up with `node:dns` (family 4; a
 *   numeric string never reaches DNS) and must give the same address.
 * - `domain_pattern`: patterns compile or throw PatternError, in agreement
 *   with validateDomainPattern; matching agrees with an independent
 *   regular-expression model of the grammar (label-anchored globs).
 *
 * @module
 */
import fc from "fast-check";
import { lookup } from "node:dns/promises";
import { isNonPublicAddress, parseIpLiteral } from "../../policy/address.ts";
import { normalizeHost, splitHostPort } from "../../policy/host.ts";
import {
  compileDomainPattern,
  type DomainPattern,
  matchesDomainPattern,
  PatternError,
  validateDomainPattern,
} from "../../policy/pattern.ts";
import { compileNetworkPolicy, decideHost, type NetworkPolicy } from "../../policy/policy.ts";
import type { Resolver } from "../../proxy/resolver.ts";
import type { NetworkConfig } from "../../profiles/types.ts";
import {
  check,
  type FuzzReport,
  type FuzzRunOptions,
  type FuzzTarget,
  onlyRefusals,
  runAsync,
  runSync,
} from "./harness.ts";
import { networkConfig } from "../network_helpers.ts";

const upperAscii = (s: string) => s.replace(/[a-z]+/g, (run) => run.toUpperCase());

// ---------------------------------------------------------------- host_normalize

const hostText = fc.oneof(
  fc.string({
    unit: fc.constantFrom(..."aZ09.:[]%-_ *\t\u00e9\u0130\u212a".split("")),
    maxLength: 32,
  }),
  fc.string({ maxLength: 32 }),
  fc.string({ unit: "binary", maxLength: 16 }),
);

function checkHost(input: string): void {
  const once = normalizeHost(input);
  check(normalizeHost(once) === once, `not idempotent: ${JSON.stringify(once)}`);
  check(normalizeHost(upperAscii(input)) === once, "ASCII case changed the normalized host");
  check(!/[A-Z]/.test(once), "upper-case ASCII left in a normalized host");
  check(!once.endsWith(".") || once.replace(/\.+$/, "") === "", "trailing dot left");
  const split = splitHostPort(input);
  check(
    split.port === null || (Number.isInteger(split.port) && split.port >= 1 && split.port <= 65535),
    `port ${split.port} out of range`,
  );
}

/** `host_normalize`. */
export const hostNormalizeTarget: FuzzTarget = {
  name: "host_normalize",
  description: "normalizeHost/splitHostPort: never throw, idempotent, case-blind, ports in range",
  kind: "pure",
  run(options: FuzzRunOptions): Promise<FuzzReport> {
    return Promise.resolve(runSync("host_normalize", hostText, checkHost, options));
  },
};

// ---------------------------------------------------------------- address_spelling

/** Non-public IPv4 ranges to draw from: [first address as number, prefix]. */
const V4_RANGES: readonly [string, number][] = [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
];

function v4Number(dotted: string): number {
  return dotted.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

const nonPublicV4 = fc.tuple(fc.constantFrom(...V4_RANGES), fc.nat()).map(([[base, prefix], r]) => {
  const size = 2 ** (32 - prefix);
  return v4Number(base) + (r % size);
});

type Radix = "dec" | "oct" | "hex" | "HEX";

function spellNumber(n: number, radix: Radix, pad: number): string {
  if (radix === "dec") return String(n);
  if (radix === "oct") return "0" + "0".repeat(pad) + n.toString(8);
  const digits = "0".repeat(pad) + n.toString(16);
  return radix === "hex" ? "0x" + digits : "0X" + digits.toUpperCase();
}

/** Spells the address as 1-4 inet_aton parts; returns the text. */
function spellV4(n: number, parts: number, radixes: Radix[], pad: number): string {
  const bytes = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  const lead = bytes.slice(0, parts - 1);
  const restBytes = bytes.slice(parts - 1);
  const last = restBytes.reduce((acc, b) => acc * 256 + b, 0);
  return [...lead, last].map((value, i) => spellNumber(value, radixes[i % radixes.length], pad))
    .join(".");
}

const dotted = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
const hexPair = (n: number, upper: boolean) => {
  const a = (n >>> 16).toString(16);
  const b = (n & 0xffff).toString(16);
  return upper ? `${a}:${b}`.toUpperCase() : `${a}:${b}`;
};

interface Spelling {
  /** The text as a client would send it. */
  readonly text: string;
  /** The IPv4 address it must mean (or the IPv4 address embedded in an IPv6 form). */
  readonly v4: number;
  /** Whether this is a plain IPv4 spelling libc inet_aton must accept as `v4`. */
  readonly plainV4: boolean;
}

const spelling: fc.Arbitrary<Spelling> = fc.record({
  n: nonPublicV4,
  parts: fc.integer({ min: 1, max: 4 }),
  radixes: fc.array(fc.constantFrom<Radix>("dec", "oct", "hex", "HEX"), {
    minLength: 1,
    maxLength: 4,
  }),
  pad: fc.integer({ min: 0, max: 3 }),
  trailingDot: fc.boolean(),
  form: fc.constantFrom(
    "v4",
    "v4",
    "v4",
    "mapped",
    "mapped-hex",
    "mapped-long",
    "compatible",
    "siit",
    "nat64",
    "nat64-hex",
    "6to4",
  ),
  upper: fc.boolean(),
  bracket: fc.boolean(),
  suffix: fc.integer({ min: 0, max: 0xffff }),
  port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }),
}).map((s) => {
  let text: string;
  const up = (t: string) => (s.upper ? t.toUpperCase() : t);
  switch (s.form) {
    case "v4":
      text = spellV4(s.n, s.parts, s.radixes, s.pad) + (s.trailingDot ? "." : "");
      if (s.port !== null) text += `:${s.port}`;
      return { text, v4: s.n, plainV4: !s.trailingDot && s.port === null };
    case "mapped":
      text = up(`::ffff:`) + dotted(s.n);
      break;
    case "mapped-hex":
      text = up(`::ffff:${hexPair(s.n, false)}`);
      break;
    case "mapped-long":
      text = up(`0000:0:0:0:0:FFFF:${hexPair(s.n, false)}`);
      break;
    case "compatible":
      // ::0.x.y.z would be ::/128-ish; any compatible address is judged by its IPv4.
      text = `::${dotted(s.n)}`;
      break;
    case "siit":
      text = up(`::ffff:0:`) + dotted(s.n);
      break;
    case "nat64":
      text = up(`64:ff9b::`) + dotted(s.n);
      break;
    case "nat64-hex":
      text = up(`64:ff9b::${hexPair(s.n, false)}`);
      break;
    default:
      text = up(`2002:${hexPair(s.n, false)}::${s.suffix.toString(16)}`);
  }
  if (s.bracket || s.port !== null) text = `[${text}]`;
  if (s.port !== null) text += `:${s.port}`;
  return { text, v4: s.n, plainV4: false };
});

/** libc's inet_aton through FFI (no network), or null when FFI is not available. */
interface InetAton extends Disposable {
  parse(text: string): number | null;
}

function openInetAton(): InetAton | null {
  if (Deno.build.os !== "linux" && Deno.build.os !== "darwin") return null;
  let lib;
  try {
    lib = Deno.dlopen(Deno.build.os === "linux" ? "libc.so.6" : "libSystem.dylib", {
      inet_aton: { parameters: ["buffer", "buffer"], result: "i32" },
    });
  } catch {
    return null;
  }
  const out = new Uint8Array(4);
  const encoder = new TextEncoder();
  return {
    parse(text: string): number | null {
      out.fill(0);
      const ok = lib.symbols.inet_aton(encoder.encode(text + "\0"), out);
      return ok === 0 ? null : ((out[0] << 24) >>> 0) + (out[1] << 16) + (out[2] << 8) + out[3];
    },
    [Symbol.dispose]() {
      lib.close();
    },
  };
}

function allowAllPolicy(): NetworkPolicy {
  const network: NetworkConfig = networkConfig({
    domains: [{ pattern: "*", action: "allow", source: "fuzz" }],
  });
  return compileNetworkPolicy(network);
}

/** Random text over the IPv4 alphabet, biased towards number-like parts. */
const v4ishText = fc.oneof(
  fc.string({ unit: fc.constantFrom(..."0123456789abcdefxX.".split("")), maxLength: 24 }),
  fc.array(
    fc.oneof(
      fc.nat({ max: 0xffffffff }).map(String),
      fc.nat({ max: 0xffffffff }).map((n) => "0x" + n.toString(16)),
      fc.nat({ max: 0xffffffff }).map((n) => "0" + n.toString(8)),
      fc.nat({ max: 300 }).map(String),
      fc.constantFrom("0", "00", "0x", "08", "0xg", "", "-1", "+1"),
    ),
    { minLength: 1, maxLength: 5 },
  ).map((parts) => parts.join(".")),
);

type AddressInput = { kind: "spelling"; s: Spelling } | { kind: "text"; text: string };

const addressInput: fc.Arbitrary<AddressInput> = fc.oneof(
  { weight: 3, arbitrary: spelling.map((s) => ({ kind: "spelling" as const, s })) },
  { weight: 1, arbitrary: v4ishText.map((text) => ({ kind: "text" as const, text })) },
);

function v4Of(bytes: Uint8Array, family: 4 | 6): number {
  const at = family === 4 ? 0 : bytes[0] === 0x20 && bytes[1] === 0x02 ? 2 : 12;
  return ((bytes[at] << 24) >>> 0) + (bytes[at + 1] << 16) + (bytes[at + 2] << 8) + bytes[at + 3];
}

/** `address_spelling`. */
export const addressSpellingTarget: FuzzTarget = {
  name: "address_spelling",
  description:
    "non-public addresses in every spelling: parsed as meant, classified non-public, refused; libc inet_aton and getaddrinfo agree",
  kind: "pure",
  async run(options: FuzzRunOptions): Promise<FuzzReport> {
    using aton = openInetAton();
    const policy = allowAllPolicy();
    let lookups = 0;
    const resolver: Resolver = (host) => {
      lookups++;
      return Promise.reject(new Error(`unexpected lookup of "${host}"`));
    };
    let accepted = 0;
    let resolved = 0;
    const refused = async (text: string, what: string) => {
      const before = lookups;
      const d = await decideHost(policy, text, { resolver });
      check(d.decision === "deny", `${what} ${JSON.stringify(text)} was allowed by "*"`);
      check(lookups === before, `${what} ${JSON.stringify(text)} was looked up`);
    };
    const result = await runAsync("address_spelling", addressInput, async (input) => {
      if (input.kind === "spelling") {
        const { text, v4, plainV4 } = input.s;
        const host = normalizeHost(text);
        const ip = parseIpLiteral(host);
        check(ip !== null, `${JSON.stringify(text)} is not parsed as an address`);
        check(
          v4Of(ip.bytes, ip.family) === v4,
          `${JSON.stringify(text)} parsed as ${ip.canonical}, meant ${dotted(v4)}`,
        );
        check(isNonPublicAddress(ip), `${JSON.stringify(text)} (${ip.canonical}) judged public`);
        await refused(text, "non-public spelling");
        if (plainV4 && aton !== null) {
          check(aton.parse(text) === v4, `libc inet_aton reads ${JSON.stringify(text)} otherwise`);
        }
        return;
      }
      const text = input.text;
      const ours = parseIpLiteral(normalizeHost(text));
      const libc = aton?.parse(text) ?? null;
      if (libc === null) return;
      accepted++;
      check(
        ours === null || (ours.family === 4 && v4Of(ours.bytes, 4) === libc),
        `libc reads ${JSON.stringify(text)} as ${dotted(libc)}, the parser as ${ours?.canonical}`,
      );
      if (isNonPublicAddress(dotted(libc))) await refused(text, "libc-readable non-public text");
      if (accepted % 97 === 0) {
        // getaddrinfo answers numeric strings itself: no DNS traffic.
        const answers = await lookup(text, { family: 4, all: true });
        resolved++;
        check(
          answers.length === 1 && answers[0].address === dotted(libc),
          `getaddrinfo reads ${JSON.stringify(text)} as ${JSON.stringify(answers)}`,
        );
      }
    }, options);
    return {
      ...result,
      notes: aton === null
        ? "libc inet_aton not available: cross-check skipped"
        : `libc inet_aton accepted ${accepted} random texts; ${resolved} cross-checked with getaddrinfo`,
    };
  },
};

// ---------------------------------------------------------------- domain_pattern

const LABELS = ["a", "b", "ab", "x-y", "_s", "1", "*", "a*", "*b", "a*b", "**", "com", "test", ""];

const patternText = fc.oneof(
  fc.array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 4 }).chain((labels) =>
    fc.constantFrom("", "*.", "**.", "*", "**").map((prefix) =>
      prefix === "*" || prefix === "**"
        ? (labels.length === 1 ? prefix : `${prefix}.${labels.join(".")}`)
        : prefix + labels.join(".")
    )
  ),
  fc.string({ unit: fc.constantFrom(..."ab1.*[]:%-_ Xé".split("")), maxLength: 16 }),
  fc.constantFrom("*", "127.0.0.1", "[::1]", "::1", "0x7f.1", "10.0.0.1", "fe80::1%lo"),
);

const hostLabels = fc.array(
  fc.constantFrom("a", "b", "ab", "x-y", "_s", "com", "test", "aab", "c"),
  {
    minLength: 1,
    maxLength: 5,
  },
).map((l) => l.join("."));

function globToRegex(glob: string): string {
  return glob.split("*").map((p) => p.replace(/[.\-]/g, "\\$&")).join("[^.]*");
}

/** An independent model of name matching, for differential checks. */
function modelMatches(p: DomainPattern, host: string): boolean {
  if (p.kind !== "name") throw new Error("model covers name patterns only");
  if (parseIpLiteral(host) !== null) return false;
  const body = p.labels.map(globToRegex).join("\\.");
  const prefix = p.scope === "exact"
    ? ""
    : p.scope === "subdomains"
    ? "(?:[^.]+\\.)+"
    : "(?:[^.]+\\.)*";
  return new RegExp(`^${prefix}${body}$`).test(host);
}

function checkPattern([pattern, action, host]: [string, "allow" | "deny", string]): void {
  const message = validateDomainPattern(pattern, action);
  let compiled: DomainPattern;
  try {
    compiled = compileDomainPattern(pattern, action);
  } catch (error) {
    onlyRefusals(error, [PatternError], "compileDomainPattern");
    check(message !== null, "compile threw but validate accepted");
    return;
  }
  check(message === null, `validate refused (${message}) what compile accepted`);
  const upper = compileDomainPattern(upperAscii(pattern), action);
  const h = normalizeHost(host);
  const got = matchesDomainPattern(compiled, h);
  check(matchesDomainPattern(upper, h) === got, "pattern case changed the match");
  if (compiled.kind === "name") {
    check(
      got === modelMatches(compiled, h),
      `match of ${JSON.stringify(h)} is ${got}, the model says ${!got}`,
    );
  }
  if (compiled.kind === "any") check(got === (h !== ""), "* must match every non-empty host");
}

/** `domain_pattern`. */
export const domainPatternTarget: FuzzTarget = {
  name: "domain_pattern",
  description: "compile/validate agree; matching agrees with a regex model of the grammar",
  kind: "pure",
  run(options: FuzzRunOptions): Promise<FuzzReport> {
    const input = fc.tuple(
      patternText,
      fc.constantFrom<"allow" | "deny">("allow", "deny"),
      fc.oneof(hostLabels, fc.string({ maxLength: 12 }), patternText),
    );
    return Promise.resolve(runSync("domain_pattern", input, checkPattern, options));
  },
};

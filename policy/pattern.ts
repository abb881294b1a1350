/**
 * The domain pattern grammar of allow and deny rules, and matching a
 * normalized host against a compiled pattern.
 *
 * | pattern | matches |
 * |---|---|
 * | `example.com` | exactly `example.com` |
 * | `*.example.com` | strict subdomains at any depth (`a.example.com`, `a.b.example.com`), not `example.com` |
 * | `**.example.com` | `example.com` and every subdomain |
 * | `region*.example.com` | `*` inside a label matches within that label only (`region1.example.com`) |
 * | `*` | every host, IP literals included; allow rules only |
 * | `10.0.0.1`, `::1`, `[::1]` | that address, in any spelling (`0xa.1` is `10.0.0.1`) |
 * | `github.com:22`, `*.example.com:8443`, `[::1]:22` | as without the port, on that port only |
 * | `tls://registry.example:8443` | as `registry.example:8443`, and that port speaks TLS (allow rules only) |
 *
 * A pattern without a port covers every port. The `tls://` marker changes
 * no decision: it tells transparent capture that a program connecting
 * directly to that host and port speaks TLS, so the connection is decided
 * like a CONNECT (the ClientHello's server name checked) rather than as a
 * plain tunnel. It needs a port (it is about one port) and an allow rule. The port is kept apart from
 * the host part (`port`) and checked after the host matched
 * ({@linkcode matchesPatternPort}), so host matching never needs to know it.
 *
 * Patterns are case-insensitive and trailing dots are ignored, like hosts.
 * Pure functions, no I/O.
 *
 * @module
 */
import { type IpAddress, parseIpLiteral } from "./address.ts";

/** The codes a {@linkcode PatternError} can carry. */
export type PatternErrorCode = "pattern";

/** A domain pattern that does not follow the grammar. */
export class PatternError extends Error {
  /** Always `"pattern"`. */
  readonly code: PatternErrorCode = "pattern";
  /** The pattern as written. */
  readonly pattern: string;
  constructor(pattern: string, message: string, options?: { cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = "PatternError";
    this.pattern = pattern;
  }
}

/** Which hosts a name pattern covers, relative to its labels. */
export type NameScope = "exact" | "subdomains" | "apex_and_subdomains";

/** What every compiled pattern carries. */
interface PatternBase {
  /** The pattern as written. */
  readonly text: string;
  /** The normalized form (lower case, no trailing dots, no brackets). */
  readonly normalized: string;
  /** The rule kind it was compiled for. */
  readonly action: "allow" | "deny";
  /** True when the pattern has no wildcard: it names exactly one host. */
  readonly exact: boolean;
  /** The one port the rule is for (`host:PORT`), or null: every port. */
  readonly port?: number | null;
  /** True for a `tls://host:PORT` rule: that port speaks TLS (see the module doc). */
  readonly tls?: boolean;
}

/** A compiled domain pattern; match it with {@linkcode matchesDomainPattern}. */
export type DomainPattern =
  | (PatternBase & { readonly kind: "any" })
  | (PatternBase & { readonly kind: "address"; readonly address: IpAddress })
  | (PatternBase & {
    readonly kind: "name";
    readonly scope: NameScope;
    /** The labels after any leading `*.` or `**.`; may contain `*` globs. */
    readonly labels: readonly string[];
  });

const LABEL = /^[a-z0-9_*-]+$/;

function lowerAscii(text: string): string {
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

const GLOBAL_DENY = "a global wildcard is not allowed in a deny rule";

/** Why `[*]`-like patterns are refused: a global wildcard (deny) or a misplaced one (allow). */
function bracketedWildcard(action: "allow" | "deny"): string {
  return action === "deny"
    ? GLOBAL_DENY
    : 'brackets hold an IPv6 address, not a wildcard: use "*" to allow every host';
}

/** The compiled form of a pattern that names one IP address. */
function addressPattern(
  pattern: string,
  action: "allow" | "deny",
  address: IpAddress,
): DomainPattern {
  return {
    text: pattern,
    normalized: address.canonical,
    action,
    exact: true,
    kind: "address",
    address,
  };
}

const PORT_SUFFIX = /^(.*[^:]):([0-9]{1,5})$/;

/** The marker of a rule whose port speaks TLS (`tls://host:PORT`). */
const TLS_MARKER = "tls://";

/**
 * A name pattern already in normal form: lower case, no port, no trailing
 * dot, labels of 1-63 letters, digits, `_` or `-`, no glob inside a label,
 * an optional leading `*.` or `**.`, and a last label that does not start
 * with a digit (that would be read as an IPv4 address).
 */
const PLAIN_NAME = /^(\*\*?\.)?((?:[a-z0-9_-]{1,63}\.)*[a-z_-][a-z0-9_-]{0,62})$/;

/**
 * Whether `pattern` is a valid name pattern already in normal form (see
 * {@linkcode plainNameParts}), without building its parts.
 *
 * @example
 * ```ts
 * isPlainNamePattern("**.example.com", "allow"); // true
 * isPlainNamePattern("Example.com", "allow"); // false (valid, but not in normal form)
 * ```
 */
export function isPlainNamePattern(pattern: string, action: string): boolean {
  if ((action !== "allow" && action !== "deny") || !PLAIN_NAME.test(pattern)) return false;
  const prefix = pattern.charCodeAt(0) !== 0x2a ? 0 : pattern.charCodeAt(1) === 0x2a ? 3 : 2;
  return pattern.length - prefix <= 253;
}

/** The scope and labels (joined with dots) of a plain name pattern. */
export interface PlainNameParts {
  /** Which hosts it covers relative to `key`. */
  readonly scope: NameScope;
  /** Its labels joined with dots (the pattern without `*.` or `**.`). */
  readonly key: string;
}

/**
 * The parts of a valid name pattern already in normal form (lower case, no
 * port, no trailing dot, no glob inside a label), or null for any other
 * pattern. Lets a policy index a plain name without compiling it.
 *
 * @example
 * ```ts
 * plainNameParts("**.example.com", "allow"); // { scope: "apex_and_subdomains", key: "example.com" }
 * plainNameParts("Example.com", "allow"); // null
 * ```
 */
export function plainNameParts(pattern: string, action: string): PlainNameParts | null {
  if (!isPlainNamePattern(pattern, action)) return null;
  const prefix = pattern.startsWith("**.") ? 3 : pattern.startsWith("*.") ? 2 : 0;
  return {
    scope: prefix === 0 ? "exact" : prefix === 2 ? "subdomains" : "apex_and_subdomains",
    key: prefix === 0 ? pattern : pattern.slice(prefix),
  };
}

/** Compiles or explains why not; the one implementation behind both exports. */
function compile(pattern: string, action: "allow" | "deny"): DomainPattern | string {
  // Most rules of a large allowlist are plain names: compile them without the
  // general path's dozen scans and copies (the result is the same object).
  const plain = (action === "allow" || action === "deny") ? PLAIN_NAME.exec(pattern) : null;
  if (plain !== null && plain[2].length <= 253) {
    const scope: NameScope = plain[1] === undefined
      ? "exact"
      : plain[1] === "*."
      ? "subdomains"
      : "apex_and_subdomains";
    return {
      text: pattern,
      normalized: pattern,
      action,
      exact: scope === "exact",
      kind: "name",
      scope,
      labels: plain[2].split("."),
      port: null,
    };
  }
  const trimmed = pattern.trim();
  if (lowerAscii(trimmed.slice(0, TLS_MARKER.length)) === TLS_MARKER) {
    return compileTls(pattern, trimmed.slice(TLS_MARKER.length), action);
  }
  if (trimmed.includes("://")) {
    return 'a pattern is a host with an optional port; the only marker is "tls://" (e.g. "tls://registry.example:8443")';
  }
  // `host:PORT` and `[v6]:PORT`; a bare IPv6 address has several colons and no port.
  const split = PORT_SUFFIX.exec(trimmed);
  const hostPart = split === null ? null : split[1];
  if (
    split !== null && hostPart !== null &&
    (hostPart.endsWith("]") || !hostPart.includes(":"))
  ) {
    const port = Number(split[2]);
    if (!(port >= 1 && port <= 65535) || split[2].startsWith("0")) {
      return `the port "${split[2]}" is not a port number (1-65535)`;
    }
    const host = compileHost(pattern, hostPart, action);
    if (typeof host === "string") return host;
    const normalized = host.kind === "address" && host.address.family === 6
      ? `[${host.normalized}]:${port}`
      : `${host.normalized}:${port}`;
    return { ...host, normalized, port };
  }
  const host = compileHost(pattern, trimmed, action);
  return typeof host === "string" ? host : { ...host, port: null };
}

/** Compiles `tls://HOST:PORT` (`rest` is what follows the marker). */
function compileTls(
  pattern: string,
  rest: string,
  action: "allow" | "deny",
): DomainPattern | string {
  if (action === "deny") {
    return 'a deny rule refuses the host whatever it speaks: write it without "tls://"';
  }
  if (rest.includes("://")) return 'write "tls://" once, before the host';
  const inner = compile(rest, action);
  if (typeof inner === "string") return inner;
  if (inner.port == null) {
    return `"tls://" marks one port as TLS: add the port, e.g. "${pattern.trim()}:8443"`;
  }
  return { ...inner, text: pattern, normalized: TLS_MARKER + inner.normalized, tls: true };
}

/** Compiles the host part of a pattern (no port). */
function compileHost(
  pattern: string,
  hostText: string,
  action: "allow" | "deny",
): DomainPattern | string {
  if (action !== "allow" && action !== "deny") return `unknown action "${action}"`;
  const trimmed = hostText.trim();
  if (trimmed === "") return "a pattern cannot be empty";
  if (/\s/.test(trimmed)) return "a pattern cannot contain whitespace";
  const text = lowerAscii(trimmed).replace(/\.+$/, "");
  if (text === "") return "a pattern cannot be only dots";

  if (text === "*") {
    if (action === "deny") return GLOBAL_DENY;
    return { text: pattern, normalized: "*", action, exact: false, kind: "any" };
  }

  if (text.includes("[") || text.includes("]")) {
    const inner = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : null;
    if (inner !== null && inner.includes("*")) {
      return bracketedWildcard(action);
    }
    if (inner === null || inner.includes("[") || inner.includes("]")) {
      if (/^\*\*?\.\[\*\]$/.test(text)) {
        return bracketedWildcard(action);
      }
      return 'brackets are only allowed around a whole IPv6 address, e.g. "[::1]"';
    }
    const address = parseIpLiteral(inner);
    if (address === null || address.family !== 6) {
      return `"${inner}" is not an IPv6 address: brackets are only allowed around one, e.g. "[::1]"`;
    }
    return addressPattern(pattern, action, address);
  }

  if (text.includes(":") || text.includes("%")) {
    const address = parseIpLiteral(text);
    if (address === null || address.family !== 6) {
      return 'a pattern is a domain name, an IP address or "*": ":" and "%" only appear in IPv6 addresses (a port goes after the host, "example.com:22" or "[::1]:22")';
    }
    return addressPattern(pattern, action, address);
  }

  let scope: NameScope = "exact";
  let rest = text;
  if (text.startsWith("**.")) {
    scope = "apex_and_subdomains";
    rest = text.slice(3);
  } else if (text.startsWith("*.")) {
    scope = "subdomains";
    rest = text.slice(2);
  }
  const labels = rest.split(".");
  for (const label of labels) {
    if (label === "") return "a pattern cannot contain an empty label (two dots in a row)";
    if (label.length > 63) return `the label "${label}" is longer than 63 characters`;
    if (label.includes("**")) {
      return '"**" is only allowed as the first label ("**.example.com")';
    }
    if (!LABEL.test(label)) {
      return /[^\p{ASCII}]/u.test(label)
        ? `the label "${label}" is not ASCII: write the IDNA form ("xn--…")`
        : `the label "${label}" may only contain letters, digits, "-", "_" and "*"`;
    }
  }
  const last = labels[labels.length - 1];
  if (last.includes("*")) {
    return "the last label (the top-level domain) cannot contain a wildcard";
  }
  const wildcard = scope !== "exact" || rest.includes("*");
  if (/^[0-9]/.test(last)) {
    // Looks like an IPv4 address: it must be exactly one, in dotted decimal.
    if (wildcard) {
      return "wildcards do not apply to IP addresses: write one exact address per rule";
    }
    const address = parseIpLiteral(rest);
    if (address === null) {
      return `"${rest}" is neither an IPv4 address nor a domain name (a top-level domain never starts with a digit)`;
    }
    if (address.canonical !== rest) {
      return `the IPv4 address "${rest}" is not in dotted-decimal form: write "${address.canonical}"`;
    }
    return addressPattern(pattern, action, address);
  }
  if (rest.length > 253) return "a domain name is at most 253 characters long";
  return { text: pattern, normalized: text, action, exact: !wildcard, kind: "name", scope, labels };
}

/**
 * Checks a pattern against the grammar. Returns why it is not a valid
 * `action` rule (a lower-case phrase to put after `Invalid pattern "X": `),
 * or null when it is fine.
 *
 * @example
 * ```ts
 * validateDomainPattern("*", "deny"); // "a global wildcard is not allowed in a deny rule"
 * validateDomainPattern("**.example.com", "deny"); // null
 * ```
 */
export function validateDomainPattern(pattern: string, action: "allow" | "deny"): string | null {
  if (isPlainNamePattern(pattern, action)) return null; // Checked without building the compiled form.
  const result = compile(pattern, action);
  return typeof result === "string" ? result : null;
}

/**
 * Compiles a pattern for matching. Throws {@linkcode PatternError} when it
 * does not follow the grammar (see {@linkcode validateDomainPattern}).
 *
 * @example
 * ```ts
 * const p = compileDomainPattern("*.example.com", "allow");
 * matchesDomainPattern(p, "api.example.com"); // true
 * matchesDomainPattern(p, "example.com"); // false
 * ```
 */
export function compileDomainPattern(pattern: string, action: "allow" | "deny"): DomainPattern {
  const result = compile(pattern, action);
  if (typeof result === "string") {
    throw new PatternError(pattern, `Invalid pattern "${pattern}": ${result}`);
  }
  return result;
}

/**
 * Whether a pattern's port (if it has one) admits `port`. A pattern without
 * a port admits every port; one with a port admits only that one, and no
 * unknown port (null).
 *
 * @example
 * ```ts
 * matchesPatternPort(compileDomainPattern("github.com:22", "allow"), 443); // false
 * ```
 */
export function matchesPatternPort(pattern: DomainPattern, port: number | null): boolean {
  return pattern.port == null || pattern.port === port;
}

/** `*` matches any run of characters within one label. */
function globMatch(glob: string, text: string): boolean {
  if (!glob.includes("*")) return glob === text;
  const pieces = glob.split("*");
  const first = pieces[0];
  const last = pieces[pieces.length - 1];
  if (text.length < first.length + last.length) return false;
  if (!text.startsWith(first) || !text.endsWith(last)) return false;
  let position = first.length;
  const end = text.length - last.length;
  for (const piece of pieces.slice(1, -1)) {
    const found = text.indexOf(piece, position);
    if (found === -1 || found + piece.length > end) return false;
    position = found + piece.length;
  }
  return true;
}

/** The IPv4 bytes of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`); other addresses unchanged. */
function unmapIpv4(bytes: Uint8Array): Uint8Array {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return bytes;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return bytes;
  return bytes.subarray(12);
}

/** Options for {@linkcode matchesDomainPattern}. */
export interface MatchOptions {
  /**
   * The host parsed as an IP literal, when the caller already did it
   * (`null`: not one). Saves a parse per rule.
   */
  readonly address?: IpAddress | null;
}

/**
 * Whether a normalized host (see `normalizeHost`) matches a compiled
 * pattern. An IP-literal host matches only `*` and address patterns, by
 * address (every spelling of `127.0.0.1` matches `127.0.0.1`; a pattern
 * with a zone id matches only that zone; for a deny rule an IPv4-mapped
 * `::ffff:a.b.c.d` is its IPv4 address); a name matches only name patterns.
 *
 * @example
 * ```ts
 * matchesDomainPattern(compileDomainPattern("**.example.com", "deny"), "example.com"); // true
 * ```
 */
export function matchesDomainPattern(
  pattern: DomainPattern,
  host: string,
  options: MatchOptions = {},
): boolean {
  if (pattern.kind === "any") return host !== "";
  const address = options.address !== undefined ? options.address : parseIpLiteral(host);
  if (pattern.kind === "address") {
    if (address === null) return false;
    if (pattern.address.zone !== null && pattern.address.zone !== address.zone) return false;
    // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) reaches the IPv4 address through
    // connect(): a deny rule on either spelling must stop both, or `deny 10.0.0.1` is
    // bypassed by `[::ffff:10.0.0.1]`. Allow rules stay exact (strictest wins).
    const deny = pattern.action === "deny";
    const want = deny ? unmapIpv4(pattern.address.bytes) : pattern.address.bytes;
    const got = deny ? unmapIpv4(address.bytes) : address.bytes;
    return want.length === got.length && want.every((byte, i) => byte === got[i]);
  }
  if (address !== null) return false;
  const hostLabels = host.split(".");
  const wanted = pattern.labels;
  const extra = hostLabels.length - wanted.length;
  if (pattern.scope === "exact" && extra !== 0) return false;
  if (pattern.scope === "subdomains" && extra < 1) return false;
  if (pattern.scope === "apex_and_subdomains" && extra < 0) return false;
  if (hostLabels.slice(0, extra).some((label) => label === "")) return false;
  for (let i = 0; i < wanted.length; i++) {
    if (!globMatch(wanted[i], hostLabels[extra + i])) return false;
  }
  return true;
}

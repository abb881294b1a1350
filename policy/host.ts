/**
 * Host text handling before any policy check: split `HOST[:PORT]` (including
 * `[v6]:443` and bare IPv6), and normalize a host so that every spelling of
 * the same name compares equal. Pure functions, no I/O.
 *
 * @module
 */

/** A host and, when one was given, its port. */
export interface HostPort {
  /** The host without brackets or port; otherwise as written (trimmed). */
  readonly host: string;
  /** The port (1-65535), or null when none was given. */
  readonly port: number | null;
}

const PORT = /^[0-9]{1,5}$/;

function parsePort(text: string): number | null {
  if (!PORT.test(text)) return null;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : null;
}

/**
 * Splits `HOST[:PORT]`. Handles `[v6]`, `[v6]:443`, a bare IPv6 address
 * (more than one colon, never a port) and `name:port`.
 *
 * When the text after the colon is not a port (1-65535), nothing is split
 * off: the whole input comes back as the host, which the policy then refuses
 * as an invalid host name. That keeps a malformed target from being quietly
 * reinterpreted as a different, valid one.
 *
 * @example
 * ```ts
 * splitHostPort("[::1]:443"); // { host: "::1", port: 443 }
 * splitHostPort("example.com"); // { host: "example.com", port: null }
 * splitHostPort("2001:db8::1"); // { host: "2001:db8::1", port: null }
 * ```
 */
export function splitHostPort(input: string): HostPort {
  const text = input.trim();
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1) return { host: text, port: null };
    const inner = text.slice(1, close);
    const after = text.slice(close + 1);
    if (inner.includes("[")) return { host: text, port: null };
    if (after === "") return { host: inner, port: null };
    if (after.startsWith(":")) {
      const port = parsePort(after.slice(1));
      if (port !== null) return { host: inner, port };
    }
    return { host: text, port: null };
  }
  const first = text.indexOf(":");
  if (first === -1 || first !== text.lastIndexOf(":")) {
    // No colon, or several: a bare IPv6 address (or garbage) with no port.
    return { host: text, port: null };
  }
  const port = parsePort(text.slice(first + 1));
  if (port === null) return { host: text, port: null };
  return { host: text.slice(0, first), port };
}

/** Lower-cases ASCII letters only; other characters are left as they are. */
function lowerAscii(text: string): string {
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

/**
 * Normalizes a host for policy checks: trim, drop brackets and port,
 * lower-case ASCII, strip trailing dots. Idempotent:
 * `normalizeHost(normalizeHost(x)) === normalizeHost(x)`.
 *
 * It never throws and never validates; a malformed host stays malformed
 * (and the policy refuses it).
 *
 * @example
 * ```ts
 * normalizeHost(" ExAmPlE.CoM. :443"); // "example.com"
 * normalizeHost("[::1]:443"); // "::1"
 * ```
 */
export function normalizeHost(input: string): string {
  let host = lowerAscii(splitHostPort(input).host).trim();
  // A second pass would split "a.:1" only after the dots are gone, so strip
  // dots and re-split until stable; this is what makes the function idempotent.
  for (;;) {
    const stripped = host.replace(/\.+$/, "");
    const again = splitHostPort(stripped).host.trim();
    if (again === host) return host;
    host = again;
  }
}

const LOG_SAFE = /^[a-z0-9._:\[\]\/-]*$/i;

/**
 * A host as it may appear in a log line, a terminal or a CI annotation: a
 * valid name or address (or `unix:/a/path`, as `x-unix-socket` requests
 * are logged) comes back unchanged; anything else (a SOCKS5 "domain" such
 * as `$(sh<x)`, control characters, spaces, non-ASCII) has every byte
 * outside `[A-Za-z0-9._:[]/-]` percent-encoded, so the text a
 * client sent is never written raw where a shell, a terminal or a log
 * reader could act on it.
 *
 * @example
 * ```ts
 * logSafeHost("example.com"); // "example.com"
 * logSafeHost("$(sh<x)"); // "%24%28sh%3Cx%29"
 * ```
 */
export function logSafeHost(host: string): string {
  if (LOG_SAFE.test(host)) return host;
  let out = "";
  for (const byte of new TextEncoder().encode(host)) {
    const char = String.fromCharCode(byte);
    out += byte < 0x80 && LOG_SAFE.test(char)
      ? char
      : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

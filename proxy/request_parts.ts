/**
 * The parts of an HTTP request the proxy reads the same way on every door:
 * plain HTTP (absolute-form and CONNECT) and requests inside a MITM tunnel.
 * One authority parser, one absolute-form target parser and, from the
 * policy floor, one host equality ({@linkcode sameHost}), so that the two
 * sides cannot disagree about which host a request names.
 *
 * @module
 */
import { parseIpLiteral } from "../policy/address.ts";
export { sameHost } from "../policy/decide_request.ts";

/** A request the proxy refuses as malformed (400). */
export class BadRequest extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadRequest";
  }
}

/** A request target or Host value split into host and port. */
export interface Authority {
  /** Host as written, without brackets. */
  readonly host: string;
  /** Port, or null when none was written. */
  readonly port: number | null;
}

const NAME_CHARS = /^[A-Za-z0-9._-]+$/;

/**
 * Parses `host[:port]` strictly: a bracketed IPv6 literal or a name/IPv4 of
 * letters, digits, `.`, `-`, `_`. No userinfo, no percent-encoding, no
 * empty port, no port 0. Throws {@linkcode BadRequest} on anything else.
 *
 * @example
 * ```ts
 * parseAuthority("[::1]:8080"); // { host: "::1", port: 8080 }
 * ```
 */
export function parseAuthority(text: string): Authority {
  let host: string;
  let rest: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1) throw new BadRequest(`Invalid authority "${text}"`);
    host = text.slice(1, close);
    rest = text.slice(close + 1);
    const ip = parseIpLiteral(host);
    if (ip === null || ip.family !== 6) throw new BadRequest(`Invalid IPv6 literal "${host}"`);
  } else {
    const colon = text.indexOf(":");
    host = colon === -1 ? text : text.slice(0, colon);
    rest = colon === -1 ? "" : text.slice(colon);
    if (!NAME_CHARS.test(host)) throw new BadRequest(`Invalid host "${host}"`);
  }
  if (rest === "") return { host, port: null };
  if (!/^:[0-9]{1,5}$/.test(rest)) throw new BadRequest(`Invalid port in "${text}"`);
  const port = Number(rest.slice(1));
  if (port < 1 || port > 65535) throw new BadRequest(`Invalid port in "${text}"`);
  return { host, port };
}

/** An absolute-form request target, split. */
export interface AbsoluteTarget {
  /** The authority as written. */
  readonly authority: string;
  /** The host, without brackets. */
  readonly host: string;
  /** The port (the scheme's default when none is written). */
  readonly port: number;
  /** Origin-form path and query (`/` when empty). */
  readonly path: string;
}

const DEFAULT_PORTS = { http: 80, https: 443 } as const;

/**
 * Parses an absolute-form request target of `scheme` (`http://host/path` on
 * the plain proxy, `https://host/path` inside a MITM tunnel). Refuses
 * origin-form, other schemes, fragments and credentials with
 * {@linkcode BadRequest}.
 *
 * @example
 * ```ts
 * parseAbsoluteTarget("http://example.com/a?b", "http"); // { authority: "example.com", host: "example.com", port: 80, path: "/a?b" }
 * ```
 */
export function parseAbsoluteTarget(target: string, scheme: "http" | "https"): AbsoluteTarget {
  if (target.startsWith("/") || target === "*") {
    throw new BadRequest("This is a proxy: send the request in absolute form (http://host/path)");
  }
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(target);
  if (match === null) throw new BadRequest("Invalid request target");
  if (match[1].toLowerCase() !== scheme) {
    throw new BadRequest(
      scheme === "http"
        ? `Unsupported scheme "${match[1]}": use CONNECT for https`
        : `Unsupported scheme "${match[1]}" inside a TLS tunnel`,
    );
  }
  if (target.includes("#")) throw new BadRequest("A fragment is not allowed in the request target");
  const rest = target.slice(match[0].length);
  const end = rest.search(/[/?]/);
  const authority = end === -1 ? rest : rest.slice(0, end);
  let path = end === -1 ? "/" : rest.slice(end);
  if (path.startsWith("?")) path = "/" + path;
  if (authority.includes("@")) {
    throw new BadRequest("Credentials in the request target are not allowed");
  }
  const parsed = parseAuthority(authority);
  return { authority, host: parsed.host, port: parsed.port ?? DEFAULT_PORTS[scheme], path };
}

/**
 * Leaf certificates for MITM: one per CONNECT host, issued on demand by the
 * local CA and kept in a bounded LRU cache.
 *
 * Every leaf carries the host as its only subjectAltName (a DNS name, or an
 * IP address for IP literals), EKU serverAuth, a one-day validity backdated
 * five minutes (clock skew) and a random serial.
 *
 * Speed trade-off: all leaves of one issuer share one EC P-256 key pair made
 * when the issuer is created, so issuing a leaf costs one CA signature
 * (about a millisecond) instead of a key generation. The shared key lives only
 * in the proxy's memory, next to the CA key that could mint any leaf anyway,
 * so sharing it gives nothing away. ECDSA also keeps the TLS handshake cheap.
 *
 * @module
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { isIP } from "node:net";
import { type CertificateAuthority, signCertificate } from "./ca.ts";

/** A leaf certificate and its key, ready for a TLS server. */
export interface LeafCertificate {
  /** The host the certificate is for (normalized: lower case, no brackets or zone). */
  readonly host: string;
  /** The leaf certificate, PEM. */
  readonly certPem: string;
  /** The leaf certificate followed by the CA certificate, PEM (what the TLS server sends). */
  readonly chainPem: string;
  /** The leaf's private key, PKCS#8 PEM (shared by every leaf of one issuer). */
  readonly keyPem: string;
  /** End of validity. */
  readonly notAfter: Date;
}

/** Options for {@linkcode createLeafIssuer}. */
export interface LeafIssuerOptions {
  /** Most certificates kept; the least recently used goes first (default 1024). */
  maxEntries?: number;
  /** Validity of a leaf in milliseconds (default one day). */
  validityMs?: number;
  /** How far `notBefore` lies in the past, in milliseconds (default five minutes). */
  backdateMs?: number;
  /** The clock, for tests (default `Date.now`). */
  now?: () => number;
}

/** Issues and caches leaf certificates for one CA. */
export interface LeafIssuer {
  /**
   * The certificate for `host` (a DNS name or an IP literal), from the cache
   * when it holds one valid for at least another hour, otherwise newly issued.
   * Throws a `TypeError` for a host that cannot be a certificate name.
   */
  certificateFor(host: string): LeafCertificate;
  /** How many certificates are cached. */
  readonly size: number;
  /** How many certificates were issued (cache misses), for benchmarks and tests. */
  readonly issued: number;
}

const DAY_MS = 86_400_000;
const REISSUE_MARGIN_MS = 60 * 60 * 1000;

/**
 * Creates a leaf issuer for `ca`.
 *
 * @example
 * ```ts
 * const issuer = createLeafIssuer(await loadCa(dir));
 * const leaf = issuer.certificateFor("api.example.com");
 * new tls.TLSSocket(socket, { isServer: true, cert: leaf.chainPem, key: leaf.keyPem });
 * ```
 */
export function createLeafIssuer(
  ca: CertificateAuthority,
  options: LeafIssuerOptions = {},
): LeafIssuer {
  const maxEntries = Math.max(1, options.maxEntries ?? 1024);
  const validityMs = options.validityMs ?? DAY_MS;
  const backdateMs = options.backdateMs ?? 5 * 60 * 1000;
  const now = options.now ?? Date.now;
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  const cache = new Map<string, LeafCertificate>();
  let issued = 0;

  return {
    certificateFor(host: string): LeafCertificate {
      const name = certificateName(host);
      const at = now();
      const cached = cache.get(name.host);
      if (cached !== undefined) {
        cache.delete(name.host);
        if (cached.notAfter.getTime() - at > REISSUE_MARGIN_MS) {
          cache.set(name.host, cached); // most recently used goes last
          return cached;
        }
      }
      const leaf = issueLeaf(ca, name, {
        publicKey,
        keyPem,
        notBefore: at - backdateMs,
        notAfter: at + validityMs,
      });
      issued++;
      cache.set(name.host, leaf);
      while (cache.size > maxEntries) {
        const oldest = cache.keys().next().value as string;
        cache.delete(oldest);
      }
      return leaf;
    },
    get size() {
      return cache.size;
    },
    get issued() {
      return issued;
    },
  };
}

function issueLeaf(
  ca: CertificateAuthority,
  name: { host: string; ip: boolean },
  key: { publicKey: KeyObject; keyPem: string; notBefore: number; notAfter: number },
): LeafCertificate {
  const altName = name.ip ? { type: 7, ip: name.host } : { type: 2, value: name.host };
  const certPem = signCertificate(ca, {
    publicKey: key.publicKey,
    // The CN is informational (clients match the SAN); its upper bound is 64 characters.
    subject: { commonName: name.host.length <= 64 ? name.host : "sandbox MITM leaf" },
    notBefore: new Date(key.notBefore),
    notAfter: new Date(key.notAfter),
    extensions: [
      { name: "basicConstraints", cA: false, critical: true },
      { name: "keyUsage", digitalSignature: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [altName] },
    ],
  });
  return {
    host: name.host,
    certPem,
    chainPem: certPem + ca.certPem,
    keyPem: key.keyPem,
    notAfter: new Date(key.notAfter),
  };
}

const DNS_NAME =
  /^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Normalizes a CONNECT host into a certificate name, or throws a TypeError. */
function certificateName(host: string): { host: string; ip: boolean } {
  let value = host.trim().toLowerCase();
  if (value.startsWith("[") && value.endsWith("]")) value = value.slice(1, -1);
  const zone = value.indexOf("%");
  if (zone !== -1 && isIP(value.slice(0, zone)) === 6) value = value.slice(0, zone);
  while (value.endsWith(".") && isIP(value) === 0) value = value.slice(0, -1);
  if (isIP(value) !== 0) return { host: value, ip: true };
  if (!DNS_NAME.test(value)) {
    throw new TypeError(`Cannot issue a certificate for "${host}": not a DNS name or IP address`);
  }
  return { host: value, ip: false };
}

/**
 * The local certificate authority for limited-mode TLS inspection (MITM).
 *
 * - {@linkcode initCa} creates the CA once (`sandbox init`): an RSA 2048 key
 *   (`ca-key.pem`, mode 0600) and a self-signed certificate (`ca.pem`, 0644),
 *   each written atomically and never over an existing file.
 * - {@linkcode loadCa} reads a CA (the one `init` made, or one the user
 *   supplies with `mitm_ca` in a profile) and refuses a key that is a symlink,
 *   readable by group or others, or owned by someone else.
 * - {@linkcode signCertificate} is the one X.509 builder: node-forge encodes
 *   the DER, `node:crypto` generates keys and signs (node-forge's pure-JS RSA
 *   is tens of milliseconds per operation; `node:crypto` is about one).
 *
 * @module
 */
import forge from "node-forge";
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign as cryptoSign,
  X509Certificate,
} from "node:crypto";
import { Buffer } from "node:buffer";
import { rootCertificates } from "node:tls";
import { errorMessage, SandboxError } from "../errors.ts";

/** File name of the CA certificate inside a CA directory. */
export const CA_CERT_FILE = "ca.pem";
/** File name of the CA private key inside a CA directory. */
export const CA_KEY_FILE = "ca-key.pem";

/** A loaded certificate authority, ready to sign leaf certificates. */
export interface CertificateAuthority {
  /** The CA certificate in PEM form (what clients must trust). */
  readonly certPem: string;
  /** Where the certificate was read from, or null when built in memory. */
  readonly certPath: string | null;
  /** Where the key was read from, or null when built in memory. */
  readonly keyPath: string | null;
  /** The CA's private key. */
  readonly privateKey: KeyObject;
  /** The DER encoding of the CA's subject name (the issuer of every leaf). */
  readonly subjectDer: Uint8Array;
  /** The CA's subject key identifier, or null when its certificate has none. */
  readonly keyIdentifier: Uint8Array | null;
  /** SHA-256 fingerprint of the certificate, `AB:CD:…`. */
  readonly fingerprint256: string;
  /** When the CA certificate expires. */
  readonly notAfter: Date;
}

/** The paths of a CA's certificate and key files. */
export interface CaFiles {
  /** Path of the PEM certificate. */
  readonly cert: string;
  /** Path of the PEM private key. */
  readonly key: string;
}

/** What {@linkcode initCa} did. */
export interface InitCaResult {
  /** True when this call created the CA; false when one was already there (left untouched). */
  readonly created: boolean;
  /** The CA, loaded and checked. */
  readonly ca: CertificateAuthority;
}

/** Options for {@linkcode initCa}. */
export interface InitCaOptions {
  /** Common name of a new CA certificate. */
  commonName?: string;
  /** Validity of a new CA certificate in days (default 3650). */
  validityDays?: number;
  /** The current time, for tests. */
  now?: Date;
}

/** Options for {@linkcode defaultCaDir}. */
export interface DefaultCaDirOptions {
  /** Environment to read `XDG_CONFIG_HOME` and `HOME` from; defaults to the process environment. */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * The default CA directory: `$XDG_CONFIG_HOME/sandbox/ca`, else
 * `$HOME/.config/sandbox/ca`.
 *
 * @example
 * ```ts
 * defaultCaDir({ env: { HOME: "/home/a" } }); // "/home/a/.config/sandbox/ca"
 * ```
 */
export function defaultCaDir(options: DefaultCaDirOptions = {}): string {
  const env = options.env ?? Deno.env.toObject();
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg !== undefined && xdg.startsWith("/")) return `${trimSlash(xdg)}/sandbox/ca`;
  const home = env.HOME;
  if (home !== undefined && home.startsWith("/")) return `${trimSlash(home)}/.config/sandbox/ca`;
  throw new SandboxError(
    "ca_error",
    "Cannot find the user's config directory for the MITM CA: neither XDG_CONFIG_HOME nor HOME is an absolute path; pass --ca-dir DIR",
  );
}

/** The certificate and key paths of the CA in `dir`. */
export function caFilesIn(dir: string): CaFiles {
  const base = trimSlash(dir);
  return { cert: `${base}/${CA_CERT_FILE}`, key: `${base}/${CA_KEY_FILE}` };
}

/**
 * Creates the CA in `dir` unless one is already there. The key is written
 * first, then the certificate, each through a new temporary file (O_EXCL,
 * fsync) that is hard-linked into place, which fails instead of replacing an
 * existing file; then the directory is fsynced. A second call leaves the
 * first CA's bytes and times untouched and returns `created: false`.
 *
 * @example
 * ```ts
 * const { created, ca } = await initCa("/home/a/.config/sandbox/ca");
 * console.log(created ? "created" : "already there", ca.fingerprint256);
 * ```
 */
export async function initCa(dir: string, options: InitCaOptions = {}): Promise<InitCaResult> {
  const files = caFilesIn(dir);
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new SandboxError(
      "ca_error",
      `Cannot create the CA directory "${dir}": ${errorMessage(error)}`,
      {
        cause: error,
      },
    );
  }
  const keyThere = await exists(files.key);
  const certThere = await exists(files.cert);
  if (keyThere && certThere) return { created: false, ca: await loadCa(files) };
  if (keyThere !== certThere) {
    const [present, missing] = keyThere ? [files.key, files.cert] : [files.cert, files.key];
    throw new SandboxError(
      "ca_error",
      `Incomplete MITM CA in "${dir}": "${present}" exists but "${missing}" does not; restore the missing file or remove "${present}" and run "sandbox init" again`,
    );
  }

  const now = options.now ?? new Date();
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const commonName = options.commonName ?? "sandbox local MITM CA";
  const certPem = signCertificate({ privateKey, subjectDer: null, keyIdentifier: null }, {
    publicKey,
    subject: { commonName, organization: "sandbox" },
    notBefore: new Date(now.getTime() - 60 * 60 * 1000),
    notAfter: new Date(now.getTime() + (options.validityDays ?? 3650) * 86_400_000),
    extensions: [
      { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    ],
    subjectKeyIdentifier: true,
  });
  const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  const encoder = new TextEncoder();
  // Key first: a crash between the two links leaves a key without a
  // certificate, which the next init reports instead of silently pairing.
  const keyCreated = await writeNewFileAtomic(files.key, encoder.encode(keyPem), 0o600);
  if (!keyCreated) {
    // Someone else's init won the race; theirs is the CA.
    return { created: false, ca: await loadCa(files) };
  }
  const certCreated = await writeNewFileAtomic(files.cert, encoder.encode(certPem), 0o644);
  if (!certCreated) {
    throw new SandboxError(
      "ca_error",
      `Another process wrote "${files.cert}" while this one wrote "${files.key}": remove both and run "sandbox init" again`,
    );
  }
  await syncDir(dir);
  return { created: true, ca: await loadCa(files) };
}

/**
 * Loads a CA: a directory made by {@linkcode initCa}, or explicit certificate
 * and key paths (a user-supplied `mitm_ca`). Refuses, with a
 * {@linkcode SandboxError} of code `ca_error` saying what to do, a key that is
 * a symlink, not a regular file, readable or writable by group or others, or
 * not owned by the current user; a certificate that is not a CA; and a key
 * that does not match the certificate.
 *
 * @example
 * ```ts
 * const ca = await loadCa("/home/a/.config/sandbox/ca");
 * const own = await loadCa({ cert: "/etc/corp/ca.pem", key: "/etc/corp/ca-key.pem" });
 * ```
 */
export async function loadCa(source: string | CaFiles): Promise<CertificateAuthority> {
  const files = typeof source === "string" ? caFilesIn(source) : source;
  const keyPem = await readPrivateKeyFile(files.key);
  let certPem: string;
  try {
    certPem = await Deno.readTextFile(files.cert);
  } catch (error) {
    throw new SandboxError("ca_error", missingMessage(files.cert, error), { cause: error });
  }
  return caFromPem(certPem, keyPem, { certPath: files.cert, keyPath: files.key });
}

/** Where a PEM pair came from, for messages. */
export interface CaFromPemOptions {
  /** Path of the certificate, for messages and {@linkcode CertificateAuthority.certPath}. */
  certPath?: string | null;
  /** Path of the key, for messages and {@linkcode CertificateAuthority.keyPath}. */
  keyPath?: string | null;
}

/**
 * Builds a {@linkcode CertificateAuthority} from PEM text (no file checks):
 * the certificate must be a CA certificate whose public key matches the key.
 */
export function caFromPem(
  certPem: string,
  keyPem: string,
  options: CaFromPemOptions = {},
): CertificateAuthority {
  const certName = options.certPath ?? "the CA certificate";
  const keyName = options.keyPath ?? "the CA key";
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
  } catch (error) {
    throw new SandboxError(
      "ca_error",
      `Cannot read "${certName}": not a PEM certificate: ${errorMessage(error)}`,
      {
        cause: error,
      },
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch (error) {
    throw new SandboxError(
      "ca_error",
      `Cannot read "${keyName}": not an unencrypted PEM private key: ${errorMessage(error)}`,
      { cause: error },
    );
  }
  if (!x509.ca) {
    throw new SandboxError(
      "ca_error",
      `"${certName}" is not a CA certificate (basicConstraints CA:TRUE is missing): use a CA certificate or run "sandbox init"`,
    );
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new SandboxError(
      "ca_error",
      `"${keyName}" does not belong to "${certName}": use the matching key`,
    );
  }
  signatureAlgorithm(privateKey, keyName); // refuses key types we cannot sign with
  const der = new Uint8Array(x509.raw);
  const { subjectDer, keyIdentifier } = subjectAndKeyId(der);
  return {
    certPem: x509.toString(),
    certPath: options.certPath ?? null,
    keyPath: options.keyPath ?? null,
    privateKey,
    subjectDer,
    keyIdentifier,
    fingerprint256: x509.fingerprint256,
    notAfter: new Date(x509.validTo),
  };
}

/** Where Linux distributions and macOS keep the system's PEM bundle, most common first. */
export const SYSTEM_CA_BUNDLE_PATHS: readonly string[] = Object.freeze([
  "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Arch, Gentoo, Alpine (ca-certificates)
  "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // Fedora, RHEL 7+
  "/etc/pki/tls/certs/ca-bundle.crt", // Fedora, RHEL, CentOS (older path)
  "/etc/ssl/ca-bundle.pem", // openSUSE
  "/etc/ssl/cert.pem", // Alpine, macOS, OpenBSD
  "/usr/local/share/certs/ca-root-nss.crt", // FreeBSD
]);

/** Options for {@linkcode readSystemCaBundle}. */
export interface ReadSystemCaBundleOptions {
  /** Candidate files, first readable PEM bundle wins (default {@linkcode SYSTEM_CA_BUNDLE_PATHS}). */
  paths?: readonly string[];
}

/**
 * The system's trusted roots as PEM text: the first readable bundle of
 * `paths`, or, when there is none, the Mozilla roots built into the runtime
 * (`node:tls` `rootCertificates`).
 */
export async function readSystemCaBundle(options: ReadSystemCaBundleOptions = {}): Promise<string> {
  for (const path of options.paths ?? SYSTEM_CA_BUNDLE_PATHS) {
    try {
      const text = await Deno.readTextFile(path);
      if (text.includes("-----BEGIN CERTIFICATE-----")) return text;
    } catch {
      // Not this system's path; try the next.
    }
  }
  return rootCertificates.join("\n");
}

/** Who signs a certificate. */
export interface CertificateIssuer {
  /** The signing key. */
  readonly privateKey: KeyObject;
  /** DER of the issuer's subject name, or null for a self-signed certificate. */
  readonly subjectDer: Uint8Array | null;
  /** The issuer's key identifier for the authorityKeyIdentifier extension, or null to omit it. */
  readonly keyIdentifier: Uint8Array | null;
}

/** A certificate extension in node-forge's object form (`{ name: "keyUsage", … }`). */
export type ForgeExtension = Record<string, unknown> & { name: string };

/** What to put into a certificate. */
export interface CertificateSpec {
  /** The subject's public key (any type node:crypto exports as SPKI). */
  publicKey: KeyObject;
  /** Subject name fields. */
  subject: { commonName: string; organization?: string };
  /** Start of validity. */
  notBefore: Date;
  /** End of validity. */
  notAfter: Date;
  /** Extensions in node-forge form. */
  extensions: ForgeExtension[];
  /** Add a subjectKeyIdentifier computed from the public key. */
  subjectKeyIdentifier?: boolean;
  /** Serial number bytes; 16 random bytes when omitted. */
  serial?: Uint8Array;
}

/**
 * Builds and signs an X.509 v3 certificate; returns it as PEM. The issuer's
 * key may be RSA (sha256WithRSAEncryption) or EC P-256/P-384 (ECDSA); the
 * subject key may be of any type.
 *
 * @example
 * ```ts
 * const pem = signCertificate(ca, {
 *   publicKey, subject: { commonName: "a.test" },
 *   notBefore: new Date(Date.now() - 300_000), notAfter: new Date(Date.now() + 86_400_000),
 *   extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "a.test" }] }],
 * });
 * ```
 */
export function signCertificate(issuer: CertificateIssuer, spec: CertificateSpec): string {
  const { asn1, pki } = forgeApi();
  const C = asn1.Class;
  const T = asn1.Type;
  const algorithm = signatureAlgorithm(issuer.privateKey, "the issuer key");
  const algId = () =>
    asn1.create(C.UNIVERSAL, T.SEQUENCE, true, [
      asn1.create(C.UNIVERSAL, T.OID, false, asn1.oidToDer(algorithm.oid).getBytes()),
      ...(algorithm.nullParams ? [asn1.create(C.UNIVERSAL, T.NULL, false, "")] : []),
    ]);
  const spkiDer = new Uint8Array(spec.publicKey.export({ type: "spki", format: "der" }));
  const spki = asn1.fromDer(toBinary(spkiDer), { decodeBitStrings: false });

  // node-forge builds the subject name and the extension encodings; the
  // key-identifier extensions are given as raw values because forge can only
  // compute them for RSA keys.
  const scratch = pki.createCertificate();
  const attrs: { name: string; value: string }[] = [{
    name: "commonName",
    value: spec.subject.commonName,
  }];
  if (spec.subject.organization !== undefined) {
    attrs.push({ name: "organizationName", value: spec.subject.organization });
  }
  scratch.setSubject(attrs);
  const extensions: ForgeExtension[] = [...spec.extensions];
  if (spec.subjectKeyIdentifier === true) {
    const ski = keyIdFromSpki(spkiDer);
    extensions.push({
      name: "subjectKeyIdentifier",
      value: asn1.create(C.UNIVERSAL, T.OCTETSTRING, false, toBinary(ski)),
    });
  }
  if (issuer.keyIdentifier !== null) {
    extensions.push({
      name: "authorityKeyIdentifier",
      value: asn1.create(C.UNIVERSAL, T.SEQUENCE, true, [
        asn1.create(C.CONTEXT_SPECIFIC, 0, false, toBinary(issuer.keyIdentifier)),
      ]),
    });
  }
  scratch.setExtensions(extensions);
  const subject = pki.distinguishedNameToAsn1(scratch.subject);
  const issuerName = issuer.subjectDer === null
    ? subject
    : asn1.fromDer(toBinary(issuer.subjectDer));
  const serial = spec.serial ?? randomSerial();

  const tbs = asn1.create(C.UNIVERSAL, T.SEQUENCE, true, [
    asn1.create(C.CONTEXT_SPECIFIC, 0, true, [
      asn1.create(C.UNIVERSAL, T.INTEGER, false, asn1.integerToDer(2).getBytes()),
    ]),
    asn1.create(C.UNIVERSAL, T.INTEGER, false, toBinary(serial)),
    algId(),
    issuerName,
    asn1.create(C.UNIVERSAL, T.SEQUENCE, true, [
      timeToAsn1(spec.notBefore),
      timeToAsn1(spec.notAfter),
    ]),
    subject,
    spki,
    pki.certificateExtensionsToAsn1(scratch.extensions), // the [3] wrapper included
  ]);
  const tbsDer = fromBinary(asn1.toDer(tbs).getBytes());
  const signature = new Uint8Array(cryptoSign(algorithm.hash, tbsDer, issuer.privateKey));
  const certificate = asn1.create(C.UNIVERSAL, T.SEQUENCE, true, [
    tbs,
    algId(),
    asn1.create(C.UNIVERSAL, T.BITSTRING, false, "\x00" + toBinary(signature)),
  ]);
  return derToPem(fromBinary(asn1.toDer(certificate).getBytes()), "CERTIFICATE");
}

/** Encodes DER bytes as PEM with the given label. */
export function derToPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** 16 random bytes as a positive DER INTEGER body (top bit clear, never a leading zero byte). */
function randomSerial(): Uint8Array {
  const bytes = new Uint8Array(randomBytes(16));
  bytes[0] = (bytes[0] & 0x7f) | 0x40;
  return bytes;
}

interface SignatureAlgorithm {
  oid: string;
  hash: string;
  nullParams: boolean;
}

function signatureAlgorithm(key: KeyObject, name: string): SignatureAlgorithm {
  if (key.asymmetricKeyType === "rsa") {
    return { oid: "1.2.840.113549.1.1.11", hash: "sha256", nullParams: true };
  }
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === "prime256v1" || curve === "P-256") {
      return { oid: "1.2.840.10045.4.3.2", hash: "sha256", nullParams: false };
    }
    if (curve === "secp384r1" || curve === "P-384") {
      return { oid: "1.2.840.10045.4.3.3", hash: "sha384", nullParams: false };
    }
  }
  throw new SandboxError(
    "ca_error",
    `Unsupported key type for "${name}": "${key.asymmetricKeyType}"; use an RSA or EC P-256/P-384 key`,
  );
}

function timeToAsn1(date: Date): ForgeAsn1 {
  const { asn1 } = forgeApi();
  // RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  const year = date.getUTCFullYear();
  return year < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(
      asn1.Class.UNIVERSAL,
      asn1.Type.GENERALIZEDTIME,
      false,
      asn1.dateToGeneralizedTime(date),
    );
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING. */
function keyIdFromSpki(spkiDer: Uint8Array): Uint8Array {
  const { asn1 } = forgeApi();
  const spki = asn1.fromDer(toBinary(spkiDer), { decodeBitStrings: false });
  const bits = (spki.value as ForgeAsn1[])[1].value as string;
  return new Uint8Array(createHash("sha1").update(Buffer.from(bits.slice(1), "binary")).digest());
}

function subjectAndKeyId(
  certDer: Uint8Array,
): { subjectDer: Uint8Array; keyIdentifier: Uint8Array | null } {
  const { asn1 } = forgeApi();
  const cert = asn1.fromDer(toBinary(certDer), { decodeBitStrings: false });
  const tbs = (cert.value as ForgeAsn1[])[0].value as ForgeAsn1[];
  const offset = tbs[0].tagClass === asn1.Class.CONTEXT_SPECIFIC && tbs[0].type === 0 ? 1 : 0;
  const subjectDer = fromBinary(asn1.toDer(tbs[offset + 4]).getBytes());
  let keyIdentifier: Uint8Array | null = null;
  for (const field of tbs.slice(offset + 6)) {
    if (field.tagClass !== asn1.Class.CONTEXT_SPECIFIC || field.type !== 3) continue;
    const list = (field.value as ForgeAsn1[])[0].value as ForgeAsn1[];
    for (const ext of list) {
      const parts = ext.value as ForgeAsn1[];
      if (asn1.derToOid(parts[0].value as string) !== "2.5.29.14") continue;
      const inner = asn1.fromDer(parts[parts.length - 1].value as string);
      keyIdentifier = fromBinary(inner.value as string);
    }
  }
  return { subjectDer, keyIdentifier };
}

/**
 * Reads a private key file after checking that it is a regular file (not a
 * symlink), owned by the current user and not accessible to group or
 * others. The checks are made on the opened handle too, so the file cannot be
 * swapped between the check and the read.
 */
async function readPrivateKeyFile(path: string): Promise<string> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    throw new SandboxError("ca_error", missingMessage(path, error), { cause: error });
  }
  if (info.isSymlink) {
    throw new SandboxError(
      "ca_error",
      `Refusing the MITM CA key "${path}": it is a symbolic link; point the configuration at the real file`,
    );
  }
  if (!info.isFile) {
    throw new SandboxError(
      "ca_error",
      `Refusing the MITM CA key "${path}": it is not a regular file`,
    );
  }
  checkKeyOwnerAndMode(path, info);
  const file = await Deno.open(path, { read: true });
  try {
    const opened = await file.stat();
    if (opened.ino !== info.ino || opened.dev !== info.dev) {
      throw new SandboxError(
        "ca_error",
        `Refusing the MITM CA key "${path}": it changed while being read; try again`,
      );
    }
    checkKeyOwnerAndMode(path, opened);
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(16 * 1024);
    let total = 0;
    while (true) {
      const n = await file.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      total += n;
      if (total > 1024 * 1024) {
        throw new SandboxError(
          "ca_error",
          `Refusing the MITM CA key "${path}": larger than 1 MiB, not a key`,
        );
      }
    }
    return new TextDecoder().decode(concat(chunks));
  } finally {
    file.close();
  }
}

function checkKeyOwnerAndMode(path: string, info: Deno.FileInfo): void {
  const uid = Deno.uid();
  if (uid !== null && info.uid !== null && info.uid !== uid) {
    throw new SandboxError(
      "ca_error",
      `Refusing the MITM CA key "${path}": it is owned by uid ${info.uid}, not by you (uid ${uid}); run: chown ${uid} "${path}"`,
    );
  }
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(3, "0");
    throw new SandboxError(
      "ca_error",
      `Refusing the MITM CA key "${path}": its mode ${mode} lets group or others access it; run: chmod 600 "${path}"`,
    );
  }
}

function missingMessage(path: string, error: unknown): string {
  if (error instanceof Deno.errors.NotFound) {
    return `No MITM CA file "${path}": run "sandbox init" first (or set mitm_ca in the profile)`;
  }
  return `Cannot read "${path}": ${errorMessage(error)}`;
}

/**
 * Writes `data` to a new temporary file next to `path` (created with O_EXCL,
 * fsynced) and hard-links it to `path`. Returns false, leaving `path`
 * untouched, when `path` already exists.
 */
async function writeNewFileAtomic(path: string, data: Uint8Array, mode: number): Promise<boolean> {
  const slash = path.lastIndexOf("/");
  const dir = slash <= 0 ? "/" : path.slice(0, slash);
  const tmp = `${dir}/.${path.slice(slash + 1)}.${Buffer.from(randomBytes(6)).toString("hex")}.tmp`;
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true, mode });
    try {
      // The umask may have narrowed the mode; the certificate must end up world-readable.
      await Deno.chmod(tmp, mode);
      let offset = 0;
      while (offset < data.length) offset += await file.write(data.subarray(offset));
      await file.sync();
    } finally {
      file.close();
    }
    try {
      await Deno.link(tmp, path);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) return false;
      throw error;
    }
  } catch (error) {
    if (error instanceof SandboxError) throw error;
    throw new SandboxError("ca_error", `Cannot write "${path}": ${errorMessage(error)}`, {
      cause: error,
    });
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw new SandboxError("ca_error", `Cannot inspect "${path}": ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function trimSlash(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, "") : path;
}

/** Bytes to a node-forge binary string. */
function toBinary(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("binary");
}

/** A node-forge binary string to bytes. */
function fromBinary(binary: string): Uint8Array {
  return new Uint8Array(Buffer.from(binary, "binary"));
}

// The slice of node-forge this project uses, typed (the package ships no types).

/** A node-forge ASN.1 node. */
interface ForgeAsn1 {
  tagClass: number;
  type: number;
  constructed: boolean;
  value: string | ForgeAsn1[];
}

interface ForgeBuffer {
  getBytes(): string;
}

interface ForgeApi {
  asn1: {
    Class: { UNIVERSAL: number; CONTEXT_SPECIFIC: number };
    Type: {
      SEQUENCE: number;
      INTEGER: number;
      OID: number;
      NULL: number;
      BITSTRING: number;
      OCTETSTRING: number;
      UTCTIME: number;
      GENERALIZEDTIME: number;
    };
    create(
      tagClass: number,
      type: number,
      constructed: boolean,
      value: string | ForgeAsn1[],
    ): ForgeAsn1;
    fromDer(bytes: string, options?: { decodeBitStrings?: boolean }): ForgeAsn1;
    toDer(node: ForgeAsn1): ForgeBuffer;
    oidToDer(oid: string): ForgeBuffer;
    derToOid(bytes: string): string;
    integerToDer(value: number): ForgeBuffer;
    dateToUtcTime(date: Date): string;
    dateToGeneralizedTime(date: Date): string;
  };
  pki: {
    createCertificate(): {
      subject: unknown;
      extensions: unknown[];
      setSubject(attrs: { name: string; value: string }[]): void;
      setExtensions(exts: ForgeExtension[]): void;
    };
    distinguishedNameToAsn1(dn: unknown): ForgeAsn1;
    certificateExtensionsToAsn1(exts: unknown[]): ForgeAsn1;
  };
}

function forgeApi(): ForgeApi {
  return forge as ForgeApi;
}

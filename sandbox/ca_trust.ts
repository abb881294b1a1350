/**
 * Makes the sandboxed command trust the MITM CA: a per-run PEM bundle
 * (the system's roots plus the CA) and the environment variables that point
 * common tools at it.
 *
 * The bundle holds the system roots too because several of these variables
 * replace a tool's trust store instead of adding to it (`SSL_CERT_FILE`,
 * `npm_config_cafile`, `REQUESTS_CA_BUNDLE`, …); with only our CA in it,
 * traffic the proxy does not terminate (full mode, or MITM off) would fail.
 *
 * @module
 */
import { errorMessage, SandboxError } from "../errors.ts";
import { readSystemCaBundle, SYSTEM_CA_BUNDLE_PATHS } from "../proxy/ca.ts";

/** File name of the bundle inside the run directory. */
export const CA_BUNDLE_FILE = "mitm-ca-bundle.pem";

/** Options for {@linkcode writeCaBundle}. */
export interface WriteCaBundleOptions {
  /** Candidate system bundles, first readable one wins (default {@linkcode SYSTEM_CA_BUNDLE_PATHS}). */
  systemBundlePaths?: readonly string[];
}

/**
 * Writes `runDir/mitm-ca-bundle.pem`: the first readable system bundle (or,
 * when there is none, the Mozilla roots built into the runtime,
 * `node:tls` `rootCertificates`) followed by `caCertPem`. The file is created
 * new (never over an existing one) with mode 0644: the sandboxed command must
 * read it, and it holds only public certificates. Returns its path.
 *
 * @example
 * ```ts
 * const bundle = await writeCaBundle(runDir, ca.certPem);
 * const env = caTrustEnv(bundle); // { SSL_CERT_FILE: bundle, … }
 * ```
 */
export async function writeCaBundle(
  runDir: string,
  caCertPem: string,
  options: WriteCaBundleOptions = {},
): Promise<string> {
  if (!/-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/.test(caCertPem)) {
    throw new SandboxError(
      "ca_error",
      "Cannot write the CA bundle: the MITM CA certificate is not PEM",
    );
  }
  const roots = await readSystemCaBundle({
    paths: options.systemBundlePaths ?? SYSTEM_CA_BUNDLE_PATHS,
  });
  const path = `${runDir.replace(/\/+$/, "")}/${CA_BUNDLE_FILE}`;
  const text = `${roots.trimEnd()}\n\n# sandbox MITM CA\n${caCertPem.trim()}\n`;
  try {
    const file = await Deno.open(path, { write: true, createNew: true, mode: 0o644 });
    try {
      await Deno.chmod(path, 0o644); // the umask may have narrowed it
      const bytes = new TextEncoder().encode(text);
      let offset = 0;
      while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
    } finally {
      file.close();
    }
  } catch (error) {
    throw new SandboxError(
      "ca_error",
      `Cannot write the CA bundle "${path}": ${errorMessage(error)}`,
      { cause: error },
    );
  }
  return path;
}

/**
 * The environment variables that make common tools trust the bundle at
 * `bundlePath`, each mapped to it:
 *
 * | variable | read by |
 * |---|---|
 * | `SSL_CERT_FILE` | OpenSSL, Go, Python `ssl`, Ruby, uv, Rust `openssl`/`rustls-native-certs` |
 * | `NODE_EXTRA_CA_CERTS` | Node.js, Bun (added to the built-in roots) |
 * | `REQUESTS_CA_BUNDLE` | Python requests (pip, poetry) |
 * | `CURL_CA_BUNDLE` | curl, some Python tools |
 * | `GIT_SSL_CAINFO` | git over HTTPS |
 * | `PIP_CERT` | pip |
 * | `DENO_CERT` | Deno |
 * | `CARGO_HTTP_CAINFO` | cargo |
 * | `AWS_CA_BUNDLE` | AWS CLI and SDKs |
 * | `npm_config_cafile` | npm, pnpm, yarn 1 |
 * | `YARN_CAFILE` | yarn 1 (`cafile`) |
 * | `YARN_CA_FILE_PATH` | yarn 2+ (`caFilePath`) |
 * | `BUNDLE_SSL_CA_CERT` | Ruby bundler |
 * | `COMPOSER_CAFILE` | PHP composer |
 * | `HEX_CACERTS_PATH` | Elixir hex/mix |
 * | `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` | gRPC (C core: Python, Ruby, PHP) |
 * | `NIX_SSL_CERT_FILE` | Nix |
 *
 * @example
 * ```ts
 * caTrustEnv("/run/x/mitm-ca-bundle.pem").SSL_CERT_FILE; // "/run/x/mitm-ca-bundle.pem"
 * ```
 */
export function caTrustEnv(bundlePath: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of CA_TRUST_ENV_NAMES) env[name] = bundlePath;
  return env;
}

/** The names {@linkcode caTrustEnv} sets, in README order. */
export const CA_TRUST_ENV_NAMES: readonly string[] = Object.freeze([
  "SSL_CERT_FILE",
  "NODE_EXTRA_CA_CERTS",
  "REQUESTS_CA_BUNDLE",
  "CURL_CA_BUNDLE",
  "GIT_SSL_CAINFO",
  "PIP_CERT",
  "DENO_CERT",
  "CARGO_HTTP_CAINFO",
  "AWS_CA_BUNDLE",
  "npm_config_cafile",
  "YARN_CAFILE",
  "YARN_CA_FILE_PATH",
  "BUNDLE_SSL_CA_CERT",
  "COMPOSER_CAFILE",
  "HEX_CACERTS_PATH",
  "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
  "NIX_SSL_CERT_FILE",
]);

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { rootCertificates } from "node:tls";
import { SandboxError } from "../errors.ts";
import { initCa } from "../proxy/ca.ts";
import { CA_TRUST_ENV_NAMES, caTrustEnv, writeCaBundle } from "./ca_trust.ts";

function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

Deno.test("writeCaBundle() writes the system roots followed by the CA, world-readable, never over a file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sandbox_trust_test_" });
  try {
    const { ca } = await initCa(`${dir}/ca`);
    const system = `${dir}/system.pem`;
    await Deno.writeTextFile(system, rootCertificates.slice(0, 3).join("\n"));
    const path = await writeCaBundle(`${dir}/`, ca.certPem, {
      systemBundlePaths: [`${dir}/missing.pem`, system],
    });
    assert.equal(path, `${dir}/mitm-ca-bundle.pem`);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o644);
    const blocks = pemBlocks(await Deno.readTextFile(path));
    assert.equal(blocks.length, 4);
    assert.equal(new X509Certificate(blocks[3]).fingerprint256, ca.fingerprint256);
    assert.equal(
      new X509Certificate(blocks[0]).fingerprint256,
      new X509Certificate(rootCertificates[0]).fingerprint256,
    );
    await assert.rejects(
      writeCaBundle(dir, ca.certPem, { systemBundlePaths: [system] }),
      SandboxError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeCaBundle() falls back to the built-in roots and refuses a non-PEM CA", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sandbox_trust_test_" });
  try {
    const { ca } = await initCa(`${dir}/ca`);
    const path = await writeCaBundle(dir, ca.certPem, { systemBundlePaths: [`${dir}/none.pem`] });
    assert.equal(pemBlocks(await Deno.readTextFile(path)).length, rootCertificates.length + 1);
    await assert.rejects(writeCaBundle(`${dir}/ca`, "not a certificate"), /not PEM/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("caTrustEnv() points every trust variable at the bundle", () => {
  const env = caTrustEnv("/run/x/bundle.pem");
  for (
    const name of [
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
      "YARN_CA_FILE_PATH",
    ]
  ) {
    assert.equal(env[name], "/run/x/bundle.pem", name);
  }
  assert.deepEqual(Object.keys(env), [...CA_TRUST_ENV_NAMES]);
});

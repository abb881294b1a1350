import assert from "node:assert/strict";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { SandboxError } from "../errors.ts";
import { caFilesIn, caFromPem, defaultCaDir, initCa, loadCa, signCertificate } from "./ca.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "sandbox_ca_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejectsCaError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof SandboxError, `expected a SandboxError, got ${error}`);
    assert.equal(error.code, "ca_error");
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("initCa() creates a CA certificate 0644 and a key 0600 in a 0700 directory", async () => {
  await withTempDir(async (root) => {
    const dir = `${root}/nested/ca`;
    const { created, ca } = await initCa(dir);
    assert.equal(created, true);
    const files = caFilesIn(dir);
    assert.equal((await Deno.stat(files.key)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(files.cert)).mode! & 0o777, 0o644);
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    const x509 = new X509Certificate(await Deno.readTextFile(files.cert));
    assert.equal(x509.ca, true);
    assert.equal(x509.checkPrivateKey(ca.privateKey), true);
    assert.equal(x509.verify(x509.publicKey), true, "self-signed signature must verify");
    assert.equal(ca.fingerprint256, x509.fingerprint256);
    assert.ok(ca.keyIdentifier !== null && ca.keyIdentifier.length === 20);
    assert.ok(ca.notAfter.getTime() > Date.now() + 3000 * 86_400_000);
    // No temporary files are left behind.
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names.sort(), ["ca-key.pem", "ca.pem"]);
  });
});

Deno.test("initCa() a second time leaves the first CA's bytes and times untouched", async () => {
  await withTempDir(async (dir) => {
    const first = await initCa(dir);
    const files = caFilesIn(dir);
    const before = {
      cert: await Deno.readFile(files.cert),
      key: await Deno.readFile(files.key),
      certStat: await Deno.stat(files.cert),
      keyStat: await Deno.stat(files.key),
    };
    const second = await initCa(dir);
    assert.equal(second.created, false);
    assert.equal(second.ca.fingerprint256, first.ca.fingerprint256);
    assert.deepEqual(await Deno.readFile(files.cert), before.cert);
    assert.deepEqual(await Deno.readFile(files.key), before.key);
    assert.equal((await Deno.stat(files.cert)).mtime?.getTime(), before.certStat.mtime?.getTime());
    assert.equal((await Deno.stat(files.key)).mtime?.getTime(), before.keyStat.mtime?.getTime());
    assert.equal((await Deno.stat(files.key)).ino, before.keyStat.ino);
  });
});

Deno.test("initCa() reports a key without a certificate instead of pairing a new one", async () => {
  await withTempDir(async (dir) => {
    await initCa(dir);
    await Deno.remove(caFilesIn(dir).cert);
    await rejectsCaError(initCa(dir), /Incomplete MITM CA .*ca-key\.pem/);
  });
});

Deno.test("loadCa() refuses a key readable by group or others and says to chmod 600", async () => {
  await withTempDir(async (dir) => {
    await initCa(dir);
    const { key } = caFilesIn(dir);
    for (const mode of [0o640, 0o604, 0o660]) {
      await Deno.chmod(key, mode);
      await rejectsCaError(
        loadCa(dir),
        new RegExp(`mode ${mode.toString(8)} .*chmod 600 "${key}"`),
      );
    }
    await Deno.chmod(key, 0o600);
    const ca = await loadCa(dir);
    assert.equal(ca.keyPath, key);
  });
});

Deno.test("loadCa() refuses a key that is a symbolic link", async () => {
  await withTempDir(async (dir) => {
    await initCa(`${dir}/real`);
    const real = caFilesIn(`${dir}/real`);
    await Deno.symlink(real.key, `${dir}/link-key.pem`);
    await rejectsCaError(loadCa({ cert: real.cert, key: `${dir}/link-key.pem` }), /symbolic link/);
  });
});

Deno.test({
  name: "loadCa() refuses a key owned by another user",
  ignore: Deno.uid() !== 0, // only root can give a file away
  fn: async () => {
    await withTempDir(async (dir) => {
      await initCa(dir);
      const { key } = caFilesIn(dir);
      await Deno.chown(key, 4242, null);
      await rejectsCaError(loadCa(dir), /owned by uid 4242, not by you/);
    });
  },
});

Deno.test("loadCa() explains a missing CA and points at sandbox init", async () => {
  await withTempDir(async (dir) => {
    await rejectsCaError(loadCa(`${dir}/none`), /No MITM CA file .*run "sandbox init" first/);
  });
});

Deno.test("loadCa() accepts a user-supplied EC CA and refuses a mismatched key or a non-CA certificate", async () => {
  await withTempDir(async (dir) => {
    const ec = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const now = Date.now();
    const certPem = signCertificate({
      privateKey: ec.privateKey,
      subjectDer: null,
      keyIdentifier: null,
    }, {
      publicKey: ec.publicKey,
      subject: { commonName: "Corp CA" },
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      extensions: [{ name: "basicConstraints", cA: true, critical: true }, {
        name: "keyUsage",
        keyCertSign: true,
        critical: true,
      }],
      subjectKeyIdentifier: true,
    });
    const keyPem = ec.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    await Deno.writeTextFile(`${dir}/corp.pem`, certPem);
    await Deno.writeTextFile(`${dir}/corp-key.pem`, keyPem, { mode: 0o600 });
    const ca = await loadCa({ cert: `${dir}/corp.pem`, key: `${dir}/corp-key.pem` });
    assert.equal(new X509Certificate(ca.certPem).subject, "CN=Corp CA");

    const other = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    assert.throws(
      () => caFromPem(certPem, other.privateKey.export({ type: "pkcs8", format: "pem" }) as string),
      /does not belong to/,
    );
    const leafPem = signCertificate(ca, {
      publicKey: other.publicKey,
      subject: { commonName: "leaf" },
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      extensions: [{ name: "basicConstraints", cA: false }],
    });
    assert.equal(new X509Certificate(leafPem).verify(ec.publicKey), true);
    assert.throws(
      () => caFromPem(leafPem, other.privateKey.export({ type: "pkcs8", format: "pem" }) as string),
      /is not a CA certificate/,
    );
  });
});

Deno.test("defaultCaDir() prefers XDG_CONFIG_HOME, then HOME, and refuses neither", () => {
  assert.equal(
    defaultCaDir({ env: { XDG_CONFIG_HOME: "/x/cfg/", HOME: "/home/a" } }),
    "/x/cfg/sandbox/ca",
  );
  assert.equal(defaultCaDir({ env: { HOME: "/home/a" } }), "/home/a/.config/sandbox/ca");
  assert.equal(
    defaultCaDir({ env: { XDG_CONFIG_HOME: "relative", HOME: "/h" } }),
    "/h/.config/sandbox/ca",
  );
  assert.throws(() => defaultCaDir({ env: {} }), /pass --ca-dir DIR/);
});

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { createLeafIssuer } from "./leaf_certs.ts";
import { testCa } from "../tests/proxy_helpers.ts";

Deno.test("createLeafIssuer() issues a serverAuth leaf for a DNS name, signed by the CA", async () => {
  const ca = await testCa("leaf");
  const issuer = createLeafIssuer(ca);
  const leaf = issuer.certificateFor("API.Example.test.");
  assert.equal(leaf.host, "api.example.test");
  const x509 = new X509Certificate(leaf.certPem);
  const caCert = new X509Certificate(ca.certPem);
  assert.equal(x509.verify(caCert.publicKey), true);
  assert.equal(x509.checkIssued(caCert), true);
  assert.equal(x509.ca, false);
  assert.equal(x509.subjectAltName, "DNS:api.example.test");
  assert.equal(x509.checkHost("api.example.test"), "api.example.test");
  assert.equal(x509.checkHost("other.example.test"), undefined);
  const der = Buffer.from(x509.raw).toString("hex");
  assert.ok(der.includes("0603551d25"), "has an extKeyUsage extension");
  assert.ok(der.includes("06082b06010505070301"), "extKeyUsage lists serverAuth");
  assert.equal(x509.checkPrivateKey(createPrivateKey(leaf.keyPem)), true);
  assert.ok(leaf.chainPem.startsWith(leaf.certPem) && leaf.chainPem.endsWith(ca.certPem));
  const from = new Date(x509.validFrom).getTime();
  const to = new Date(x509.validTo).getTime();
  assert.ok(
    from < Date.now() - 60_000 && from > Date.now() - 10 * 60_000,
    "backdated a few minutes",
  );
  assert.ok(to - from <= 86_400_000 + 10 * 60_000, "about a day");
});

Deno.test("createLeafIssuer() uses an IP SAN for IPv4 and IPv6 literals", async () => {
  const issuer = createLeafIssuer(await testCa("leaf"));
  const v4 = new X509Certificate(issuer.certificateFor("127.0.0.7").certPem);
  assert.equal(v4.subjectAltName, "IP Address:127.0.0.7");
  assert.equal(v4.checkIP("127.0.0.7"), "127.0.0.7");
  const v6 = new X509Certificate(issuer.certificateFor("[::1]").certPem);
  assert.equal(v6.checkIP("::1"), "::1");
  assert.throws(() => issuer.certificateFor("bad name!"), TypeError);
  assert.throws(() => issuer.certificateFor(""), TypeError);
});

Deno.test("createLeafIssuer() caches per host, evicts the least recently used and gives random serials", async () => {
  const issuer = createLeafIssuer(await testCa("leaf"), { maxEntries: 2 });
  const a = issuer.certificateFor("a.test");
  const b = issuer.certificateFor("b.test");
  assert.equal(issuer.certificateFor("a.test"), a, "cached");
  assert.equal(issuer.issued, 2);
  issuer.certificateFor("c.test"); // evicts b (a was used more recently)
  assert.equal(issuer.size, 2);
  assert.equal(issuer.certificateFor("a.test"), a);
  assert.notEqual(issuer.certificateFor("b.test"), b, "b was evicted and issued again");
  assert.equal(issuer.issued, 4);
  const serials = new Set([a, b].map((leaf) => new X509Certificate(leaf.certPem).serialNumber));
  assert.equal(serials.size, 2);
});

Deno.test("createLeafIssuer() reissues a certificate that is about to expire", async () => {
  let clock = Date.now();
  const issuer = createLeafIssuer(await testCa("leaf"), {
    now: () => clock,
    validityMs: 2 * 3600_000,
  });
  const first = issuer.certificateFor("a.test");
  clock += 30 * 60_000;
  assert.equal(issuer.certificateFor("a.test"), first);
  clock += 31 * 60_000; // less than an hour of validity left
  const second = issuer.certificateFor("a.test");
  assert.notEqual(second, first);
  assert.ok(second.notAfter > first.notAfter);
});

import assert from "node:assert/strict";
import { loadEffectiveConfig } from "../profiles/load.ts";
import type { EffectiveConfig } from "../profiles/types.ts";
import { buildBwrapArgs } from "../sandbox/bwrap_args.ts";
import { capturePlan, prepareRun, writeRunFiles } from "./prepare.ts";

const BASE = await loadEffectiveConfig({}, { env: { HOME: "/nonexistent" }, cwd: "/" });

function config(mitm: boolean): EffectiveConfig {
  return {
    ...BASE,
    network: { ...BASE.network, mode: mitm ? "limited" : "full", mitm },
    execpolicy: {
      default: "allow-network",
      rules: [{
        pattern: "fakecurl *",
        decision: "deny",
        justification: null,
        match: [],
        notMatch: [],
        source: "test",
      }],
    },
  };
}

async function fixture() {
  const dir = await Deno.makeTempDir({ prefix: "prepare_run_" });
  await Deno.mkdir(`${dir}/bin`);
  await Deno.mkdir(`${dir}/run`);
  await Deno.writeTextFile(`${dir}/bin/fakecurl`, "#!/bin/sh\necho ran\n", { mode: 0o755 });
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

Deno.test("prepareRun() plans the shim binds, the CA bundle and its trust variables, and writes nothing", async () => {
  await using fx = await fixture();
  const runDir = `${fx.dir}/run`;
  const plan = await prepareRun(config(true), ["true"], {
    runDir,
    cwd: fx.dir,
    env: { PATH: `${fx.dir}/bin:/usr/bin:/bin`, HOME: fx.dir },
    network: true,
  });
  const bundle = `${runDir}/mitm-ca-bundle.pem`;
  assert.deepEqual(plan.mitm, { bundlePath: bundle });
  assert.equal(plan.proxySocket, `${runDir}/proxy.sock`);
  assert.equal(plan.sandbox.env.SSL_CERT_FILE, bundle);
  assert.equal(plan.sandbox.env.NODE_EXTRA_CA_CERTS, bundle);
  const targets = plan.sandbox.extraBinds.map((b) => b.target);
  assert.ok(targets.includes(bundle));
  assert.ok(targets.includes(`${fx.dir}/bin/fakecurl`), "the shim over fakecurl");
  assert.ok((plan.sandbox.readOnly ?? []).length > 0, "the launcher stays readable for the shim");
  const argv = buildBwrapArgs(plan.sandbox);
  assert.ok(argv.includes(`${fx.dir}/bin/fakecurl`));
  assert.deepEqual([...Deno.readDirSync(runDir)], [], "nothing written");
});

Deno.test("prepareRun() without network has no proxy, no CA bundle, and keeps the shims", async () => {
  await using fx = await fixture();
  const plan = await prepareRun(config(true), ["true"], {
    runDir: `${fx.dir}/run`,
    cwd: fx.dir,
    env: { PATH: `${fx.dir}/bin:/usr/bin:/bin` },
    network: false,
  });
  assert.equal(plan.proxySocket, null);
  assert.equal(plan.mitm, null);
  assert.equal(plan.sandbox.network.kind, "none");
  assert.equal(plan.sandbox.env.SSL_CERT_FILE, undefined);
  assert.ok(plan.sandbox.extraBinds.some((b) => b.target === `${fx.dir}/bin/fakecurl`));
});

Deno.test("writeRunFiles() refuses a MITM plan without the CA certificate", async () => {
  await using fx = await fixture();
  const plan = await prepareRun(config(true), ["true"], {
    runDir: `${fx.dir}/run`,
    cwd: fx.dir,
    env: { PATH: "/usr/bin:/bin" },
    network: true,
  });
  await assert.rejects(() => writeRunFiles(plan), /no MITM CA certificate/);
});

Deno.test("capturePlan() captures the ports and the literal addresses allow rules name, never loopback or the synthetic range", () => {
  const allow = [
    "registry.example",
    "tls://registry.example:8443",
    "203.0.113.7:5432",
    "[2001:DB8::7]:443",
    "10.0.0.5",
    "192.0.2.8.",
    "127.0.0.1:8080",
    "[::1]:22",
    "[::ffff:203.0.113.9]",
    "198.18.0.9",
    "fe80::1%eth0",
    "0.0.0.0",
    "*",
  ];
  const domains = [
    ...allow.map((pattern) => ({ pattern, action: "allow" as const, source: "test" })),
    { pattern: "198.51.100.4", action: "deny" as const, source: "test" },
  ];
  const plan = capturePlan({ ...BASE, network: { ...BASE.network, domains } }, "/run/x.sock");
  assert.deepEqual(plan.ports, [22, 80, 443, 5432, 8080, 8443]);
  assert.deepEqual(plan.tlsPorts, [443]);
  assert.deepEqual(plan.addresses, ["203.0.113.7", "2001:db8::7", "10.0.0.5", "192.0.2.8"]);
});

Deno.test("capturePlan() passes over plain names without compiling them, and still finds what 100,000 of them hide", () => {
  const domains = Array.from({ length: 100_000 }, (_, i) => ({
    pattern: i === 50_000 ? "db.example:5432" : i === 70_000 ? "203.0.113.70" : `d${i}.example.com`,
    action: "allow" as const,
    source: "test",
  }));
  const plan = capturePlan({ ...BASE, network: { ...BASE.network, domains } }, "/run/x.sock");
  assert.deepEqual(plan.ports, [80, 443, 5432]);
  assert.deepEqual(plan.addresses, ["203.0.113.70"]);
});

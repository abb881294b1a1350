/**
 * `sandbox policy host --preset common-dependencies` as a real subprocess:
 * the reference list's own cases, a subdomain of every listed domain, and
 * the npm registry taken from the machine's configuration. Names are
 * answered by `--resolve` (a public documentation address), so nothing is
 * looked up and nothing is connected to.
 */
import assert from "node:assert/strict";
import { sandboxCli, tempDir } from "./cli_helpers.ts";

interface PresetVectors {
  domains: string[];
  cases: { host: string; allowed: boolean }[];
}

const VECTORS: PresetVectors = JSON.parse(
  Deno.readTextFileSync(
    new URL("../testdata/conformance/preset_common_dependencies.json", import.meta.url),
  ),
);

/** A public address that is never connected to here (TEST-NET would count as non-public). */
const PUBLIC = "8.8.8.8";

async function policyHost(host: string, env: Record<string, string>, extra: string[] = []) {
  const result = await sandboxCli([
    "policy",
    "host",
    "--json",
    "--preset",
    "common-dependencies",
    "--resolve",
    `${host}=${PUBLIC}`,
    ...extra,
    host,
  ], { env, timeoutMs: 60_000 });
  const json = result.stdout.trim() === "" ? null : JSON.parse(result.stdout);
  return { ...result, json };
}

Deno.test("sandbox policy host --preset common-dependencies decides the reference cases", async () => {
  await using home = await tempDir("preset_cli_");
  await Deno.writeTextFile(`${home.path}/managed.toml`, "");
  const env = {
    HOME: home.path,
    XDG_CONFIG_HOME: home.path,
    SANDBOX_MANAGED_CONFIG: `${home.path}/managed.toml`,
    npm_config_registry: "https://registry.mirror.test/npm/",
  };
  const subdomains = ["gitlab.com", "nuget.org", "docker.io", "ubuntu.com", "rustup.rs"]
    .map((d) => ({ host: `cdn.${d}`, allowed: true }));
  for (const { host, allowed } of [...VECTORS.cases, ...subdomains]) {
    const r = await policyHost(host, env);
    assert.equal(r.code, allowed ? 0 : 1, `${host}: ${r.stderr}`);
    assert.equal(r.json.decision, allowed ? "allow" : "deny", host);
    if (allowed) assert.equal(r.json.source, "preset:common-dependencies", host);
  }
  // The npm registry comes from the machine's configuration, not from the list.
  const npm = await policyHost("registry.mirror.test", env);
  assert.equal(npm.code, 0, npm.stderr);
  assert.equal(npm.json.rule, "registry.mirror.test");
  // A user's deny still beats the preset's allow.
  const denied = await policyHost("github.com", env, ["--deny", "github.com"]);
  assert.equal(denied.code, 1);
  assert.equal(denied.json.reason, "denied");
});

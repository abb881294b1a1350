import assert from "node:assert/strict";
import { ConfigError } from "../cli/errors.ts";
import { loadEffectiveConfig } from "./load.ts";
import { PRESETS } from "./presets.ts";

Deno.test("loadEffectiveConfig() with no flags gives the defaults", async () => {
  const config = await loadEffectiveConfig({}, { env: {} });
  assert.equal(config.network.enabled, true);
  assert.equal(config.network.mode, "full");
  assert.deepEqual(config.network.domains, []);
  assert.equal(config.profileName, null);
  assert.equal(config.execpolicy, null);
  assert.ok(Object.isFrozen(config.network.domains));
});

Deno.test("loadEffectiveConfig() turns flags into rules with their sources", async () => {
  const config = await loadEffectiveConfig({
    allow: ["a.test"],
    deny: ["b.test"],
    mode: "limited",
    mitm: true,
    "allow-local-binding": true,
    "allow-unix-socket": ["/run/x.sock"],
    preset: ["python-ml"],
  }, { env: {} });
  assert.equal(config.network.mode, "limited");
  assert.equal(config.network.mitm, true);
  assert.equal(config.network.allowLocalBinding, true);
  assert.equal(config.sources["network.mode"], "flag:--mode");
  assert.deepEqual(config.network.unixSockets, [
    { path: "/run/x.sock", action: "allow", source: "flag:--allow-unix-socket" },
  ]);
  const flagRules = config.network.domains.filter((r) => r.source.startsWith("flag:"));
  assert.deepEqual(flagRules, [
    { pattern: "a.test", action: "allow", source: "flag:--allow" },
    { pattern: "b.test", action: "deny", source: "flag:--deny" },
  ]);
  const presetRules = config.network.domains.filter((r) => r.source === "preset:python-ml");
  assert.equal(presetRules.length, PRESETS["python-ml"].allow.length);
});

Deno.test("loadEffectiveConfig() reports every bad flag at once", async () => {
  const error = await loadEffectiveConfig({
    mode: "open",
    preset: ["nope"],
    deny: ["*"],
    "allow-unix-socket": ["rel.sock"],
  }, { env: {} }).then(() => null, (e) => e);
  assert.ok(error instanceof ConfigError);
  assert.deepEqual(error.problems.map((p) => p.file).sort(), [
    "--allow-unix-socket",
    "--deny",
    "--mode",
    "--preset",
  ]);
  assert.match(error.message, /Unknown preset "nope": expected one of "common-dependencies"/);
});

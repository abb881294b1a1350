import assert from "node:assert/strict";
import * as mod from "./mod.ts";

Deno.test("profiles/mod.ts exports exactly its pinned public surface", () => {
  assert.deepEqual(Object.keys(mod).sort(), [
    "CODEX_IGNORED_KEYS",
    "CODEX_IGNORED_REQUIREMENT_KEYS",
    "DEFAULTS",
    "PRESETS",
    "SYSTEM_MANAGED_CONFIG",
    "configLocations",
    "detectConfigKind",
    "formatKeyPath",
    "indexKeyLines",
    "isPresetName",
    "loadEffectiveConfig",
    "normalizePattern",
    "parseTomlText",
    "readConfigFile",
    "validateConfig",
    "validateConfigText",
  ]);
});

import assert from "node:assert/strict";
import { validateDomainPattern } from "../policy/pattern.ts";
import { PRESETS } from "./presets.ts";

Deno.test("PRESETS entries all pass validateDomainPattern() as allow patterns, without duplicates", () => {
  for (const [name, preset] of Object.entries(PRESETS)) {
    assert.ok(preset.allow.length > 0, name);
    assert.equal(new Set(preset.allow).size, preset.allow.length, `${name} has a duplicate entry`);
    for (const pattern of preset.allow) {
      assert.equal(validateDomainPattern(pattern, "allow"), null, `${name}: "${pattern}"`);
      assert.doesNotMatch(pattern, /^\*$/, `${name} must not allow every host`);
    }
  }
});

Deno.test("PRESETS cover what their descriptions promise", () => {
  const common = PRESETS["common-dependencies"].allow;
  for (
    const host of [
      "pypi.org",
      "static.crates.io",
      "proxy.golang.org",
      "repo1.maven.org",
      "rubygems.org",
      "codeload.github.com",
    ]
  ) {
    assert.ok(common.includes(host), host);
  }
  assert.deepEqual(PRESETS["common-dependencies"].discover, ["npm-registry", "apt-sources"]);
  const ml = PRESETS["python-ml"].allow;
  for (
    const host of ["files.pythonhosted.org", "huggingface.co", "download.pytorch.org", "github.com"]
  ) {
    assert.ok(ml.includes(host), host);
  }
});

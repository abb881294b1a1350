import assert from "node:assert/strict";
import {
  compileDomainPattern,
  matchesDomainPattern,
  validateDomainPattern,
} from "../policy/pattern.ts";
import { PRESETS } from "./presets.ts";

Deno.test("PRESETS entries all pass validateDomainPattern() as allow patterns, without duplicates", () => {
  for (const [name, preset] of Object.entries(PRESETS)) {
    // A preset allows hosts of its own, or takes them from the machine (npm-read: the registry).
    assert.ok(preset.allow.length > 0 || preset.discover.length > 0, name);
    assert.equal(new Set(preset.allow).size, preset.allow.length, `${name} has a duplicate entry`);
    for (const pattern of preset.allow) {
      assert.equal(validateDomainPattern(pattern, "allow"), null, `${name}: "${pattern}"`);
      assert.doesNotMatch(pattern, /^\*$/, `${name} must not allow every host`);
    }
  }
});

Deno.test("PRESETS common-dependencies carries the reference list, each domain with its subdomains", () => {
  const reference = JSON.parse(
    Deno.readTextFileSync(
      new URL("../testdata/conformance/preset_common_dependencies.json", import.meta.url),
    ),
  ) as { domains: string[]; cases: { host: string; allowed: boolean }[] };
  const common = PRESETS["common-dependencies"].allow;
  assert.deepEqual([...common].sort(), reference.domains.map((d) => `**.${d}`).sort());
  const patterns = common.map((p) => compileDomainPattern(p, "allow"));
  const allows = (host: string) => patterns.some((p) => matchesDomainPattern(p, host));
  for (const { host, allowed } of reference.cases) assert.equal(allows(host), allowed, host);
  for (const domain of reference.domains) {
    assert.ok(allows(domain), domain);
    assert.ok(allows(`a.b.${domain}`), `a.b.${domain}`);
    assert.ok(!allows(`${domain}.attacker.example`), `${domain}.attacker.example`);
  }
  assert.deepEqual(PRESETS["common-dependencies"].discover, ["npm-registry", "apt-sources"]);
});

Deno.test("PRESETS python-ml covers what its description promises", () => {
  const ml = PRESETS["python-ml"].allow;
  for (
    const host of ["files.pythonhosted.org", "huggingface.co", "download.pytorch.org", "github.com"]
  ) {
    assert.ok(ml.includes(host), host);
  }
});

import assert from "node:assert/strict";
import { makePlaceholder, prepareSecrets } from "./secrets.ts";
import type { EffectiveConfig } from "../profiles/types.ts";

Deno.test("makePlaceholder keeps prefix, length and character classes, differs every time", () => {
  const cases = [
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "npm_AbCdEf0123456789AbCdEf0123456789AbCd",
    "sk-ant-api03-abcDEF123_xyz",
    "0123456789abcdef0123456789abcdef",
  ];
  for (const value of cases) {
    const a = makePlaceholder(value);
    const b = makePlaceholder(value);
    assert.notEqual(a, value);
    assert.notEqual(a, b, "different on every call");
    assert.equal(a.length, value.length);
    const cls = (c: string) =>
      /[a-f0-9]/.test(c) && /^[0-9a-f]+$/.test(value)
        ? "h"
        : /[a-z]/.test(c)
        ? "l"
        : /[A-Z]/.test(c)
        ? "u"
        : /[0-9]/.test(c)
        ? "d"
        : c;
    assert.equal([...a].map(cls).join(""), [...value].map(cls).join(""), value);
  }
  assert.ok(makePlaceholder(cases[0]).startsWith("ghp_"));
  assert.ok(makePlaceholder(cases[1]).startsWith("npm_"));
  assert.ok(makePlaceholder(cases[2]).startsWith("sk-ant-api03-"));
});

Deno.test("prepareSecrets removes the real value from the sandbox's environment and refuses a missing one", () => {
  const config = {
    network: { requestRules: [] },
    secrets: [{
      name: "NPM_TOKEN",
      fromEnv: null,
      fromFile: null,
      hosts: ["registry.test"],
      optional: false,
      source: "t",
    }, {
      name: "GH_TOKEN",
      fromEnv: null,
      fromFile: null,
      hosts: ["api.github.com"],
      optional: true,
      source: "t",
    }],
  } as unknown as EffectiveConfig;
  const real = "npm_REALREALREALREALREAL0123456789";
  const out = prepareSecrets(config, { NPM_TOKEN: real, PATH: "/bin" });
  assert.equal(out.env.PATH, "/bin");
  assert.notEqual(out.placeholders.NPM_TOKEN, real);
  assert.ok(!JSON.stringify({ env: out.env, p: out.placeholders }).includes(real));
  assert.equal(out.proxy.values.get("NPM_TOKEN"), real);
  assert.deepEqual(
    out.proxy.bindings.map((b) => b.name),
    ["NPM_TOKEN"],
    "optional GH_TOKEN skipped",
  );
  assert.throws(() => prepareSecrets(config, {}), /launcher's environment has no NPM_TOKEN/);
});

import assert from "node:assert/strict";
import { checkLayers, readImportEdges, relativeImports } from "./layers.ts";

Deno.test("checkLayers() refuses an upward import and a folder cycle on one floor", () => {
  assert.deepEqual(checkLayers([{ from: "policy/policy.ts", to: "policy/host.ts" }]), []);
  assert.deepEqual(checkLayers([{ from: "cli/run.ts", to: "run/run.ts" }]), []);
  const upward = checkLayers([{ from: "proxy/server.ts", to: "cli/errors.ts" }]);
  assert.equal(upward.length, 1);
  assert.match(upward[0], /"proxy" \(floor 4\) may not import "cli" \(floor 6\)/);
  const cycle = checkLayers([
    { from: "proxy/server.ts", to: "sandbox/unix_forward.ts" },
    { from: "sandbox/run.ts", to: "proxy/server.ts" },
  ]);
  assert.deepEqual(cycle, ["folder cycle: proxy -> sandbox -> proxy"]);
  assert.match(
    checkLayers([{ from: "run/run.ts", to: "tests/helpers.ts" }])[0],
    /not a library floor/,
  );
  // Entries and non-library folders are not checked.
  assert.deepEqual(checkLayers([{ from: "mod.ts", to: "cli/version.ts" }]), []);
  assert.deepEqual(checkLayers([{ from: "tests/a_test.ts", to: "cli/main.ts" }]), []);
});

Deno.test("checkLayers() refuses a cycle between files of one folder, type-only imports included", () => {
  assert.deepEqual(
    checkLayers([
      { from: "proxy/server.ts", to: "proxy/http_proxy.ts" },
      { from: "proxy/http_proxy.ts", to: "proxy/server.ts" },
    ]),
    ["file cycle: proxy/http_proxy.ts -> proxy/server.ts -> proxy/http_proxy.ts"],
  );
  assert.deepEqual(checkLayers([{ from: "policy/mod.ts", to: "policy/mod.ts" }]), []);
});

Deno.test("relativeImports() sees static, dynamic, re-export and type-only imports", () => {
  const text = `import { a } from "./a.ts";
import type { B } from '../b/b.ts';
export { c } from "./c.ts";
const d = await import("../d.ts");
import "./side.ts";
import { e } from "node:fs";`;
  assert.deepEqual(relativeImports(text), [
    "./a.ts",
    "../b/b.ts",
    "./c.ts",
    "../d.ts",
    "./side.ts",
  ]);
});

Deno.test("the repository's library imports keep the floors", async () => {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const edges = await readImportEdges(root);
  assert.ok(edges.some((e) => e.from === "cli/run.ts"), "the walk read cli/");
  assert.deepEqual(checkLayers(edges), []);
});

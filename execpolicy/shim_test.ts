import assert from "node:assert/strict";
import { selfInvocation } from "../self.ts";
import { planShims, prepareShims, writeShims } from "./shim.ts";
import type { ExecPolicyConfig } from "./types.ts";

const POLICY: ExecPolicyConfig = {
  default: "allow-network",
  rules: [{
    pattern: "fakecurl *",
    decision: "deny",
    justification: null,
    match: [],
    notMatch: [],
    source: "test",
  }],
};

async function fixture() {
  const dir = await Deno.makeTempDir({ prefix: "shim_plan_" });
  await Deno.mkdir(`${dir}/bin`);
  await Deno.writeTextFile(`${dir}/bin/fakecurl`, "#!/bin/sh\necho ran\n", { mode: 0o755 });
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

Deno.test("planShims() writes nothing and plans the binds prepareShims() mounts", async () => {
  await using fx = await fixture();
  const options = {
    runDir: `${fx.dir}/run`,
    pathDirs: [`${fx.dir}/bin`],
    self: selfInvocation(),
    extraDirs: [],
  };
  const plan = await planShims(POLICY, options);
  assert.ok(plan.binds.some((b) => b.target === `${fx.dir}/bin/fakecurl`), "the shim covers it");
  assert.equal(await Deno.stat(`${fx.dir}/run`).then(() => true, () => false), false);

  await writeShims(plan);
  const shim = plan.binds.find((b) => b.target === `${fx.dir}/bin/fakecurl`)!.source;
  assert.match(await Deno.readTextFile(shim), /exit 126/);
  assert.equal((await Deno.stat(shim)).mode! & 0o777, 0o755);
  for (const bind of plan.binds) {
    assert.ok(await Deno.stat(bind.source).then(() => true, () => false), bind.source);
  }

  await Deno.remove(`${fx.dir}/run`, { recursive: true });
  assert.deepEqual(await prepareShims(POLICY, options), plan.binds);
});

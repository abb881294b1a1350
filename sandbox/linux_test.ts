import assert from "node:assert/strict";
import { withoutVanishedMasks } from "./linux.ts";
import type { SandboxPlan } from "./plan.ts";

Deno.test("withoutVanishedMasks() drops the masks of paths that are gone, keeps the rest and the plan", async () => {
  const dir = await Deno.makeTempDir({ prefix: "masks-" });
  try {
    const socket = `${dir}/live.sock`;
    using listener = Deno.listen({ transport: "unix", path: socket });
    const gone = `${dir}/gone.sock`;
    const plan = {
      env: { A: "1" },
      linux: { maskedFiles: [socket, gone, "/etc/hostname"], other: 1 },
    } as unknown as SandboxPlan;
    const kept = withoutVanishedMasks(plan);
    assert.deepEqual(kept.linux!.maskedFiles, [socket, "/etc/hostname"]);
    assert.equal((kept.linux as unknown as { other: number }).other, 1);
    assert.deepEqual(kept.env, { A: "1" });
    // Nothing gone: the very same plan.
    const whole = { ...plan, linux: { ...plan.linux!, maskedFiles: [socket] } } as SandboxPlan;
    assert.equal(withoutVanishedMasks(whole), whole);
    listener.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

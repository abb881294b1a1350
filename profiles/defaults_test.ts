import assert from "node:assert/strict";
import { DEFAULTS } from "./defaults.ts";

Deno.test("DEFAULTS is pinned: changing a default must change this test", () => {
  assert.deepEqual(DEFAULTS, {
    network: {
      enabled: true,
      mode: "full",
      allowLocalBinding: false,
      mitm: false,
      dangerouslyAllowAllUnixSockets: false,
      strictUnixSockets: false,
      dangerouslyAllowNonLoopbackProxy: false,
      proxyUrl: null,
      socksUrl: null,
      enableSocks5: true,
      enforcement: "enforce",
      ask: false,
      capture: true,
    },
    filesystem: { writable: [], denyRead: [] },
    env: { allow: null, deny: [] },
    execpolicyDefault: "allow",
  });
});

Deno.test("DEFAULTS is frozen all the way down", () => {
  assert.ok(Object.isFrozen(DEFAULTS));
  assert.ok(Object.isFrozen(DEFAULTS.network));
  assert.ok(Object.isFrozen(DEFAULTS.filesystem.writable));
  assert.throws(() => {
    (DEFAULTS.network as { mode: string }).mode = "limited";
  }, TypeError);
});

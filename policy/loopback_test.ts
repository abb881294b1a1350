import assert from "node:assert/strict";
import { HOST_LOOPBACK_ALIAS, hostLoopbackReason } from "./loopback.ts";

Deno.test("hostLoopbackReason() names loopback literals, localhost and addresses that reach loopback", () => {
  assert.equal(hostLoopbackReason("127.0.0.1"), "127.0.0.1 is in 127.0.0.0/8 (loopback)");
  assert.equal(hostLoopbackReason("127.1.2.3"), "127.1.2.3 is in 127.0.0.0/8 (loopback)");
  assert.equal(hostLoopbackReason("::1"), "::1 is in ::1/128 (loopback)");
  assert.equal(hostLoopbackReason("localhost"), '"localhost" is a loopback name');
  assert.equal(hostLoopbackReason("a.localhost"), '"a.localhost" is a loopback name');
  // 0.0.0.0 and :: connect to the host's loopback on Linux.
  assert.match(hostLoopbackReason("0.0.0.0") ?? "", /this network/);
  assert.match(hostLoopbackReason("::") ?? "", /unspecified/);
  // An IPv6 address that embeds 127.0.0.1.
  assert.match(hostLoopbackReason("::ffff:127.0.0.1") ?? "", /loopback/);
});

Deno.test("hostLoopbackReason() leaves names, public and other private addresses to the policy", () => {
  for (const host of ["example.com", HOST_LOOPBACK_ALIAS, "10.0.0.1", "192.168.1.1", "8.8.8.8"]) {
    assert.equal(hostLoopbackReason(host), null, host);
  }
});

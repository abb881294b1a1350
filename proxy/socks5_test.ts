import assert from "node:assert/strict";
import { encodeSocks5Reply, SOCKS5_REPLY } from "./socks5.ts";

Deno.test("encodeSocks5Reply() encodes IPv4 and IPv6 bound addresses", () => {
  assert.deepEqual(
    [...encodeSocks5Reply(SOCKS5_REPLY.succeeded, {
      transport: "tcp",
      hostname: "127.0.0.1",
      port: 0x1234,
    })],
    [5, 0, 0, 1, 127, 0, 0, 1, 0x12, 0x34],
  );
  assert.deepEqual(
    [...encodeSocks5Reply(SOCKS5_REPLY.succeeded, { transport: "tcp", hostname: "::1", port: 80 })],
    [5, 0, 0, 4, ...new Array(15).fill(0), 1, 0, 80],
  );
  assert.deepEqual([...encodeSocks5Reply(SOCKS5_REPLY.notAllowed)], [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
});

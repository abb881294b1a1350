import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import {
  bypassesUpstream,
  connectTarget,
  UpstreamError,
  upstreamProxyFromEnv,
} from "./upstream.ts";

Deno.test("upstreamProxyFromEnv() reads HTTPS_PROXY/HTTP_PROXY/NO_PROXY in either case", () => {
  assert.equal(upstreamProxyFromEnv({}), null);
  const config = upstreamProxyFromEnv({
    https_proxy: "http://user:p%40ss@corp.example:3128",
    NO_PROXY: "internal.example, .corp.example",
  })!;
  assert.equal(config.https?.hostname, "corp.example");
  assert.equal(config.https?.port, 3128);
  assert.equal(config.https?.authorization, "Basic " + btoa("user:p@ss"));
  assert.equal(config.https?.display, "http://corp.example:3128", "no credentials in messages");
  assert.equal(config.http, config.https, "HTTP falls back to HTTPS_PROXY");
  assert.ok(bypassesUpstream(config, "a.internal.example"));
  assert.ok(bypassesUpstream(config, "corp.example"));
  assert.ok(!bypassesUpstream(config, "registry.example"));
});

Deno.test("upstreamProxyFromEnv() refuses an unusable proxy URL with a ConfigError naming the variable", () => {
  assert.throws(
    () => upstreamProxyFromEnv({ HTTPS_PROXY: "https://corp.example:3128" }),
    (error) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems[0].keyPath, "HTTPS_PROXY");
      return true;
    },
  );
});

Deno.test("connectTarget() tries the checked addresses in order and never its own listeners", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.2", port: 0 });
  const closed = Deno.listen({ hostname: "127.0.0.3", port: 0 });
  const deadPort = closed.addr.port;
  closed.close();
  try {
    const conn = await connectTarget(
      { host: "a.test", port: listener.addr.port, addresses: ["127.0.0.3", "127.0.0.2"] },
      { timeoutMs: 2000, protocol: "http" },
    );
    const accepted = await listener.accept();
    assert.equal(conn.remoteAddr.hostname, "127.0.0.2");
    conn.close();
    accepted.close();
    await assert.rejects(
      connectTarget({ host: "a.test", port: deadPort, addresses: ["127.0.0.3"] }, {
        timeoutMs: 2000,
        protocol: "http",
      }),
      (error) => error instanceof UpstreamError && error.code === "refused",
    );
    await assert.rejects(
      connectTarget(
        { host: "a.test", port: listener.addr.port, addresses: ["127.0.0.2"] },
        { timeoutMs: 2000, protocol: "http", isSelf: () => true },
      ),
      (error) => error instanceof UpstreamError && error.code === "self",
    );
  } finally {
    listener.close();
  }
});

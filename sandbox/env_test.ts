import assert from "node:assert/strict";
import { buildChildEnv, filterEnv, proxyEnv } from "./env.ts";

Deno.test("proxyEnv() points every tool at the bridge and leaves only loopback out of it", () => {
  const env = proxyEnv({ httpPort: 3128, socksPort: 1080 });
  for (
    const name of [
      "HTTP_PROXY",
      "HTTPS_PROXY",
      "http_proxy",
      "https_proxy",
      "npm_config_proxy",
      "npm_config_https_proxy",
      "YARN_HTTP_PROXY",
      "YARN_HTTPS_PROXY",
      "PIP_PROXY",
      "GLOBAL_AGENT_HTTP_PROXY",
    ]
  ) {
    assert.equal(env[name], "http://127.0.0.1:3128", name);
  }
  assert.equal(env.ALL_PROXY, "socks5h://127.0.0.1:1080");
  assert.equal(env.all_proxy, "socks5h://127.0.0.1:1080");
  const loopback = "localhost,.localhost,127.0.0.1,127.0.0.0/8,::1";
  assert.equal(env.NO_PROXY, loopback);
  assert.equal(env.no_proxy, loopback);
  assert.equal(env.npm_config_noproxy, loopback);
  assert.equal(env.GLOBAL_AGENT_NO_PROXY, loopback);
  assert.equal(env.NODE_USE_ENV_PROXY, "1");
  assert.match(env.JAVA_TOOL_OPTIONS, /-Dhttps\.proxyHost=127\.0\.0\.1 -Dhttps\.proxyPort=3128/);
  assert.match(
    env.JAVA_TOOL_OPTIONS,
    /-Dhttp\.nonProxyHosts=localhost\|\*\.localhost\|127\.\*\|\[::1\] /,
  );
  assert.match(env.JAVA_TOOL_OPTIONS, /-DsocksNonProxyHosts=localhost\|/);
});

Deno.test("buildChildEnv() replaces the caller's proxy and bypass variables", () => {
  const env = buildChildEnv(
    { PATH: "/bin", https_proxy: "http://corp:8080", No_Proxy: "localhost,127.0.0.1", SECRET: "s" },
    { rules: { allow: null, deny: [] }, ports: { httpPort: 3128, socksPort: 1080 } },
  );
  assert.equal(env.https_proxy, "http://127.0.0.1:3128");
  assert.equal(env.No_Proxy, undefined);
  assert.equal(env.no_proxy, "localhost,.localhost,127.0.0.1,127.0.0.0/8,::1");
  assert.equal(env.SECRET, "s");
  assert.equal(env.PATH, "/bin");
});

Deno.test("buildChildEnv() appends git's http.proxy after the caller's GIT_CONFIG entries", () => {
  const env = buildChildEnv(
    { GIT_CONFIG_COUNT: "1", GIT_CONFIG_KEY_0: "user.name", GIT_CONFIG_VALUE_0: "a" },
    { rules: { allow: null, deny: [] }, ports: { httpPort: 3128, socksPort: 1080 } },
  );
  assert.equal(env.GIT_CONFIG_COUNT, "2");
  assert.equal(env.GIT_CONFIG_KEY_0, "user.name");
  assert.equal(env.GIT_CONFIG_KEY_1, "http.proxy");
  assert.equal(env.GIT_CONFIG_VALUE_1, "http://127.0.0.1:3128");
});

Deno.test("buildChildEnv() without network sets no proxy variables and drops the caller's", () => {
  const env = buildChildEnv({ HTTP_PROXY: "http://corp:8080", HOME: "/h" }, {
    rules: { allow: null, deny: [] },
    ports: null,
    extraEnv: { SSL_CERT_FILE: "/x.pem" },
  });
  assert.deepEqual(env, { HOME: "/h", SSL_CERT_FILE: "/x.pem" });
});

Deno.test("filterEnv() lets deny beat allow and matches whole names", () => {
  const env = { AWS_SECRET_ACCESS_KEY: "k", AWS_REGION: "eu", PATH: "/bin", MYPATH: "x" };
  assert.deepEqual(filterEnv(env, { allow: null, deny: ["AWS_SECRET*"] }), {
    AWS_REGION: "eu",
    PATH: "/bin",
    MYPATH: "x",
  });
  assert.deepEqual(filterEnv(env, { allow: ["AWS_*", "PATH"], deny: ["AWS_SECRET_ACCESS_KEY"] }), {
    AWS_REGION: "eu",
    PATH: "/bin",
  });
});

Deno.test("buildChildEnv() drops CI runner credentials unless env.allow names one exactly", () => {
  const launcher = {
    PATH: "/usr/bin",
    ACTIONS_RUNTIME_TOKEN: "rt",
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: "oidc",
    ACTIONS_ID_TOKEN_REQUEST_URL: "https://x",
    ACTIONS_CACHE_URL: "https://cache",
    ACTIONS_RESULTS_URL: "https://results",
    GITHUB_ACTIONS: "true",
  };
  const open = buildChildEnv(launcher, { rules: { allow: null, deny: [] }, ports: null });
  assert.deepEqual(Object.keys(open).sort(), ["GITHUB_ACTIONS", "PATH"]);
  const globbed = buildChildEnv(launcher, { rules: { allow: ["*"], deny: [] }, ports: null });
  assert.equal(globbed.ACTIONS_RUNTIME_TOKEN, undefined);
  const named = buildChildEnv(launcher, {
    rules: { allow: ["PATH", "ACTIONS_CACHE_URL", "ACTIONS_RUNTIME_TOKEN"], deny: [] },
    ports: null,
  });
  assert.deepEqual(named, {
    PATH: "/usr/bin",
    ACTIONS_CACHE_URL: "https://cache",
    ACTIONS_RUNTIME_TOKEN: "rt",
  });
});

import assert from "node:assert/strict";
import { decideRequest, type DecideRequestOptions, type RequestFacts } from "./decide_request.ts";
import { compileDomainPattern } from "./pattern.ts";
import { compileNetworkPolicy } from "./policy.ts";
import {
  compileRequestRules,
  evaluateRequestRules,
  globToRegExp,
  parseQuery,
} from "./request_rules.ts";
import type { NetworkConfig, RequestRule } from "./types.ts";
import { networkConfig } from "../tests/network_helpers.ts";

interface VectorHook {
  host?: string;
  methods?: string[];
  path_prefixes?: string[];
  query?: Record<string, string[]>;
  headers?: Record<string, string[]>;
  strip_request_headers?: string[];
  inject_request_headers?: {
    name: string;
    secret_env_var?: string;
    secret_file?: string;
    prefix?: string;
  }[];
}

interface Vectors {
  base_hook: Required<Omit<VectorHook, "query" | "headers">>;
  cases: {
    name: string;
    hooks: VectorHook[];
    request?: { host: string; method: string; target: string; headers: Record<string, string> };
    expect: "no_match" | "no_rules" | { matched: number } | { error: string };
  }[];
}

const vectors: Vectors = JSON.parse(
  await Deno.readTextFile(new URL("../testdata/conformance/mitm_hooks.json", import.meta.url)),
);

function toRule(hook: VectorHook, i: number): RequestRule {
  const h = { ...vectors.base_hook, ...hook };
  return {
    name: `hooks.h${i}`,
    host: h.host,
    methods: h.methods,
    paths: h.path_prefixes,
    query: hook.query ?? {},
    headers: hook.headers ?? {},
    stripHeaders: h.strip_request_headers,
    injectHeaders: h.inject_request_headers.map((x) => ({
      name: x.name,
      fromEnv: x.secret_env_var ?? null,
      fromFile: x.secret_file ?? null,
      prefix: x.prefix ?? "",
    })),
    source: "test",
  };
}

for (const c of vectors.cases) {
  Deno.test(`mitm_hooks vector: ${c.name}`, () => {
    const rules = c.hooks.map(toRule);
    const expect = c.expect;
    if (typeof expect === "object" && "error" in expect) {
      assert.throws(() => compileRequestRules(rules), (e: Error) => {
        assert.ok(e.message.includes(expect.error), `${e.message} lacks ${expect.error}`);
        return true;
      });
      return;
    }
    const compiled = compileRequestRules(rules);
    const r = c.request!;
    const out = evaluateRequestRules(compiled, r.host, {
      method: r.method,
      target: r.target,
      headers: Object.entries(r.headers).map(([name, value]) => ({ name, value })),
    });
    if (expect === "no_match" || expect === "no_rules") assert.equal(out.kind, expect);
    else {
      assert.equal(out.kind, "matched");
      assert.equal(out.kind === "matched" ? out.rule : null, rules[expect.matched]);
    }
  });
}

Deno.test("globToRegExp: ** crosses segments on paths, * does not; values let * cross /", () => {
  assert.ok(globToRegExp("/a/**/z", true).test("/a/b/c/z"));
  assert.ok(globToRegExp("/a/**/z", true).test("/a/z"));
  assert.ok(!globToRegExp("/a/*/z", true).test("/a/b/c/z"));
  assert.ok(globToRegExp("a*z", false).test("a/b/z"));
  assert.ok(globToRegExp("/v{1,2}/x", true).test("/v2/x"));
  assert.ok(!globToRegExp("/v{1,2}/x", true).test("/v3/x"));
  assert.ok(globToRegExp("/[!a]b", true).test("/cb"));
  assert.ok(!globToRegExp("/[!a]b", true).test("/ab"));
});

Deno.test("parseQuery form-decodes keys and values, keeps repeats", () => {
  assert.deepEqual(
    [...parseQuery("a=1&a=2&b=x+y&c=%41&d")],
    [["a", ["1", "2"]], ["b", ["x y"]], ["c", ["A"]], ["d", [""]]],
  );
});

function net(rules: RequestRule[]): NetworkConfig {
  return networkConfig({
    mitm: true,
    domains: [
      { pattern: "registry.test", action: "allow", source: "t" },
      { pattern: "other.test", action: "allow", source: "t" },
    ],
    requestRules: rules,
  });
}

const READ: RequestRule = {
  name: 'requests."registry.test"',
  host: "registry.test",
  methods: ["GET", "HEAD", "OPTIONS"],
  paths: ["/"],
  query: {},
  headers: {},
  stripHeaders: [],
  injectHeaders: [],
  source: "t",
};

function opts(over: Partial<DecideRequestOptions> = {}): DecideRequestOptions {
  return {
    policy: compileNetworkPolicy(net([READ])),
    resolver: () => Promise.resolve(["8.8.8.8"]),
    socksEnabled: true,
    mitm: true,
    ...over,
  };
}

const TUNNEL = {
  host: "registry.test",
  port: 443,
  addresses: ["8.8.8.8"],
  rule: "registry.test",
  ruleSource: "t",
};

function inside(method: string, extra: Partial<RequestFacts> = {}): RequestFacts {
  return {
    door: "mitm",
    host: "registry.test",
    port: 443,
    method,
    tunnel: TUNNEL,
    target: "/pkg",
    headers: [],
    ...extra,
  };
}

Deno.test("decideRequest: a hooked host in full mode lets a matching request through, names the rule", async () => {
  const v = await decideRequest(inside("GET"), opts());
  assert.equal(v.decision, "allow");
  assert.equal(v.rule, 'requests."registry.test"');
  assert.equal(v.decision === "allow" ? v.requestRule : null, READ);
});

Deno.test("decideRequest: a hooked host refuses a request no rule matches (mitm_hook_denied, request_rules)", async () => {
  for (const method of ["PUT", "POST", "DELETE"]) {
    const v = await decideRequest(inside(method), opts());
    assert.equal(v.decision, "deny");
    assert.equal(v.reason, "mitm_hook_denied");
    assert.equal(v.source, "request_rules");
  }
  // Plain HTTP to the hooked host goes through the same guard.
  const plain = await decideRequest(
    { door: "http", host: "registry.test", port: 80, method: "POST", target: "/x" },
    opts(),
  );
  assert.equal(plain.reason, "mitm_hook_denied");
});

Deno.test("decideRequest: hosts without rules are untouched in full mode", async () => {
  const v = await decideRequest(
    { door: "http", host: "other.test", port: 80, method: "POST", target: "/x" },
    opts(),
  );
  assert.equal(v.decision, "allow");
});

Deno.test("decideRequest: CONNECT to a hooked host needs MITM; SOCKS5 to it is refused", async () => {
  const connect = {
    door: "https-connect",
    host: "registry.test",
    port: 443,
    method: null,
  } as const;
  assert.equal((await decideRequest(connect, opts())).decision, "allow");
  const noCa = await decideRequest(connect, opts({ mitm: false }));
  assert.equal(noCa.reason, "mitm_required");
  assert.equal(noCa.source, "request_rules");
  const socks = await decideRequest({ ...connect, door: "socks5" }, opts());
  assert.equal(socks.reason, "mitm_required");
  const otherSocks = await decideRequest(
    { ...connect, door: "socks5", host: "other.test" },
    opts(),
  );
  assert.equal(otherSocks.decision, "allow");
});

Deno.test("decideRequest: a secret's placeholder goes only to its bound hosts, never in a URL", async () => {
  const secrets = [{
    name: "NPM_TOKEN",
    placeholder: "npm_PLACEHOLDERxxxxxxxxxxxxxxxxxxxxxxxx",
    hosts: [compileDomainPattern("registry.test", "allow")],
  }];
  const bearer = [{ name: "Authorization", value: `Bearer ${secrets[0].placeholder}` }];
  const ok = await decideRequest(inside("GET", { headers: bearer }), opts({ secrets }));
  assert.equal(ok.decision, "allow");
  assert.deepEqual(ok.decision === "allow" ? ok.secrets : null, ["NPM_TOKEN"]);
  const basic = [{ name: "Authorization", value: `Basic ${btoa(`u:${secrets[0].placeholder}`)}` }];
  const other = await decideRequest(
    { door: "http", host: "other.test", port: 80, method: "GET", target: "/", headers: basic },
    opts({ secrets }),
  );
  assert.equal(other.reason, "secret_wrong_host");
  assert.equal(other.source, "secrets");
  assert.ok(!JSON.stringify(other).includes(secrets[0].placeholder));
  const inUrl = await decideRequest(
    inside("GET", { target: `/pkg?t=${secrets[0].placeholder}` }),
    opts({ secrets }),
  );
  assert.equal(inUrl.reason, "secret_wrong_host");
});

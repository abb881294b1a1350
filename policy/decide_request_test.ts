import assert from "node:assert/strict";
import {
  decideRequest,
  type DecideRequestOptions,
  isOwnListener,
  type RequestFacts,
  type RequestVerdict,
  sameHost,
} from "./decide_request.ts";
import { compileNetworkPolicy } from "./policy.ts";
import { DENY_REASON_NAMES } from "./reasons.ts";
import type { NetworkConfig, NetworkMode } from "./types.ts";
import { networkConfig } from "../tests/network_helpers.ts";

const NAMES: Record<string, string[]> = {
  "allowed.test": ["8.8.8.8"],
  "private.test": ["10.0.0.5"],
  "asked.test": ["8.8.4.4"],
  "asked-private.test": ["192.168.1.9"],
  "self.test": ["127.0.0.1"],
};

function network(mode: NetworkMode, enabled: boolean): NetworkConfig {
  const rule = (pattern: string, action: "allow" | "deny") => ({ pattern, action, source: "t" });
  return networkConfig({
    enabled,
    mode,
    domains: [
      rule("allowed.test", "allow"),
      rule("*.wild.test", "allow"),
      rule("private.test", "allow"),
      rule("gone.test", "allow"),
      rule("self.test", "allow"),
      rule("192.0.2.7", "allow"),
      rule("127.0.0.1", "allow"),
      rule("bad.allowed.test", "deny"),
      rule("**.wild.test", "allow"),
      rule("evil.wild.test", "deny"),
    ],
  });
}

interface Setup {
  mode?: NetworkMode;
  enabled?: boolean;
  socks?: boolean;
  mitm?: boolean;
  ask?: "allow" | "deny" | "throw";
  unixThrows?: boolean;
  sandboxLoopback?: boolean;
}

function options(setup: Setup, calls: string[]): DecideRequestOptions {
  return {
    policy: compileNetworkPolicy(network(setup.mode ?? "full", setup.enabled ?? true)),
    resolver: (host) => {
      calls.push(`resolve ${host}`);
      const found = NAMES[host];
      return found ? Promise.resolve(found) : Promise.reject(new Error(`ENOTFOUND ${host}`));
    },
    sandboxLoopback: setup.sandboxLoopback,
    socksEnabled: setup.socks ?? true,
    mitm: setup.mitm ?? false,
    ownListeners: { ports: new Set([3128]), addresses: new Set(["192.0.2.7"]) },
    checkUnixSocket: (path) => {
      calls.push(`unix ${path}`);
      if (setup.unixThrows) throw new Error("stat failed");
      return Promise.resolve(
        path === "/run/ok.sock"
          ? { allowed: true, canonical: "/run/ok.sock", rule: "/run/ok.sock", ruleSource: "t" }
          : { allowed: false, detail: `unix socket "${path}" is not allowlisted` },
      );
    },
    ask: setup.ask === undefined ? undefined : (question) => {
      calls.push(`ask ${question.host}`);
      if (setup.ask === "throw") return Promise.reject(new Error("terminal gone"));
      return Promise.resolve(setup.ask as "allow" | "deny");
    },
  };
}

const TUNNEL = {
  host: "allowed.test",
  port: 443,
  addresses: ["8.8.8.8"],
  rule: "allowed.test",
  ruleSource: "t",
};

const http = (host: string, method = "GET", extra: Partial<RequestFacts> = {}): RequestFacts => ({
  door: "http",
  host,
  port: 80,
  method,
  ...extra,
});
const connect = (host: string, port = 443, extra: Partial<RequestFacts> = {}): RequestFacts => ({
  door: "https-connect",
  host,
  port,
  method: null,
  ...extra,
});
const socks = (host: string, port = 443): RequestFacts => ({
  door: "socks5",
  host,
  port,
  method: null,
});
const inner = (host: string, port = 443, extra: Partial<RequestFacts> = {}): RequestFacts => ({
  door: "mitm",
  host,
  port,
  method: "GET",
  tunnel: TUNNEL,
  ...extra,
});

interface Row {
  readonly name: string;
  readonly request: RequestFacts;
  readonly setup?: Setup;
  /** decision/reason/source expected; `calls` the helpers called, in order. */
  readonly want: [RequestVerdict["decision"], string, string];
  readonly calls?: string[];
  readonly addresses?: string[];
}

// One row (at least) per guard and door, and the precedence between guards.
const ROWS: Row[] = [
  // 1. proxy state: network off
  {
    name: "network off refuses before anything is looked up",
    request: http("allowed.test"),
    setup: { enabled: false },
    want: ["deny", "proxy_disabled", "proxy_state"],
    calls: [],
  },
  {
    name: "network off refuses an allowlisted unix socket too",
    request: http("docker", "GET", { unixSocket: "/run/ok.sock" }),
    setup: { enabled: false },
    want: ["deny", "proxy_disabled", "proxy_state"],
    calls: [],
  },
  // 2. proxy state: closed doors
  {
    name: "SOCKS5 off refuses an allowed host without a lookup",
    request: socks("allowed.test"),
    setup: { socks: false },
    want: ["deny", "socks_disabled", "proxy_state"],
    calls: [],
  },
  {
    name: "SOCKS5 on lets the allowed host through",
    request: socks("allowed.test"),
    want: ["allow", "allowed", "baseline_policy"],
    calls: ["resolve allowed.test"],
    addresses: ["8.8.8.8"],
  },
  {
    name: "x-unix-socket on CONNECT is refused before the allowlist",
    request: connect("allowed.test", 443, { unixSocket: "/run/ok.sock" }),
    want: ["deny", "unix_socket_unsupported", "proxy_state"],
    calls: [],
  },
  // 3. request check
  {
    name: "port 0 is refused",
    request: socks("allowed.test", 0),
    want: ["deny", "invalid_port", "request_check"],
    calls: [],
  },
  {
    name: "port 65536 is refused",
    request: connect("allowed.test", 65536),
    want: ["deny", "invalid_port", "request_check"],
    calls: [],
  },
  {
    name: "inside MITM, another host is a mismatch",
    request: inner("evil.test"),
    want: ["deny", "host_mismatch", "request_check"],
  },
  {
    name: "inside MITM, another port is a mismatch",
    request: inner("allowed.test", 8443),
    want: ["deny", "host_mismatch", "request_check"],
  },
  {
    name: "inside MITM, no host is a mismatch",
    request: inner("", 0),
    want: ["deny", "host_mismatch", "request_check"],
  },
  {
    name: "inside MITM, the tunnel's host in another spelling passes",
    request: inner("ALLOWED.test."),
    want: ["allow", "allowed", "baseline_policy"],
    calls: [],
    addresses: ["8.8.8.8"],
  },
  // 4. baseline policy
  {
    name: "a deny rule",
    request: connect("bad.allowed.test"),
    want: ["deny", "denied", "baseline_policy"],
    calls: [],
  },
  {
    name: "deny beats a wildcard allow",
    request: connect("evil.wild.test"),
    want: ["deny", "denied", "baseline_policy"],
  },
  {
    name: "no allow rule",
    request: http("nowhere.test"),
    want: ["deny", "not_allowed", "baseline_policy"],
    calls: [],
  },
  {
    name: "a private IP literal",
    request: http("10.1.2.3"),
    want: ["deny", "not_allowed_local", "baseline_policy"],
  },
  {
    name: "an allowed name that resolves to a private address is allowed by its exact rule",
    request: http("private.test"),
    want: ["allow", "allowed", "baseline_policy"],
    addresses: ["10.0.0.5"],
  },
  {
    name: "an allowed name that does not resolve",
    request: http("gone.test"),
    want: ["deny", "resolve_failed", "baseline_policy"],
    calls: ["resolve gone.test"],
  },
  {
    name: "x-unix-socket not on the allowlist",
    request: http("docker", "GET", { unixSocket: "/run/other.sock" }),
    want: ["deny", "unix_socket_not_allowed", "baseline_policy"],
    calls: ["unix /run/other.sock"],
  },
  {
    name: "x-unix-socket on the allowlist, the URL's host not judged",
    request: http("nowhere.test", "GET", { unixSocket: "/run/ok.sock" }),
    want: ["allow", "allowed", "baseline_policy"],
    calls: ["unix /run/ok.sock"],
    addresses: [],
  },
  {
    name: "a loopback literal a rule allows, when the sandbox's loopback is its own",
    request: connect("127.0.0.1", 8080),
    setup: { sandboxLoopback: true },
    want: ["deny", "not_allowed_local", "baseline_policy"],
    calls: [],
  },
  {
    name: "the same literal outside a sandbox follows the rules",
    request: connect("127.0.0.1", 8080),
    want: ["allow", "allowed", "baseline_policy"],
  },
  // 5. mode guard
  {
    name: "limited: POST",
    request: http("allowed.test", "POST"),
    setup: { mode: "limited" },
    want: ["deny", "method_not_allowed", "mode_guard"],
  },
  {
    name: "limited: GET passes",
    request: http("allowed.test", "GET"),
    setup: { mode: "limited" },
    want: ["allow", "allowed", "baseline_policy"],
  },
  {
    name: "limited: a websocket upgrade on GET",
    request: http("allowed.test", "GET", { upgrade: "websocket" }),
    setup: { mode: "limited" },
    want: ["deny", "method_not_allowed", "mode_guard"],
  },
  {
    name: "full: a websocket upgrade passes",
    request: http("allowed.test", "GET", { upgrade: "websocket" }),
    want: ["allow", "allowed", "baseline_policy"],
  },
  {
    name: "limited: a body on GET",
    request: http("allowed.test", "GET", { body: true }),
    setup: { mode: "limited" },
    want: ["deny", "method_not_allowed", "mode_guard"],
  },
  {
    name: "limited: SOCKS5",
    request: socks("allowed.test"),
    setup: { mode: "limited" },
    want: ["deny", "method_not_allowed", "mode_guard"],
  },
  {
    name: "limited: HTTPS without MITM",
    request: connect("allowed.test"),
    setup: { mode: "limited" },
    want: ["deny", "mitm_required", "mode_guard"],
  },
  {
    name: "limited: HTTPS with MITM",
    request: connect("allowed.test"),
    setup: { mode: "limited", mitm: true },
    want: ["allow", "allowed", "baseline_policy"],
  },
  {
    name: "limited: POST over x-unix-socket",
    request: http("docker", "POST", { unixSocket: "/run/ok.sock" }),
    setup: { mode: "limited" },
    want: ["deny", "method_not_allowed", "mode_guard"],
  },
  {
    name: "inside MITM: CONNECT, whatever host it names",
    request: inner("evil.test", 443, { method: "CONNECT" }),
    want: ["deny", "method_not_allowed", "mode_guard"],
  },
  {
    name: "inside MITM: an upgrade, even in full mode",
    request: inner("allowed.test", 443, { upgrade: "websocket" }),
    want: ["deny", "method_not_allowed", "mode_guard"],
  },
  {
    name: "inside MITM, limited: POST",
    request: inner("allowed.test", 443, { method: "POST" }),
    setup: { mode: "limited" },
    want: ["deny", "method_not_allowed", "mode_guard"],
  },
  {
    name: "inside MITM, limited: a body on GET",
    request: inner("allowed.test", 443, { body: true }),
    setup: { mode: "limited" },
    want: ["deny", "method_not_allowed", "mode_guard"],
  },
  {
    name: "inside MITM: malformed framing",
    request: inner("allowed.test", 443, { malformed: "two Content-Length values" }),
    want: ["deny", "bad_request", "request_check"],
  },
  // 6. decider
  {
    name: "a miss is asked about; yes admits it",
    request: connect("asked.test"),
    setup: { ask: "allow" },
    want: ["allow", "allowed", "decider"],
    calls: ["ask asked.test", "resolve asked.test"],
    addresses: ["8.8.4.4"],
  },
  {
    name: "a miss is asked about; no refuses it",
    request: connect("asked.test"),
    setup: { ask: "deny" },
    want: ["deny", "not_allowed", "decider"],
    calls: ["ask asked.test"],
  },
  {
    name: "a decider that fails refuses",
    request: connect("asked.test"),
    setup: { ask: "throw" },
    want: ["deny", "not_allowed", "decider"],
  },
  {
    name: "yes does not unlock a private DNS answer",
    request: connect("asked-private.test"),
    setup: { ask: "allow" },
    want: ["deny", "not_allowed_local", "decider"],
  },
  {
    name: "nobody is asked about a request the mode guard refuses",
    request: http("asked.test", "POST"),
    setup: { mode: "limited", ask: "allow" },
    want: ["deny", "not_allowed", "baseline_policy"],
    calls: [],
  },
  {
    name: "nobody is asked about a denied host",
    request: connect("bad.allowed.test"),
    setup: { ask: "allow" },
    want: ["deny", "denied", "baseline_policy"],
    calls: [],
  },
  // 7. own listeners
  {
    name: "a name that resolves to loopback on the proxy's port",
    request: connect("self.test", 3128),
    setup: {},
    want: ["deny", "own_listener", "proxy_state"],
  },
  {
    name: "a host interface address on the proxy's port",
    request: connect("192.0.2.7", 3128),
    want: ["deny", "own_listener", "proxy_state"],
  },
  {
    name: "the same address on another port",
    request: connect("192.0.2.7", 3129),
    want: ["allow", "allowed", "baseline_policy"],
  },
  // Fail closed
  {
    name: "a guard that throws",
    request: http("docker", "GET", { unixSocket: "/run/ok.sock" }),
    setup: { unixThrows: true },
    want: ["deny", "policy_error", "proxy_state"],
  },
];

for (const row of ROWS) {
  Deno.test(`decideRequest() ${row.name}`, async () => {
    const calls: string[] = [];
    const verdict = await decideRequest(row.request, options(row.setup ?? {}, calls));
    assert.deepEqual(
      [verdict.decision, verdict.reason, verdict.source],
      row.want,
      JSON.stringify(verdict),
    );
    if (row.calls !== undefined) assert.deepEqual(calls, row.calls);
    if (row.addresses !== undefined) {
      assert.deepEqual(verdict.decision === "allow" && [...verdict.addresses], row.addresses);
    }
    assert.ok(verdict.reason === "allowed" || DENY_REASON_NAMES.includes(verdict.reason));
  });
}

Deno.test("decideRequest() logs a unix socket as unix:PATH on port 0 and carries its canonical path", async () => {
  const verdict = await decideRequest(
    http("docker", "GET", { unixSocket: "/run/ok.sock" }),
    options({}, []),
  );
  assert.equal(verdict.host, "unix:/run/ok.sock");
  assert.equal(verdict.port, 0);
  assert.equal(verdict.decision === "allow" && verdict.unixSocket, "/run/ok.sock");
  assert.equal(verdict.rule, "/run/ok.sock");
});

Deno.test("decideRequest() without an ask hook leaves a miss with the baseline policy", async () => {
  const verdict = await decideRequest(connect("asked.test"), options({}, []));
  assert.deepEqual([verdict.reason, verdict.source], ["not_allowed", "baseline_policy"]);
});

Deno.test("isOwnListener() recognises loopback, wildcard, mapped and interface spellings on a listener port", () => {
  const own = { ports: new Set([3128]), addresses: new Set(["192.0.2.7", "2001:db8::7"]) };
  for (const address of ["127.0.0.1", "127.8.9.1", "0.0.0.0", "::1", "::", "::ffff:127.0.0.1"]) {
    assert.ok(isOwnListener(address, 3128, own), address);
  }
  assert.ok(isOwnListener("192.0.2.7", 3128, own));
  assert.ok(isOwnListener("::ffff:192.0.2.7", 3128, own));
  assert.ok(isOwnListener("2001:db8::7", 3128, own));
  assert.ok(isOwnListener("not-an-address", 3128, own), "refuse rather than guess");
  assert.ok(!isOwnListener("127.0.0.1", 3129, own));
  assert.ok(!isOwnListener("8.8.8.8", 3128, own));
});

Deno.test("isOwnListener() with a listener bound to one address: that address and the unspecified one are its own, another loopback address with the same port is not", () => {
  const own = {
    ports: new Set([3128, 1080]),
    addresses: new Set(["192.0.2.7"]),
    bound: new Map([[3128, "127.0.0.1"], [1080, "0.0.0.0"]]),
  };
  for (const address of ["127.0.0.1", "::ffff:127.0.0.1", "0.0.0.0", "::"]) {
    assert.ok(isOwnListener(address, 3128, own), address);
  }
  for (const address of ["127.0.0.2", "127.8.9.1", "::1", "192.0.2.7"]) {
    assert.ok(!isOwnListener(address, 3128, own), address);
  }
  assert.ok(isOwnListener("not-an-address", 3128, own), "refuse rather than guess");
  // A wildcard listener is reached at every local address.
  for (const address of ["127.0.0.2", "::1", "192.0.2.7", "0.0.0.0"]) {
    assert.ok(isOwnListener(address, 1080, own), address);
  }
});

Deno.test("sameHost() compares case, trailing dots, brackets and IPv6 spellings", () => {
  assert.ok(sameHost("Example.COM.", "example.com"));
  assert.ok(sameHost("[::1]", "0:0::1"));
  assert.ok(sameHost("::ffff:7f00:1", "::ffff:127.0.0.1"));
  assert.ok(!sameHost("example.com", "example.org"));
  assert.ok(!sameHost("", "example.com"));
});

Deno.test("decideRequest() captured doors: the presented name must be the host, before any lookup; limited mode as for CONNECT", async () => {
  const decide = async (facts: RequestFacts, setup: Setup = {}) => {
    const calls: string[] = [];
    return { verdict: await decideRequest(facts, options(setup, calls)), calls };
  };
  const tls = (serverName: string | null, host = "allowed.test"): RequestFacts => ({
    door: "captured-tls",
    host,
    port: 443,
    method: null,
    serverName,
  });
  const ok = await decide(tls("Allowed.TEST."));
  assert.equal(ok.verdict.decision, "allow");
  assert.deepEqual(ok.calls, ["resolve allowed.test"]);
  for (const name of ["other.test", null]) {
    const { verdict, calls } = await decide(tls(name));
    assert.equal(verdict.decision, "deny");
    assert.equal(verdict.reason, "host_mismatch");
    assert.equal(verdict.source, "request_check");
    assert.deepEqual(calls, []);
  }
  // A literal address needs no name.
  assert.equal((await decide(tls(null, "192.0.2.7"))).verdict.decision, "allow");
  const httpMismatch = await decide({
    door: "captured-http",
    host: "allowed.test",
    port: 80,
    method: "GET",
    serverName: "private.test",
  });
  assert.equal(httpMismatch.verdict.reason, "host_mismatch");
  const limitedTls = await decide(tls("allowed.test"), { mode: "limited" });
  assert.equal(limitedTls.verdict.reason, "mitm_required");
  assert.equal(
    (await decide(tls("allowed.test"), { mode: "limited", mitm: true })).verdict.decision,
    "allow",
  );
  const tcp = await decide(
    { door: "captured-tcp", host: "allowed.test", port: 22, method: null },
    { mode: "limited" },
  );
  assert.equal(tcp.verdict.reason, "method_not_allowed");
});

// ---- report mode ----

function reportOptions(mode: NetworkMode, calls: string[], extra: Partial<NetworkConfig> = {}) {
  const base = network(mode, true);
  const policy = compileNetworkPolicy({
    ...base,
    ...extra,
    domains: [
      ...base.domains,
      { pattern: "managed-deny.test", action: "deny", source: "managed:/etc/sandbox/r.toml" },
    ],
    enforcement: "report",
  });
  const names: Record<string, string[]> = {
    ...NAMES,
    "other.test": ["8.8.8.9"],
    "managed-deny.test": ["8.8.8.10"],
    "inside.test": ["10.1.2.3"],
    "bad.allowed.test": ["8.8.8.11"],
  };
  return {
    ...options({ mode }, calls),
    policy,
    resolver: (host: string) => {
      calls.push(`resolve ${host}`);
      return names[host] ? Promise.resolve(names[host]) : Promise.reject(new Error("ENOTFOUND"));
    },
    ask: () => {
      calls.push("asked");
      return Promise.resolve("deny" as const);
    },
  };
}

Deno.test("decideRequest() in report mode lets host and method refusals through as would-block", async () => {
  const calls: string[] = [];
  const connect = (host: string, port = 443): RequestFacts => ({
    door: "https-connect",
    host,
    port,
    method: null,
  });
  const miss = await decideRequest(connect("other.test"), reportOptions("full", calls));
  assert.equal(miss.decision, "allow");
  assert.deepEqual(miss.decision === "allow" ? miss.addresses : null, ["8.8.8.9"]);
  assert.equal(miss.decision === "allow" ? miss.wouldBlock?.reason : null, "not_allowed");
  assert.equal(miss.decision === "allow" ? miss.wouldBlock?.source : null, "baseline_policy");
  assert.ok(!calls.includes("asked"), "no one is asked in report mode");

  const userDeny = await decideRequest(connect("bad.allowed.test"), reportOptions("full", calls));
  assert.equal(userDeny.decision, "allow");
  assert.equal(userDeny.decision === "allow" ? userDeny.wouldBlock?.reason : null, "denied");
  assert.equal(userDeny.rule, "bad.allowed.test");

  const post = await decideRequest(
    { door: "http", host: "allowed.test", port: 80, method: "POST" },
    reportOptions("limited", calls),
  );
  assert.equal(post.decision, "allow");
  assert.equal(post.decision === "allow" ? post.wouldBlock?.source : null, "mode_guard");
  assert.equal(post.decision === "allow" ? post.wouldBlock?.reason : null, "method_not_allowed");

  // An allowed request carries no would-block.
  const plain = await decideRequest(connect("allowed.test"), reportOptions("full", calls));
  assert.equal(plain.decision === "allow" ? plain.wouldBlock : "deny", undefined);
});

Deno.test("decideRequest() in report mode keeps the floors: managed denies, local addresses, closed doors", async () => {
  const calls: string[] = [];
  const managed = await decideRequest(
    { door: "https-connect", host: "managed-deny.test", port: 443, method: null },
    reportOptions("full", calls),
  );
  assert.equal(managed.decision, "deny");
  assert.equal(managed.reason, "denied");
  assert.ok(!calls.includes("resolve managed-deny.test"), "a managed deny is never looked up");

  const local = await decideRequest(
    { door: "https-connect", host: "inside.test", port: 443, method: null },
    reportOptions("full", calls),
  );
  assert.equal(local.decision, "deny");
  assert.equal(local.reason, "not_allowed_local");
  assert.match(local.decision === "deny" ? local.detail : "", /enforced in report mode too/);

  const literal = await decideRequest(
    { door: "http", host: "10.9.9.9", port: 80, method: "GET" },
    reportOptions("full", calls),
  );
  assert.equal(literal.reason, "not_allowed_local");

  const socks = await decideRequest(
    { door: "socks5", host: "other.test", port: 443, method: null },
    { ...reportOptions("full", calls), socksEnabled: false },
  );
  assert.equal(socks.reason, "socks_disabled");

  const own = await decideRequest(
    { door: "http", host: "192.0.2.7", port: 3128, method: "GET" },
    reportOptions("full", calls),
  );
  assert.equal(own.reason, "own_listener");
});

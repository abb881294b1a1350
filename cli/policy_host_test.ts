import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import { formatHostDecision, policyHostCommand } from "./policy_host.ts";
import { tempDir } from "../tests/cli_helpers.ts";

/** Runs the command in-process with an isolated config home and a resolver that refuses DNS. */
async function run(args: string[]): Promise<{ code: number; out: string; lookups: string[] }> {
  await using tmp = await tempDir("sandbox_policy_host_");
  const home = tmp.path;
  const lookups: string[] = [];
  let out = "";
  await Deno.writeTextFile(`${home}/managed.toml`, "");
  const code = await policyHostCommand(args, {
    stdout: (text) => void (out += text),
    env: { HOME: home, XDG_CONFIG_HOME: home, SANDBOX_MANAGED_CONFIG: `${home}/managed.toml` },
    cwd: home,
    resolver: (host) => {
      lookups.push(host);
      return Promise.reject(new Error(`Cannot resolve "${host}": ENOTFOUND`));
    },
  });
  return { code, out, lookups };
}

Deno.test("policyHostCommand() prints the four CLI.md fields first and exits 0 when allowed", async () => {
  const r = await run([
    "--json",
    "--allow",
    "*.example.com",
    "--resolve",
    "a.example.com=8.8.8.8",
    "A.example.com:443",
  ]);
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.out), {
    host: "a.example.com",
    decision: "allow",
    reason: "allowed",
    rule: "*.example.com",
    source: "flag:--allow",
    port: 443,
    addresses: ["8.8.8.8"],
  });
  assert.deepEqual(r.lookups, []);
});

Deno.test("policyHostCommand() exits 1 with reason resolve_failed when an allowed name does not resolve", async () => {
  const r = await run(["--json", "--allow", "gone.example.com", "gone.example.com"]);
  assert.equal(r.code, 1);
  const json = JSON.parse(r.out);
  assert.equal(json.reason, "resolve_failed");
  assert.equal(json.x_proxy_error, "blocked-by-policy");
  assert.match(json.detail, /^name did not resolve/);
  assert.deepEqual(r.lookups, ["gone.example.com"]);
});

Deno.test("policyHostCommand() prints a human explanation without --json", async () => {
  const r = await run(["--allow", "example.com", "0x7f.1"]);
  assert.equal(r.code, 1);
  assert.match(
    r.out,
    /^deny 0x7f\.1: not_allowed_local \(Sandbox policy blocks local\/private network addresses\)\n/,
  );
  assert.match(r.out, /127\.0\.0\.0\/8 \(loopback\)/);
  assert.match(r.out, /x-proxy-error: blocked-by-allowlist/);
});

Deno.test("policyHostCommand() rejects a missing host, two hosts and a bad --resolve", async () => {
  for (
    const args of [["--json"], ["a.test", "b.test"], ["--resolve", "a.test", "a.test"], [
      "--bogus",
      "a.test",
    ]]
  ) {
    await assert.rejects(run(args), (error: unknown) => {
      assert.ok(error instanceof UsageError, JSON.stringify(args));
      assert.equal(error.command, "policy host");
      return true;
    });
  }
});

Deno.test("formatHostDecision() names the rule and its source", () => {
  const text = formatHostDecision({
    decision: "allow",
    reason: "allowed",
    host: "a.test",
    rule: "**.a.test",
    source: "flag:--allow",
    addresses: ["8.8.8.8", "2606:4700::1111"],
  }, null);
  assert.equal(
    text,
    'allow a.test\n  rule:      "**.a.test" from flag:--allow\n  addresses: 8.8.8.8, 2606:4700::1111',
  );
});

Deno.test("policyHostCommand() shows the tls:// rule that marks HOST:PORT as TLS, and nothing on another port", async () => {
  const common = ["--allow", "tls://registry.example:8443", "--allow", "registry.example:8080"];
  const pin = ["--resolve", "registry.example=8.8.8.8"];
  const text = await run([...common, ...pin, "registry.example:8443"]);
  assert.equal(text.code, 0);
  assert.match(
    text.out,
    /\n {2}tls: +"tls:\/\/registry\.example:8443" marks port 8443 as TLS: a captured connection's server name must be registry\.example\n$/,
  );
  const json = await run(["--json", ...common, ...pin, "registry.example:8443"]);
  assert.equal(JSON.parse(json.out).tls_rule, "tls://registry.example:8443");
  assert.equal(JSON.parse(json.out).rule, "tls://registry.example:8443");
  const plain = await run(["--json", ...common, ...pin, "registry.example:8080"]);
  assert.equal(plain.code, 0);
  assert.equal(JSON.parse(plain.out).tls_rule, undefined);
  assert.doesNotMatch((await run([...common, ...pin, "registry.example:8080"])).out, /tls:/);
});

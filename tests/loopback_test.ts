/**
 * Loopback is the sandbox's own (real bwrap, real clients): a server the
 * command starts on 127.0.0.1 / localhost / ::1 is reached from a second
 * process inside, directly (the proxy variables leave loopback out); the
 * host's loopback service is unreachable from inside, also when a rule
 * allows 127.0.0.1 and also through the proxy, and reachable only as
 * `host.sandbox.internal:PORT` with a rule allowing that alias.
 */
import assert from "node:assert/strict";
import { hasProgram, parseLines, sandboxCli, startHttpServer } from "./run_helpers.ts";

const READY = hasProgram("/usr/bin/bwrap") && hasProgram("/usr/bin/curl") &&
  hasProgram("/usr/bin/node");

const SERVER = `
const http = require("node:http");
const host = process.argv[1];
const server = http.createServer((req, res) => res.end("own-" + host));
server.listen(0, host, () => {
  require("node:fs").writeFileSync(process.argv[2], String(server.address().port));
});
setTimeout(() => server.close(), 60000).unref();
`;

Deno.test({
  name:
    "sandbox run: a server the command starts on 127.0.0.1, localhost and ::1 is reached from a second process inside",
  ignore: !READY,
  async fn() {
    const script = [
      `node -e '${SERVER}' 127.0.0.1 /tmp/p4 & node -e '${SERVER}' ::1 /tmp/p6 &`,
      "for i in $(seq 1 200); do [ -s /tmp/p4 ] && [ -s /tmp/p6 ] && break; sleep 0.05; done",
      "P4=$(cat /tmp/p4); P6=$(cat /tmp/p6)",
      'echo "curl4=$(curl -s -m 10 http://127.0.0.1:$P4/)"',
      'echo "curl_localhost=$(curl -s -m 10 http://localhost:$P4/)"',
      'echo "curl6=$(curl -s -m 10 http://[::1]:$P6/)"',
      `echo "node_get=$(node -e 'require("node:http").get("http://localhost:" + process.argv[1], (r) => r.pipe(process.stdout))' $P4)"`,
      `echo "node_fetch=$(node -e 'fetch("http://127.0.0.1:" + process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t))' $P4)"`,
      "kill $(jobs -p) 2>/dev/null; true",
    ].join("\n");
    // Network on (an allow rule), so the proxy variables are set: loopback must stay out of them.
    const result = await sandboxCli(
      ["run", "--allow", "example.test", "--", "sh", "-c", script],
      { timeoutMs: 90_000 },
    );
    assert.equal(result.code, 0, result.stderr);
    const out = parseLines(result.stdout);
    assert.equal(out.get("curl4"), "own-127.0.0.1", result.stdout + result.stderr);
    assert.equal(out.get("curl_localhost"), "own-127.0.0.1");
    assert.equal(out.get("curl6"), "own-::1");
    assert.equal(out.get("node_get"), "own-127.0.0.1");
    assert.equal(out.get("node_fetch"), "own-127.0.0.1");
    assert.doesNotMatch(result.stderr, /sandbox: blocked/);
  },
});

Deno.test({
  name:
    "sandbox run: the host's loopback service is unreachable, even with 127.0.0.1 allowed, and reachable as host.sandbox.internal:PORT with a rule",
  ignore: !READY,
  async fn() {
    await using server = startHttpServer("host-service");
    const p = server.port;
    const script = [
      `curl -s -m 5 http://127.0.0.1:${p}/ >/dev/null; echo "direct=$?"`,
      `echo "via_proxy=$(curl -s -m 5 -o /dev/null -w '%{http_code}' --noproxy '' -x "$HTTP_PROXY" http://127.0.0.1:${p}/)"`,
      `echo "localhost_via_proxy=$(curl -s -m 5 -o /dev/null -w '%{http_code}' --noproxy '' -x "$HTTP_PROXY" http://localhost:${p}/)"`,
      `echo "alias=$(curl -s -m 5 -o /tmp/body -w '%{http_code}' http://host.sandbox.internal:${p}/) $(head -c 12 /tmp/body)"`,
    ].join("\n");
    const run = (rules: string[]) =>
      sandboxCli(["run", ...rules, "--", "sh", "-c", script], { timeoutMs: 90_000 });

    const before = server.accepted();
    const without = await run(["--allow", "127.0.0.1", "--allow", "localhost"]);
    assert.equal(without.code, 0, without.stderr);
    let out = parseLines(without.stdout);
    assert.equal(out.get("direct"), "7", "the sandbox's own loopback: nothing listens there");
    assert.equal(out.get("via_proxy"), "403");
    assert.equal(out.get("localhost_via_proxy"), "403");
    assert.match(out.get("alias") ?? "", /^403 /);
    assert.equal(server.accepted(), before, "nothing reached the host's service");
    assert.match(
      without.stderr,
      new RegExp(`sandbox: blocked GET 127\\.0\\.0\\.1:${p} not_allowed_local `),
    );

    const withRule = await run(["--allow", `host.sandbox.internal:${p}`]);
    assert.equal(withRule.code, 0, withRule.stderr);
    out = parseLines(withRule.stdout);
    assert.equal(out.get("direct"), "7");
    assert.equal(out.get("via_proxy"), "403");
    assert.equal(out.get("alias"), "200 host-service", withRule.stderr);
    assert.equal(server.accepted(), before + 1, "only the alias reached the host's service");
  },
});

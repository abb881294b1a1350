import assert from "node:assert/strict";
import { policyHostCommand } from "../cli/policy_host.ts";
import { tempDir } from "./cli_helpers.ts";

Deno.test("sandbox policy host --method --path names the request rule that decides, exit 1 when none matches", async () => {
  await using dir = await tempDir("sandbox_rules_cli_");
  const file = `${dir.path}/c.toml`;
  await Deno.writeTextFile(
    file,
    '[permissions.t]\nextends = ":workspace"\n[permissions.t.network]\nenabled = true\n' +
      'requests = { "registry.test" = ["read", { methods = ["PUT"], paths = ["pattern:/-/user/*"] }] }\n',
  );
  const run = async (...extra: string[]) => {
    let out = "";
    const code = await policyHostCommand(
      [
        "--config",
        file,
        "--profile",
        "t",
        "--allow",
        "registry.test",
        "--resolve",
        "registry.test=8.8.8.8",
        "--json",
        ...extra,
        "registry.test",
      ],
      { stdout: (t) => out += t, env: { HOME: dir.path }, cwd: dir.path },
    );
    return { code, json: JSON.parse(out) };
  };
  const get = await run("--method", "GET", "--path", "/pkg");
  assert.equal(get.code, 0);
  assert.equal(get.json.request_rule.rule, 'requests."registry.test".0');
  const put = await run("--method", "PUT", "--path", "/-/user/me");
  assert.equal(put.json.request_rule.rule, 'requests."registry.test".1');
  const refused = await run("--method", "POST", "--path", "/pkg");
  assert.equal(refused.code, 1);
  assert.deepEqual(refused.json.request_rule, {
    kind: "no_match",
    rule: null,
    source: null,
    reason: "mitm_hook_denied",
  });
  const plain = await run();
  assert.equal(plain.json.request_rule, undefined);
});

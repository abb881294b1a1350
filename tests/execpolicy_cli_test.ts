import assert from "node:assert/strict";
import { policyCheckCommand } from "../cli/policy_check.ts";
import { ConfigError, UsageError } from "../errors.ts";
import { sandboxCli, tempDir } from "./cli_helpers.ts";

const TABLE = `[execpolicy]
"npm ci" = "allow-network"
"npm test" = "allow"
"curl *" = { decision = "deny", justification = "Use the mirror", match = ["curl -s x"], not_match = ["wget x"] }
`;

async function withConfig(text: string): Promise<{ path: string } & AsyncDisposable> {
  const dir = await tempDir("execpolicy_cli_");
  const path = `${dir.path}/sandbox.toml`;
  await Deno.writeTextFile(path, text);
  return { path, [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose]() };
}

async function check(args: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await policyCheckCommand(args, { env: {}, stdout: (t) => void (out += t) });
  return { code, out };
}

Deno.test("policy check --json prints decision, matched rules and each part of a script", async () => {
  await using cfg = await withConfig(TABLE);
  const { code, out } = await check([
    "--config",
    cfg.path,
    "--json",
    "--",
    "sh",
    "-c",
    "npm ci && curl -s x",
  ]);
  assert.equal(code, 1);
  const json = JSON.parse(out);
  assert.deepEqual(Object.keys(json).slice(0, 3), ["decision", "matched", "commands"]);
  assert.equal(json.decision, "deny");
  assert.deepEqual(json.matched.map((m: { pattern: string }) => m.pattern), ["npm ci", "curl *"]);
  assert.deepEqual(json.matched[1], {
    pattern: "curl *",
    decision: "deny",
    source: `config:${cfg.path}`,
    justification: "Use the mirror",
    hosts: null,
  });
  assert.deepEqual(
    json.commands.map((c: { argv: string[]; decision: string }) => [c.argv, c.decision]),
    [[["npm", "ci"], "allow-network"], [["curl", "-s", "x"], "deny"]],
  );
});

Deno.test("policy check exits 0 for allow and allow-network and prints the rule for people", async () => {
  await using cfg = await withConfig(TABLE);
  const allowed = await check(["--config", cfg.path, "--", "npm", "test"]);
  assert.equal(allowed.code, 0);
  assert.match(allowed.out, /^allow: npm test$/m);
  assert.match(allowed.out, /"npm test" = allow {2}\(from config:/);
  const network = await check(["--config", cfg.path, "--", "env", "A=1", "npm", "ci"]);
  assert.equal(network.code, 0);
  assert.match(network.out, /^allow-network: env A=1 npm ci$/m);
  const unmatched = await check(["--config", cfg.path, "--", "ls"]);
  assert.equal(unmatched.code, 0);
  assert.match(unmatched.out, /no rule matches: the table's default "allow"/);
});

Deno.test("policy check without execpolicy follows the network setting", async () => {
  await using cfg = await withConfig("");
  const { code, out } = await check(["--config", cfg.path, "--json", "--", "curl", "x"]);
  assert.equal(code, 0);
  const json = JSON.parse(out);
  assert.equal(json.commands[0].basis, "no-policy");
  assert.ok(["allow", "allow-network"].includes(json.decision));
});

Deno.test("policy check reports bad input as usage or config errors", async () => {
  await assert.rejects(() => check([]), UsageError);
  await assert.rejects(() => check(["--bogus", "--", "ls"]), UsageError);
  await using bad = await withConfig(
    '[execpolicy]\n"curl *" = { decision = "deny", match = ["wget x"] }\n',
  );
  const error = await check(["--config", bad.path, "--", "ls"]).then(() => null, (e) => e);
  assert.ok(error instanceof ConfigError);
  assert.equal(error.problems[0].keyPath, 'execpolicy."curl *".match[0]');
  assert.equal(error.problems[0].file, bad.path);
});

Deno.test("sandbox policy check exits 1 on deny and 2 on a bad table, as a real process", async () => {
  await using cfg = await withConfig(TABLE);
  await using bad = await withConfig('[execpolicy]\n"curl \\"x" = "deny"\n');
  const run = (args: string[]) =>
    sandboxCli(["policy", "check", ...args], { env: { HOME: "/nonexistent" } });
  assert.equal((await run(["--config", cfg.path, "--", "curl", "x"])).code, 1);
  assert.equal((await run(["--config", cfg.path, "--", "npm", "ci"])).code, 0);
  const failed = await run(["--config", bad.path, "--", "ls"]);
  assert.equal(failed.code, 2);
  assert.match(
    failed.stderr,
    /^sandbox: Invalid configuration: .*execpolicy\."curl \\"x": Bad rule/m,
  );
});

interface TableVectors {
  readonly table: readonly [string, string][];
  readonly cases: readonly {
    readonly argv: readonly string[];
    readonly decision: string;
    readonly extra?: readonly [string, string][];
  }[];
}

function tomlTable(rows: readonly [string, string][]): string {
  return `[execpolicy]\n${
    rows.map(([pattern, decision]) => `${JSON.stringify(pattern)} = ${JSON.stringify(decision)}`)
      .join("\n")
  }\n`;
}

Deno.test("policy check --json passes every vector of the shared execpolicy table", async () => {
  const vectors: TableVectors = JSON.parse(
    await Deno.readTextFile(
      new URL("../testdata/conformance/execpolicy_table.json", import.meta.url),
    ),
  );
  await using cfg = await withConfig(tomlTable(vectors.table));
  const failures: string[] = [];
  for (const c of vectors.cases) {
    let path = cfg.path;
    if (c.extra !== undefined) {
      path = `${cfg.path}.extra.toml`;
      await Deno.writeTextFile(path, tomlTable([...vectors.table, ...c.extra]));
    }
    const { code, out } = await check(["--config", path, "--json", "--", ...c.argv]);
    const json = JSON.parse(out);
    if (json.decision !== c.decision || code !== (c.decision === "deny" ? 1 : 0)) {
      failures.push(`${JSON.stringify(c.argv)}: expected ${c.decision}, got ${json.decision}`);
    }
  }
  assert.deepEqual(failures, []);
  // One vector through the real binary too: the same answer from a subprocess.
  const result = await sandboxCli([
    "policy",
    "check",
    "--config",
    cfg.path,
    "--json",
    "--",
    "git",
    "push",
    "origin",
    "main",
  ], { env: {} });
  assert.equal(result.code, 0, result.stderr);
  const json = JSON.parse(result.stdout);
  assert.equal(json.decision, "allow-network");
  assert.deepEqual(json.commands[0].decidedBy.map((m: { pattern: string }) => m.pattern), [
    "git push *",
  ]);
  assert.deepEqual(json.commands[0].beat.map((m: { pattern: string }) => m.pattern), ["git *"]);
});

Deno.test("policy check --rules and a rules = [...] key read Codex .rules files", async () => {
  const teamRules = decodeURIComponent(
    new URL("../testdata/execpolicy/codex_rules/team.rules", import.meta.url).pathname,
  );
  const viaFlag = await check(["--rules", teamRules, "--json", "--", "git", "reset", "--hard"]);
  assert.equal(viaFlag.code, 1);
  const json = JSON.parse(viaFlag.out);
  assert.equal(json.decision, "deny");
  assert.equal(json.commands[0].decidedBy[0].source, `rules:${teamRules}:4`);
  assert.equal(json.commands[0].decidedBy[0].justification, "destructive operation");
  // A rules file named by a config file, relative to that file.
  await using cfg = await withConfig(`rules = ["team.rules"]\n`);
  await Deno.copyFile(teamRules, `${cfg.path.slice(0, cfg.path.lastIndexOf("/"))}/team.rules`);
  const viaKey = await check(["--config", cfg.path, "--json", "--", "ls", "-l"]);
  assert.equal(viaKey.code, 0);
  assert.equal(JSON.parse(viaKey.out).decision, "allow-network"); // allow: the profile's posture
  // A broken rules file: exit 2 naming file and line, as a real process.
  const dir = cfg.path.slice(0, cfg.path.lastIndexOf("/"));
  await Deno.writeTextFile(`${dir}/bad.rules`, 'prefix_rule(pattern = ["ls"])\nload("x")\n');
  const failed = await sandboxCli(
    ["policy", "check", "--rules", `${dir}/bad.rules`, "--", "ls"],
    { env: { HOME: "/nonexistent" } },
  );
  assert.equal(failed.code, 2, failed.stderr);
  assert.match(
    failed.stderr,
    /^sandbox: Invalid configuration: .*bad\.rules:2: Expected prefix_rule\(\.\.\.\) or host_executable/m,
  );
  const missing = await check(["--rules", `${dir}/none.rules`, "--", "ls"]).then(
    () => null,
    (e) => e,
  );
  assert.ok(missing instanceof ConfigError);
  assert.match(missing.problems[0].message, /Cannot read the rules file \(from --rules\)/);
});

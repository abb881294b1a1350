import assert from "node:assert/strict";
import { sandboxCli, tempDir } from "../tests/cli_helpers.ts";

const DATA = new URL("../testdata/profiles/", import.meta.url).pathname;

Deno.test("sandbox profile validate lists every problem as FILE:LINE: key KEYPATH and exits 2", async () => {
  await using home = await tempDir("profile_cli_test_");
  const env = { HOME: home.path, XDG_CONFIG_HOME: `${home.path}/xdg` };
  const bad = await sandboxCli([
    "profile",
    "validate",
    `${DATA}many_problems.toml`,
    `${DATA}codex_config.toml`,
  ], { env });
  assert.equal(bad.code, 2, bad.stderr);
  const lines = bad.stdout.trim().split("\n");
  assert.ok(
    lines.includes(
      `${DATA}many_problems.toml:6: key permissions.ci.network.mode: Expected one of "full", "limited", found "open"`,
    ),
    bad.stdout,
  );
  assert.ok(
    lines.some((l) =>
      l.startsWith(`${DATA}many_problems.toml:11: key permissions.ci.network.domains."*": `)
    ),
  );
  assert.ok(lines.includes(`${DATA}codex_config.toml: ok (user config)`));

  const good = await sandboxCli([
    "profile",
    "validate",
    `${DATA}codex_config.toml`,
    `${DATA}requirements_legacy.toml`,
  ], { env });
  assert.equal(good.code, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /requirements_legacy\.toml: ok \(managed requirements\)/);

  await Deno.writeTextFile(
    `${home.path}/exec.toml`,
    '[execpolicy]\n"git push *" = { decision = "deny", not_match = ["git push x"] }\n',
  );
  const exec = await sandboxCli(["profile", "validate", `${home.path}/exec.toml`], { env });
  assert.equal(exec.code, 2, exec.stdout);
  assert.match(exec.stdout, /exec\.toml:2: key execpolicy\."git push \*"\.not_match\[0\]: /);

  const mixed = await sandboxCli(
    ["profile", "validate", "--json", `${DATA}requirements_mixed.toml`],
    { env },
  );
  assert.equal(mixed.code, 2);
  const report = JSON.parse(mixed.stdout);
  assert.equal(report.files[0].kind, "managed");
  assert.equal(report.files[0].problems[0].keyPath, "experimental_network.domains");
});

Deno.test("sandbox profile show --json prints the merged policy with sources", async () => {
  await using home = await tempDir("profile_cli_test_");
  await Deno.mkdir(`${home.path}/xdg/sandbox`, { recursive: true });
  await Deno.copyFile(`${DATA}codex_config.toml`, `${home.path}/xdg/sandbox/config.toml`);
  await Deno.copyFile(`${DATA}requirements_legacy.toml`, `${home.path}/requirements.toml`);
  const env = {
    HOME: home.path,
    XDG_CONFIG_HOME: `${home.path}/xdg`,
    SANDBOX_MANAGED_CONFIG: `${home.path}/requirements.toml`,
  };
  const shown = await sandboxCli(["profile", "show", "--json", "--allow", "flag.example"], { env });
  assert.equal(shown.code, 0, shown.stderr);
  const config = JSON.parse(shown.stdout);
  assert.equal(config.profileName, "ci");
  assert.deepEqual(config.files, [
    `${home.path}/requirements.toml`,
    `${home.path}/xdg/sandbox/config.toml`,
  ]);
  assert.deepEqual(
    config.network.domains.map((r: { pattern: string; action: string }) =>
      `${r.action} ${r.pattern}`
    ),
    [
      "allow corp.example",
      "allow **.mirror.example",
      "deny exfil.example",
      "deny evil.pkg.example",
    ],
  );
  assert.equal(config.network.domains[0].source, `managed:${home.path}/requirements.toml`);
  assert.ok(config.notices.some((n: string) => n.includes('"flag.example" (flag:--allow)')));

  const human = await sandboxCli(["profile", "show"], { env });
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /deny {2}evil\.pkg\.example +user:/);
  assert.match(human.stdout, /Notices:\n[\s\S]*sets managed_allowed_domains_only = true/);

  const unknown = await sandboxCli(["profile", "show", "--profile", "nope"], { env });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown profile "nope": expected one of "ci", "open"/);
});

Deno.test("sandbox help profile show has examples; a missing FILE is a usage error", async () => {
  await using home = await tempDir("profile_cli_test_");
  const help = await sandboxCli(["help", "profile", "show"], { env: { HOME: home.path } });
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Examples:\n {2}sandbox profile show/);
  const missing = await sandboxCli(["profile", "validate"], { env: { HOME: home.path } });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /Missing FILE for "sandbox profile validate"/);
});

Deno.test("sandbox profile validate reports an unknown default_permissions and every execpolicy problem at once", async () => {
  await using home = await tempDir("profile_cli_test_");
  const env = { HOME: home.path, XDG_CONFIG_HOME: `${home.path}/xdg` };
  await Deno.writeTextFile(
    `${home.path}/a.toml`,
    [
      'default_permissions = "nope"',
      "[permissions.ci]",
      'extends = ":workspace"',
      "[execpolicy]",
      '"git push *" = { decision = "deny", match = ["git pull"] }',
      '"curl *" = { decision = "bogus" }',
      '"ls" = { decision = "allow", not_match = ["ls"] }',
      "",
    ].join("\n"),
  );
  const r = await sandboxCli(["profile", "validate", `${home.path}/a.toml`], { env });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  const out = r.stdout;
  assert.match(
    out,
    /a\.toml:1: key default_permissions: Unknown profile "nope": expected one of "ci", a built-in profile/,
  );
  assert.match(out, /a\.toml:5: key execpolicy\."git push \*"\.match\[0\]: /);
  assert.match(out, /a\.toml:6: key execpolicy\."curl \*"\.decision: Expected one of/);
  assert.match(out, /a\.toml:7: key execpolicy\.ls\.not_match\[0\]: /);
  // The same profile defined in a file given together is found; a built-in name is fine too.
  await Deno.writeTextFile(`${home.path}/b.toml`, '[permissions.nope]\nextends = ":read-only"\n');
  await Deno.writeTextFile(`${home.path}/c.toml`, 'default_permissions = ":read-only"\n');
  const together = await sandboxCli(
    ["profile", "validate", `${home.path}/c.toml`, `${home.path}/b.toml`],
    { env },
  );
  assert.equal(together.code, 0, together.stdout);
  // `sandbox run` reports the same problems together, before running anything.
  const run = await sandboxCli(["run", "--config", `${home.path}/a.toml`, "--", "true"], { env });
  assert.equal(run.code, 2);
  assert.match(run.stderr, /git push/);
  assert.match(run.stderr, /curl/);
});

Deno.test("sandbox profile validate refuses what run refuses: a selected profile the sandbox cannot enforce", async () => {
  await using home = await tempDir("profile_cli_test_");
  const env = { HOME: home.path, XDG_CONFIG_HOME: `${home.path}/xdg` };
  await Deno.writeTextFile(
    `${home.path}/w.toml`,
    'default_permissions = "p"\n[permissions.p.filesystem]\n":root" = "write"\n',
  );
  const bad = await sandboxCli(["profile", "validate", `${home.path}/w.toml`], { env });
  assert.equal(bad.code, 2, bad.stdout + bad.stderr);
  assert.match(
    bad.stdout,
    /w\.toml:3: key permissions\.p\.filesystem\.":root": Profile "p" cannot be enforced/,
  );
  const docs = new URL("../testdata/codex/project_edit.toml", import.meta.url).pathname;
  const good = await sandboxCli(["profile", "validate", docs], { env });
  assert.equal(good.code, 0, good.stdout + good.stderr);
});

Deno.test("sandbox profile show keeps a rule's tls:// marking; --allow without a port is refused with exit 2", async () => {
  await using home = await tempDir("profile_cli_test_");
  await Deno.writeTextFile(`${home.path}/managed.toml`, "");
  const env = {
    HOME: home.path,
    XDG_CONFIG_HOME: `${home.path}/xdg`,
    SANDBOX_MANAGED_CONFIG: `${home.path}/managed.toml`,
  };
  const shown = await sandboxCli(["profile", "show", "--allow", "tls://registry.example:8443"], {
    env,
  });
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /\n {2}allow tls:\/\/registry\.example:8443 +flag:--allow\n/);
  const bad = await sandboxCli(["profile", "show", "--allow", "tls://registry.example"], { env });
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /Invalid pattern "tls:\/\/registry\.example": "tls:\/\/" marks one port as TLS: add the port, e\.g\. "tls:\/\/registry\.example:8443"/,
  );
});

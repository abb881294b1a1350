import assert from "node:assert/strict";
import { formatProblem } from "../errors.ts";
import { detectConfigKind, validateConfigText } from "./validate.ts";

const DATA = new URL("../testdata/profiles/", import.meta.url);

async function check(name: string, kind: "user" | "managed") {
  const text = await Deno.readTextFile(new URL(name, DATA));
  return validateConfigText(text, { file: name, kind });
}

Deno.test("validateConfigText() loads a Codex config.toml with Codex's other top-level keys", async () => {
  const result = await check("codex_config.toml", "user");
  assert.ok(result.ok, result.ok ? "" : result.problems.map(formatProblem).join("\n"));
  assert.equal(result.config.kind, "user");
  if (result.config.kind !== "user") return;
  assert.equal(result.config.defaultPermissions, "ci");
  const ci = result.config.profiles.ci;
  assert.equal(ci.network.mode, "limited");
  assert.equal(ci.network.mitm, true);
  assert.equal(ci.network.enableSocks5, false);
  assert.deepEqual(ci.network.domains, [
    { pattern: "registry.example", action: "allow" },
    { pattern: "*.pkg.example", action: "allow" },
    { pattern: "evil.pkg.example", action: "deny" },
  ]);
  assert.deepEqual(ci.network.unixSockets, [
    { path: "/run/docker.sock", action: "none" },
    { path: "/run/user/1000/bus", action: "allow" },
  ]);
  assert.deepEqual(ci.filesystem.entries.map((e) => [e.target, e.access]), [
    [{ kind: "special", name: ":root" }, "read"],
    [{ kind: "path", path: "/srv/cache" }, "write"],
  ]);
  assert.match(
    result.config.notices.join("\n"),
    /ignored Codex keys not used by sandbox: model, model_provider/,
  );
});

Deno.test("validateConfigText() reports every problem with its key path and line", async () => {
  const result = await check("many_problems.toml", "user");
  assert.equal(result.ok, false);
  if (result.ok) return;
  const got = result.problems.map((p) => `${p.line}: ${p.keyPath}`);
  assert.deepEqual(got, [
    "2: colour",
    "5: permissions.ci.network.enabled",
    "6: permissions.ci.network.mode",
    "7: permissions.ci.network.mitm",
    "8: permissions.ci.network.prxy_url",
    '11: permissions.ci.network.domains."*"',
    '12: permissions.ci.network.domains."ok.example"',
    "15: permissions.ci.filesystem.writable",
    '18: execpolicy.""',
    '19: execpolicy."git push *"',
    '20: execpolicy."rm *".because',
    '21: execpolicy."curl *"',
  ]);
  const byPath = new Map(result.problems.map((p) => [p.keyPath, p.message]));
  assert.match(
    byPath.get("permissions.ci.network.mode")!,
    /Expected one of "full", "limited", found "open"/,
  );
  assert.match(
    byPath.get("permissions.ci.network.enabled")!,
    /Expected true or false, found a string/,
  );
  assert.match(byPath.get('permissions.ci.network.domains."*"')!, /global wildcard/);
  assert.match(
    byPath.get("permissions.ci.network.prxy_url")!,
    /Unknown key: expected one of .*"proxy_url"/,
  );
  assert.match(
    byPath.get('execpolicy."git push *"')!,
    /"allow", "allow-network", "deny", found "block"/,
  );
  assert.equal(
    formatProblem(result.problems[1]),
    "many_problems.toml:5: key permissions.ci.network.enabled: Expected true or false, found a string",
  );
});

Deno.test("validateConfigText() rejects duplicate keys with file and line", async () => {
  const result = await check("duplicate_keys.toml", "user");
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.problems.length, 1);
  assert.equal(result.problems[0].file, "duplicate_keys.toml");
  assert.equal(result.problems[0].line, 5);
  assert.match(result.problems[0].message, /^Duplicate key or table/);
});

Deno.test("validateConfigText() rejects a relative unix socket path", async () => {
  const result = await check("relative_socket.toml", "user");
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.problems[0].keyPath, 'permissions.ci.network.unix_sockets."run/app.sock"');
  assert.equal(result.problems[0].line, 2);
  assert.match(result.problems[0].message, /expected an absolute path/);
});

Deno.test("validateConfigText() normalizes a managed file's legacy lists into the canonical maps", async () => {
  const result = await check("requirements_legacy.toml", "managed");
  assert.ok(result.ok, result.ok ? "" : result.problems.map(formatProblem).join("\n"));
  if (result.config.kind !== "managed") throw new Error("expected managed");
  assert.deepEqual(result.config.network.domains, [
    { pattern: "corp.example", action: "allow" },
    { pattern: "**.mirror.example", action: "allow" },
    { pattern: "exfil.example", action: "deny" },
  ]);
  assert.deepEqual(result.config.network.unixSockets, [{
    path: "/run/corp-agent.sock",
    action: "allow",
  }]);
  assert.equal(result.config.network.managedAllowedDomainsOnly, true);
  assert.equal(result.config.network.mode, "limited");
});

Deno.test("validateConfigText() refuses canonical and legacy forms mixed in one managed block", async () => {
  const result = await check("requirements_mixed.toml", "managed");
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.problems.length, 1);
  assert.equal(result.problems[0].keyPath, "experimental_network.domains");
  assert.match(
    result.problems[0].message,
    /Cannot mix the canonical "domains" map with the legacy "allowed_domains"/,
  );
});

Deno.test("validateConfigText() loads our additions: filesystem, env, ask, mitm_ca, presets, execpolicy", async () => {
  const result = await check("ours.toml", "user");
  assert.ok(result.ok, result.ok ? "" : result.problems.map(formatProblem).join("\n"));
  if (result.config.kind !== "user") throw new Error("expected user");
  const dev = result.config.profiles.dev;
  assert.equal(dev.network.ask, true);
  assert.deepEqual(dev.network.presets, ["python-ml"]);
  assert.deepEqual(dev.network.mitmCa, {
    cert: "~/.config/sandbox/ca/cert.pem",
    key: "/etc/sandbox/ca/key.pem",
  });
  assert.deepEqual(dev.filesystem, {
    writable: ["~/.cache", "/tmp/build"],
    denyRead: ["~/.ssh"],
    entries: [],
  });
  assert.deepEqual(dev.env, {
    allow: ["PATH", "HOME", "LANG", "LC_*"],
    deny: ["*_TOKEN", "AWS_*"],
  });
  assert.equal(result.config.execpolicyDefault, "allow-network");
  assert.deepEqual(result.config.execpolicy[2], {
    pattern: "git push *",
    decision: "deny",
    justification: "Pushing needs a human",
    match: ["git push origin main"],
    notMatch: ["git status"],
  });
});

Deno.test("validateConfigText() refuses managed keys in a user file and user keys in a managed file", async () => {
  const user = await validateConfigText("[experimental_network]\nenabled = true\n", {
    file: "u.toml",
    kind: "user",
  });
  assert.equal(user.ok, false);
  if (!user.ok) {
    assert.match(user.problems[0].message, /Managed requirements are not allowed in a user config/);
  }
  const managed = await validateConfigText('sandbox_mode = "read-only"\n', {
    file: "m.toml",
    kind: "managed",
  });
  assert.equal(managed.ok, false);
  if (!managed.ok) assert.equal(managed.problems[0].keyPath, "sandbox_mode");
});

Deno.test("validateConfigText() reports a pattern both allowed and denied in one block", async () => {
  const text =
    '[experimental_network]\nallowed_domains = ["a.example"]\ndenied_domains = ["A.example."]\n';
  const result = await validateConfigText(text, { file: "m.toml", kind: "managed" });
  assert.equal(result.ok, false);
  if (!result.ok) {
    assert.equal(result.problems[0].keyPath, "experimental_network.denied_domains");
    assert.equal(result.problems[0].line, 3);
    assert.match(result.problems[0].message, /Contradiction/);
  }
});

Deno.test("validateConfigText() finds a contradiction and a duplicate in one domains table, in any order", async () => {
  // Plain names of one table are kept without a key map until another kind of entry arrives.
  for (
    const [first, second] of [
      ['"a.example" = "allow"', '"A.example." = "deny"'],
      ['"A.example." = "deny"', '"a.example" = "allow"'],
      ['"b.example" = "allow"\n"a.example" = "allow"', '"A.EXAMPLE" = "deny"'],
    ]
  ) {
    const text = `[permissions.p.network.domains]\n${first}\n${second}\n`;
    const result = await validateConfigText(text, { file: "c.toml", kind: "user" });
    assert.equal(result.ok, false, text);
    if (!result.ok) assert.match(result.problems[0].message, /Contradiction/);
  }
  const same = await validateConfigText(
    '[permissions.p.network.domains]\n"a.example" = "allow"\n"A.example" = "allow"\n"b.example" = "deny"\n',
    { file: "c.toml", kind: "user" },
  );
  assert.equal(same.ok, true);
  if (same.ok && same.config.kind === "user") {
    assert.deepEqual(same.config.profiles.p.network.domains, [
      { pattern: "a.example", action: "allow" },
      { pattern: "b.example", action: "deny" },
    ]);
  }
});

Deno.test("detectConfigKind() treats requirements.toml and [experimental_network] as managed", () => {
  assert.equal(detectConfigKind("/etc/sandbox/requirements.toml", {}), "managed");
  assert.equal(detectConfigKind("x.toml", { experimental_network: {} }), "managed");
  assert.equal(detectConfigKind("config.toml", { permissions: {} }), "user");
});

Deno.test("validateConfigText() reads an execpolicy rule's hosts and refuses bad ones", async () => {
  const good = await validateConfigText(
    `[execpolicy]\n"npm ci" = { decision = "allow-network", hosts = ["registry.example", "*.cdn.example"] }\n`,
    { file: "c.toml", kind: "user" },
  );
  assert.ok(good.ok);
  if (!good.ok) return;
  assert.deepEqual(good.config.execpolicy[0].hosts, ["registry.example", "*.cdn.example"]);
  const bad = await validateConfigText(
    [
      "[execpolicy]",
      `"npm test" = { decision = "allow", hosts = ["registry.example"] }`,
      `"npm ci" = { decision = "allow-network", hosts = [] }`,
      `"git push *" = { decision = "allow-network", hosts = ["*"] }`,
      `"npm i" = { decision = "allow-network", hosts = ["bad host"] }`,
    ].join("\n") + "\n",
    { file: "c.toml", kind: "user" },
  );
  assert.equal(bad.ok, false);
  if (bad.ok) return;
  const got = bad.problems.map((p) => `${p.line}: ${p.keyPath}: ${p.message}`);
  assert.equal(got.length, 3, got.join("\n"));
  assert.match(got[0], /^2: execpolicy\."npm test"\.hosts: .*need decision = "allow-network"/);
  assert.match(got[1], /^3: execpolicy\."npm ci"\.hosts: An empty host list/);
  assert.match(got[2], /^5: execpolicy\."npm i"\.hosts/);
});

Deno.test("validateConfigText() reads tls://HOST:PORT in the domains map and the legacy lists; refuses it without a port", async () => {
  const user = await validateConfigText(
    '[permissions.ci.network.domains]\n"tls://registry.example:8443" = "allow"\n"registry.example:8080" = "allow"\n',
    { file: "c.toml", kind: "user" },
  );
  assert.ok(user.ok, user.ok ? "" : user.problems.map(formatProblem).join("\n"));
  if (user.config.kind !== "user") throw new Error("expected user");
  assert.deepEqual(user.config.profiles.ci.network.domains, [
    { pattern: "tls://registry.example:8443", action: "allow" },
    { pattern: "registry.example:8080", action: "allow" },
  ]);
  const managed = await validateConfigText(
    '[experimental_network]\nallowed_domains = ["tls://corp.example:993", "corp.example"]\n',
    { file: "m.toml", kind: "managed" },
  );
  assert.ok(managed.ok, managed.ok ? "" : managed.problems.map(formatProblem).join("\n"));
  if (managed.config.kind !== "managed") throw new Error("expected managed");
  assert.deepEqual(managed.config.network.domains, [
    { pattern: "tls://corp.example:993", action: "allow" },
    { pattern: "corp.example", action: "allow" },
  ]);
  const bad = await validateConfigText(
    '[permissions.ci.network.domains]\n"tls://registry.example" = "allow"\n',
    { file: "c.toml", kind: "user" },
  );
  assert.equal(bad.ok, false);
  if (bad.ok) return;
  assert.equal(bad.problems[0].keyPath, 'permissions.ci.network.domains."tls://registry.example"');
  assert.equal(bad.problems[0].line, 2);
  assert.match(bad.problems[0].message, /"tls:\/\/" marks one port as TLS: add the port/);
});

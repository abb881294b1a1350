import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { loadEffectiveConfig } from "./load.ts";
import { PRESETS } from "./presets.ts";

Deno.test("loadEffectiveConfig() with no flags gives the defaults", async () => {
  const config = await loadEffectiveConfig({}, { env: {} });
  assert.equal(config.network.enabled, true);
  assert.equal(config.network.mode, "full");
  assert.deepEqual(config.network.domains, []);
  assert.equal(config.profileName, null);
  assert.equal(config.execpolicy, null);
  assert.ok(Object.isFrozen(config.network.domains));
});

Deno.test("loadEffectiveConfig() turns flags into rules with their sources", async () => {
  const config = await loadEffectiveConfig({
    allow: ["a.test"],
    deny: ["b.test"],
    mode: "limited",
    mitm: true,
    "allow-local-binding": true,
    "allow-unix-socket": ["/run/x.sock"],
    preset: ["python-ml"],
  }, { env: {} });
  assert.equal(config.network.mode, "limited");
  assert.equal(config.network.mitm, true);
  assert.equal(config.network.allowLocalBinding, true);
  assert.equal(config.sources["network.mode"], "flag:--mode");
  assert.deepEqual(config.network.unixSockets, [
    { path: "/run/x.sock", action: "allow", source: "flag:--allow-unix-socket" },
  ]);
  const flagRules = config.network.domains.filter((r) => r.source.startsWith("flag:"));
  assert.deepEqual(flagRules, [
    { pattern: "a.test", action: "allow", source: "flag:--allow" },
    { pattern: "b.test", action: "deny", source: "flag:--deny" },
  ]);
  const presetRules = config.network.domains.filter((r) => r.source === "preset:python-ml");
  assert.equal(presetRules.length, PRESETS["python-ml"].allow.length);
});

Deno.test("loadEffectiveConfig() reports every bad flag at once", async () => {
  const error = await loadEffectiveConfig({
    mode: "open",
    preset: ["nope"],
    deny: ["*"],
    "allow-unix-socket": ["rel.sock"],
  }, { env: {} }).then(() => null, (e) => e);
  assert.ok(error instanceof ConfigError);
  assert.deepEqual(error.problems.map((p) => p.file).sort(), [
    "--allow-unix-socket",
    "--deny",
    "--mode",
    "--preset",
  ]);
  assert.match(error.message, /Unknown preset "nope": expected one of "common-dependencies"/);
});

const DATA = new URL("../testdata/profiles/", import.meta.url);

/** A temp dir with HOME/XDG layout; `files` maps relative paths to contents. */
async function fixture(files: Record<string, string>): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "profiles_load_test_" });
  for (const [rel, text] of Object.entries(files)) {
    const path = `${dir}/${rel}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, text);
  }
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

async function sample(name: string): Promise<string> {
  return await Deno.readTextFile(new URL(name, DATA));
}

Deno.test("loadEffectiveConfig() loads the user file from XDG_CONFIG_HOME and picks default_permissions", async () => {
  await using fx = await fixture({ "xdg/sandbox/config.toml": await sample("codex_config.toml") });
  const env = {
    XDG_CONFIG_HOME: `${fx.dir}/xdg`,
    HOME: fx.dir,
    SANDBOX_MANAGED_CONFIG: `${fx.dir}/none.toml`,
  };
  const error = await loadEffectiveConfig({}, { env }).then(() => null, (e) => e);
  // A named managed file that does not exist is an error (fail closed), not a silent skip.
  assert.ok(error instanceof ConfigError);
  assert.match(error.message, /none\.toml: Cannot read config file: the file does not exist/);

  const config = await loadEffectiveConfig({}, {
    env: { XDG_CONFIG_HOME: `${fx.dir}/xdg`, HOME: fx.dir },
  });
  const user = `user:${fx.dir}/xdg/sandbox/config.toml`;
  assert.equal(config.profileName, "ci");
  assert.equal(config.network.mode, "limited");
  assert.equal(config.sources["network.mode"], user);
  assert.deepEqual(config.network.domains.map((r) => [r.pattern, r.action, r.source]), [
    ["registry.example", "allow", user],
    ["*.pkg.example", "allow", user],
    ["evil.pkg.example", "deny", user],
  ]);
  assert.deepEqual(config.filesystem.writable, ["/srv/cache"]);
  assert.deepEqual(config.files, [`${fx.dir}/xdg/sandbox/config.toml`]);
});

Deno.test("loadEffectiveConfig() --profile picks another profile; an unknown one lists the available", async () => {
  await using fx = await fixture({ "c.toml": await sample("codex_config.toml") });
  const env = { HOME: `${fx.dir}/home` };
  const open = await loadEffectiveConfig({ config: ["c.toml"], profile: "open" }, {
    env,
    cwd: fx.dir,
  });
  assert.equal(open.profileName, "open");
  assert.deepEqual(open.network.domains.map((r) => r.pattern), ["*"]);
  assert.equal(open.network.domains[0].source, `config:${fx.dir}/c.toml`);

  const error = await loadEffectiveConfig({ config: ["c.toml"], profile: "nope" }, {
    env,
    cwd: fx.dir,
  })
    .then(() => null, (e) => e);
  assert.ok(error instanceof ConfigError);
  assert.equal(error.problems[0].file, "--profile");
  assert.match(error.problems[0].message, /Unknown profile "nope": expected one of "ci", "open"/);
});

Deno.test("loadEffectiveConfig() lets later --config files and flags win, and keeps every source", async () => {
  await using fx = await fixture({
    "a.toml":
      'default_permissions = "p"\n[permissions.p.network]\nmode = "limited"\n[permissions.p.network.domains]\n"x.example" = "allow"\n',
    "b.toml":
      '[permissions.p.network]\nmode = "full"\n[permissions.p.network.domains]\n"x.example" = "deny"\n',
  });
  const config = await loadEffectiveConfig(
    {
      config: [`${fx.dir}/a.toml`, `${fx.dir}/b.toml`],
      allow: ["y.example"],
      preset: ["python-ml"],
    },
    { env: {} },
  );
  assert.equal(config.network.mode, "full");
  assert.equal(config.sources["network.mode"], `config:${fx.dir}/b.toml`);
  const x = config.network.domains.filter((r) => r.pattern === "x.example");
  assert.deepEqual(x, [{
    pattern: "x.example",
    action: "deny",
    source: `config:${fx.dir}/b.toml`,
  }]);
  assert.ok(
    config.network.domains.some((r) => r.pattern === "y.example" && r.source === "flag:--allow"),
  );
  assert.ok(config.network.domains.some((r) => r.source === "preset:python-ml"));
});

Deno.test("loadEffectiveConfig() with managed_allowed_domains_only ignores user, preset and flag allows", async () => {
  await using fx = await fixture({
    "requirements.toml": await sample("requirements_legacy.toml"),
    "xdg/sandbox/config.toml": await sample("codex_config.toml"),
  });
  const managed = `${fx.dir}/requirements.toml`;
  const config = await loadEffectiveConfig(
    { allow: ["flag.example"], preset: ["common-dependencies"], mode: "full" },
    { env: { SANDBOX_MANAGED_CONFIG: managed, XDG_CONFIG_HOME: `${fx.dir}/xdg` } },
  );
  const allows = config.network.domains.filter((r) => r.action === "allow");
  assert.deepEqual(allows.map((r) => [r.pattern, r.source]), [
    ["corp.example", `managed:${managed}`],
    ["**.mirror.example", `managed:${managed}`],
  ]);
  // Managed denies always apply, user denies still apply.
  const denies = config.network.domains.filter((r) => r.action === "deny").map((r) => r.pattern);
  assert.deepEqual(denies, ["exfil.example", "evil.pkg.example"]);
  assert.equal(config.network.managedAllowedDomainsOnly, true);
  assert.match(
    config.notices.join("\n"),
    /managed_allowed_domains_only = true: "registry\.example"/,
  );
  // A managed mode = "limited" is not loosened by --mode full.
  assert.equal(config.network.mode, "limited");
  assert.equal(config.sources["network.mode"], `managed:${managed}`);
  assert.match(config.notices.join("\n"), /Ignored flag:--mode setting network\.mode = "full"/);
  assert.deepEqual(config.files, [managed, `${fx.dir}/xdg/sandbox/config.toml`]);
});

Deno.test("loadEffectiveConfig() keeps a managed deny even when a user allows the same pattern", async () => {
  await using fx = await fixture({ "r.toml": await sample("requirements_canonical.toml") });
  const config = await loadEffectiveConfig(
    { allow: ["exfil.example"], "allow-local-binding": true },
    { env: { SANDBOX_MANAGED_CONFIG: `${fx.dir}/r.toml` } },
  );
  const exfil = config.network.domains.filter((r) => r.pattern === "exfil.example");
  assert.deepEqual(exfil.map((r) => r.action), ["deny", "allow"]);
  assert.equal(exfil[0].source, `managed:${fx.dir}/r.toml`);
  // Managed allow_local_binding = false is a floor.
  assert.equal(config.network.allowLocalBinding, false);
});

Deno.test("loadEffectiveConfig() applies extends, presets, ~ expansion, env and execpolicy", async () => {
  await using fx = await fixture({ "ours.toml": await sample("ours.toml") });
  const config = await loadEffectiveConfig(
    { config: [`${fx.dir}/ours.toml`], profile: "child" },
    { env: { HOME: "/home/u" } },
  );
  assert.equal(config.profileName, "child");
  assert.equal(config.network.mode, "limited");
  assert.equal(config.network.ask, true);
  assert.deepEqual(config.network.mitmCa, {
    cert: "/home/u/.config/sandbox/ca/cert.pem",
    key: "/etc/sandbox/ca/key.pem",
  });
  assert.deepEqual(config.filesystem, {
    writable: ["/home/u/.cache", "/tmp/build"],
    denyRead: ["/home/u/.ssh"],
    // Our own format keeps the sandbox's defaults: the working dir writable, nothing else.
    denyGlobs: [],
    globScanMaxDepth: null,
    readOnly: [],
    readRoots: null,
    workspace: { writable: true, roots: [], rules: [] },
  });
  assert.deepEqual(config.env, {
    allow: ["PATH", "HOME", "LANG", "LC_*"],
    deny: ["*_TOKEN", "AWS_*"],
  });
  assert.ok(
    config.network.domains.some((r) =>
      r.pattern === "huggingface.co" && r.source === "preset:python-ml"
    ),
  );
  assert.equal(config.execpolicy?.default, "allow-network");
  assert.deepEqual(config.execpolicy?.rules.map((r) => [r.pattern, r.decision]), [
    ["git status", "allow"],
    ["npm ci", "allow-network"],
    ["git push *", "deny"],
  ]);
});

Deno.test("loadEffectiveConfig() lists problems from every file at once, with file and line", async () => {
  await using fx = await fixture({
    "a.toml": await sample("relative_socket.toml"),
    "b.toml": await sample("duplicate_keys.toml"),
  });
  const error = await loadEffectiveConfig({ config: ["a.toml", "b.toml", "missing.toml"] }, {
    env: {},
    cwd: fx.dir,
  })
    .then(() => null, (e) => e);
  assert.ok(error instanceof ConfigError);
  assert.deepEqual(error.problems.map((p) => [p.file.slice(fx.dir.length + 1), p.line]), [
    ["a.toml", 2],
    ["b.toml", 5],
    ["missing.toml", undefined],
  ]);
});

Deno.test("loadEffectiveConfig() runs execpolicy example checks and reports them with file and line", async () => {
  await using fx = await fixture({
    "x.toml":
      '[execpolicy]\n"git status" = "allow"\n"git push *" = { decision = "deny", match = ["git pull"] }\n',
  });
  const error = await loadEffectiveConfig({ config: [`${fx.dir}/x.toml`] }, { env: {} }).then(
    () => null,
    (e) => e,
  );
  assert.ok(error instanceof ConfigError);
  assert.equal(error.problems.length, 1);
  assert.equal(error.problems[0].file, `${fx.dir}/x.toml`);
  assert.equal(error.problems[0].line, 3);
  assert.match(error.problems[0].keyPath, /^execpolicy\."git push \*"\.match/);
});

Deno.test("loadEffectiveConfig() --preset common-dependencies adds the npm registry the machine is configured for", async () => {
  const home = await Deno.makeTempDir({ prefix: "load_test_preset_" });
  try {
    const env = { HOME: home, npm_config_registry: "https://mirror.test/npm/" };
    const config = await loadEffectiveConfig({ preset: ["common-dependencies"] }, { env });
    const rule = config.network.domains.find((r) => r.pattern === "mirror.test");
    assert.deepEqual(rule, {
      pattern: "mirror.test",
      action: "allow",
      source: "preset:common-dependencies",
    });
    // An explicit deny of the same host is never replaced by what the preset discovers.
    const denied = await loadEffectiveConfig({
      preset: ["common-dependencies"],
      deny: ["mirror.test"],
    }, { env });
    assert.deepEqual(
      denied.network.domains.filter((r) => r.pattern === "mirror.test").map((r) => r.action),
      ["deny"],
    );
    // Without the preset, nothing is discovered.
    const plain = await loadEffectiveConfig({}, { env });
    assert.equal(plain.network.domains.some((r) => r.pattern === "mirror.test"), false);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("loadEffectiveConfig() writes filesystem and socket paths in one canonical spelling", async () => {
  const dir = await Deno.makeTempDir({ prefix: "load_test_paths_" });
  try {
    await Deno.writeTextFile(
      `${dir}/c.toml`,
      [
        'default_permissions = "p"',
        "[permissions.p.filesystem]",
        'writable = ["/tmp/a/..", "//srv//cache/./x/"]',
        'deny_read = ["~/../root/.ssh/"]',
        "[permissions.p.network.unix_sockets]",
        '"/run/../run/x.sock" = "allow"',
      ].join("\n"),
    );
    const config = await loadEffectiveConfig({ config: [`${dir}/c.toml`] }, {
      env: { HOME: "/home/u" },
    });
    assert.deepEqual(config.filesystem.writable.slice(-2), ["/tmp", "/srv/cache/x"]);
    assert.ok(config.filesystem.denyRead.includes("/home/root/.ssh"));
    assert.deepEqual(config.network.unixSockets.map((r) => r.path), ["/run/x.sock"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadEffectiveConfig() reads strict_unix_sockets (default false) and refuses a non-boolean", async () => {
  await using fx = await fixture({
    "on.toml": 'default_permissions = "p"\n[permissions.p.network]\nstrict_unix_sockets = true\n',
    "bad.toml": 'default_permissions = "p"\n[permissions.p.network]\nstrict_unix_sockets = "yes"\n',
  });
  const env = { HOME: fx.dir, XDG_CONFIG_HOME: `${fx.dir}/x` };
  const plain = await loadEffectiveConfig({}, { env, cwd: fx.dir });
  assert.equal(plain.network.strictUnixSockets, false);
  const on = await loadEffectiveConfig({ config: [`${fx.dir}/on.toml`] }, { env, cwd: fx.dir });
  assert.equal(on.network.strictUnixSockets, true);
  await assert.rejects(
    loadEffectiveConfig({ config: [`${fx.dir}/bad.toml`] }, { env, cwd: fx.dir }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /permissions\.p\.network\.strict_unix_sockets/.test(error.message),
  );
});

Deno.test("loadEffectiveConfig() reads a large domains table in file order and reports a duplicate key in it with its line", async () => {
  const lines = ['default_permissions = "big"', "[permissions.big.network.domains]"];
  const patterns: string[] = [];
  for (let i = 0; i < 5000; i++) {
    const pattern = i === 7 ? "Upper.Example" : i % 3 === 0 ? `**.w${i}.test` : `d${i}.test`;
    patterns.push(pattern);
    lines.push(`"${pattern}" = "${i % 5 === 0 ? "deny" : "allow"}"`);
  }
  await using fx = await fixture({
    "big.toml": lines.join("\n") + "\n",
    "dup.toml": [...lines, '"d4000.test" = "deny"'].join("\n") + "\n",
    "clash.toml": [...lines, '"upper.example." = "deny"'].join("\n") + "\n",
  });
  const config = await loadEffectiveConfig({ config: [`${fx.dir}/big.toml`] }, { env: {} });
  assert.deepEqual(config.network.domains.map((r) => r.pattern), patterns);
  assert.equal(config.network.domains[5].action, "deny");
  assert.equal(config.network.domains[6].action, "allow");
  await assert.rejects(
    loadEffectiveConfig({ config: [`${fx.dir}/dup.toml`] }, { env: {} }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems[0].line, 5003);
      assert.match(error.problems[0].message, /Duplicate key/);
      return true;
    },
  );
  // Written differently, the same pattern both allowed and denied.
  await assert.rejects(
    loadEffectiveConfig({ config: [`${fx.dir}/clash.toml`] }, { env: {} }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.problems[0].message, /Contradiction/);
      return true;
    },
  );
});

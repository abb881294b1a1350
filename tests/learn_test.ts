import assert from "node:assert/strict";
import { parse } from "smol-toml";
import { ConfigError } from "../errors.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { main } from "../cli/main.ts";
import { mergeLearnedHosts, renderLearnedProfile, tomlString } from "../profiles/learn_profile.ts";
import type { AllowedHost } from "../run/report.ts";
import { captureIo, type CliResult, sandboxCli, tempDir } from "./cli_helpers.ts";

/** smol-toml returns null-prototype tables; compare as plain data. */
// deno-lint-ignore no-explicit-any
function plain(value: unknown): any {
  return JSON.parse(JSON.stringify(value));
}

const TIME = "2025-01-02T03:04:05.006Z";
const A: AllowedHost = { host: "a.test", ports: [80], protocols: ["http"], count: 2 };
const B: AllowedHost = {
  host: "b.test",
  ports: [443, 8443],
  protocols: ["https-connect", "socks5"],
  count: 1,
};

// ---- pure parts: rendering and merging profile text ----

Deno.test("renderLearnedProfile() writes a sorted allowlist with counts that parses as a profile", () => {
  const text = renderLearnedProfile([B, A], { command: ["sh", "-c", "curl a.test"], time: TIME });
  const value = plain(parse(text));
  assert.equal(value.default_permissions, "learned");
  assert.deepEqual(value.permissions.learned.network, {
    enabled: true,
    domains: { "a.test": "allow", "b.test": "allow" },
  });
  const lines = text.split("\n");
  const a = lines.findIndex((l) => l.startsWith('"a.test"'));
  const b = lines.findIndex((l) => l.startsWith('"b.test"'));
  assert.ok(a !== -1 && a < b, "a.test is listed before b.test");
  assert.equal(lines[a], '"a.test" = "allow" # 2 connections; port 80; http');
  assert.equal(
    lines[b],
    '"b.test" = "allow" # 1 connection; ports 443, 8443; https-connect, socks5',
  );
  assert.match(
    text,
    /^# Written by `sandbox learn` at 2025-01-02T03:04:05\.006Z for: sh -c 'curl a\.test'$/m,
  );
  assert.match(text, /exactly the 2 hosts the command used \(3 connections in all\)/);
});

Deno.test("renderLearnedProfile() with no hosts writes an empty allowlist, still valid", () => {
  const text = renderLearnedProfile([], { command: ["true"], profile: "ci job", time: TIME });
  const value = plain(parse(text));
  assert.equal(value.default_permissions, "ci job");
  assert.deepEqual(value.permissions["ci job"].network.domains, {});
  assert.match(text, /\[permissions\."ci job"\.network\.domains\]/);
});

Deno.test("tomlString() escapes quotes, backslashes and control characters", () => {
  const tricky = 'a"b\\c\nd\u0001';
  assert.equal(parse(`k = ${tomlString(tricky)}`).k, tricky);
});

const EXISTING = `# Project sandbox profile: keep this comment
default_permissions = "ci"

[permissions.ci.network]
enabled = true
mode = "limited" # a comment about mode

[permissions.ci.network.domains]
# registries we trust
"a.test" = "allow"
"evil.test" = "deny" # never

# The next table's own comment
[permissions.other.network]
enabled = false
`;

Deno.test("mergeLearnedHosts() adds after the last entry of the domains table, keeping every comment and key", () => {
  const c: AllowedHost = { host: "c.test", ports: [80], protocols: ["http"], count: 3 };
  const evil: AllowedHost = { host: "EVIL.test", ports: [80], protocols: ["http"], count: 1 };
  const result = mergeLearnedHosts(EXISTING, [c, A, B, evil], {
    file: "ci.toml",
    command: ["make"],
    time: TIME,
  });
  assert.equal(result.profile, "ci");
  assert.deepEqual(result.added, ["b.test", "c.test"]);
  assert.deepEqual(result.alreadyAllowed, ["a.test"]);
  assert.deepEqual(result.keptDenied, ["EVIL.test"]);
  const expected = EXISTING.replace(
    '"evil.test" = "deny" # never\n',
    '"evil.test" = "deny" # never\n' +
      "# Added by `sandbox learn` at 2025-01-02T03:04:05.006Z for: make\n" +
      '"b.test" = "allow" # 1 connection; ports 443, 8443; https-connect, socks5\n' +
      '"c.test" = "allow" # 3 connections; port 80; http\n',
  );
  assert.equal(result.text, expected);
});

Deno.test("mergeLearnedHosts() changes nothing when every host is already there", () => {
  const result = mergeLearnedHosts(EXISTING, [A], { file: "ci.toml", command: ["make"] });
  assert.equal(result.text, EXISTING);
  assert.deepEqual(result.added, []);
});

Deno.test("mergeLearnedHosts() appends a domains table (and network table) when the profile has none", () => {
  const text =
    '# mine\ndefault_permissions = "dev"\n\n[permissions.dev.filesystem]\nwritable = ["/tmp/x"]\n';
  const result = mergeLearnedHosts(text, [A], { file: "dev.toml", command: ["x"], time: TIME });
  assert.ok(
    result.text.startsWith(text + "\n[permissions.dev.network]\nenabled = true\n\n"),
    result.text,
  );
  const value = plain(parse(result.text));
  assert.deepEqual(value.permissions.dev, {
    filesystem: { writable: ["/tmp/x"] },
    network: { enabled: true, domains: { "a.test": "allow" } },
  });
});

Deno.test("mergeLearnedHosts() on a file without profiles adds a learned profile and selects it", () => {
  const text =
    '# just a comment\n\n# about the managed part\n[execpolicy]\n"git push *" = "deny"\n';
  const result = mergeLearnedHosts(text, [A], { file: "p.toml", command: ["x"], time: TIME });
  assert.equal(result.profile, "learned");
  assert.ok(
    result.text.startsWith(
      'default_permissions = "learned"\n# just a comment\n\n# about the managed part\n[execpolicy]\n',
    ),
    result.text,
  );
  const value = plain(parse(result.text));
  assert.equal(value.default_permissions, "learned");
  assert.deepEqual(value.permissions.learned.network.domains, { "a.test": "allow" });
  assert.deepEqual(value.execpolicy, { "git push *": "deny" });
});

Deno.test("mergeLearnedHosts() keeps CRLF line endings and a last line without a line break", () => {
  const text = 'default_permissions = "p"\r\n[permissions.p.network.domains]\r\n"a.test" = "allow"';
  const result = mergeLearnedHosts(text, [B], { file: "p.toml", command: ["x"], time: TIME });
  assert.ok(!/[^\r]\n/.test(result.text), "every line break is CRLF");
  assert.deepEqual(plain(parse(result.text)).permissions.p.network.domains, {
    "a.test": "allow",
    "b.test": "allow",
  });
});

Deno.test("mergeLearnedHosts() refuses what it cannot edit in place, naming file and key", () => {
  const two = "[permissions.a.network]\nenabled = true\n[permissions.b.network]\nenabled = true\n";
  assert.throws(
    () => mergeLearnedHosts(two, [B], { file: "two.toml", command: ["x"] }),
    (error: unknown) => error instanceof ConfigError && /pass --profile NAME/.test(error.message),
  );
  assert.throws(
    () => mergeLearnedHosts("a = \n", [B], { file: "bad.toml", command: ["x"] }),
    (error: unknown) =>
      error instanceof ConfigError && error.problems[0].line === 1 &&
      /Invalid TOML/.test(error.message),
  );
  const notTable = 'default_permissions = "p"\n[permissions.p]\nnetwork = "on"\n';
  assert.throws(
    () => mergeLearnedHosts(notTable, [B], { file: "n.toml", command: ["x"] }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /n\.toml: key permissions\.p\.network: Expected a table/.test(error.message),
  );
});

Deno.test("mergeLearnedHosts() adds to domains written inline (no room for comments there)", () => {
  const inline =
    '# keep me\ndefault_permissions = "p"\n[permissions.p.network]\ndomains = { "a.test" = "allow" } # inline\n';
  const result = mergeLearnedHosts(inline, [B], { file: "i.toml", command: ["x"], time: TIME });
  assert.deepEqual(result.added, ["b.test"]);
  assert.match(result.text, /^# keep me\n/);
  assert.deepEqual(plain(parse(result.text)).permissions.p.network.domains, {
    "a.test": "allow",
    "b.test": "allow",
  });
});

Deno.test("mergeLearnedHosts() adds writable paths as written, ~/ kept, and comments a note on refused local hosts", () => {
  const text =
    '# mine\ndefault_permissions = "ci"\n\n[permissions.ci.filesystem]\nwritable = ["~/out"] # ours\n\n[permissions.ci.network.domains]\n"a.test" = "allow"\n';
  const local: AllowedHost = {
    host: "mirror.corp",
    ports: [443],
    protocols: ["https-connect"],
    count: 3,
    note: "refused while learning: a private address",
  };
  const result = mergeLearnedHosts(text, [local], {
    file: "ci.toml",
    command: ["npm", "ci"],
    time: TIME,
    writable: ["~/out", "~/.cache/tool"],
  });
  assert.deepEqual(result.addedWritable, ["~/.cache/tool"]);
  assert.equal(
    result.text,
    '# mine\ndefault_permissions = "ci"\n\n[permissions.ci.filesystem]\nwritable = ["~/out", "~/.cache/tool"] # ours\n\n[permissions.ci.network.domains]\n"a.test" = "allow"\n' +
      "# Added by `sandbox learn` at 2025-01-02T03:04:05.006Z for: npm ci\n" +
      '"mirror.corp" = "allow" # refused while learning: a private address\n',
  );
});

// ---- round trip through the real config loader ----

async function loadOnly(file: string, profile?: string) {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const managed = `${dir}/managed.toml`;
  await Deno.writeTextFile(managed, "");
  return await loadEffectiveConfig({ config: [file], profile }, {
    env: { SANDBOX_MANAGED_CONFIG: managed, XDG_CONFIG_HOME: `${dir}/none` },
  });
}

Deno.test("renderLearnedProfile() and mergeLearnedHosts() output loads with loadEffectiveConfig()", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const file = `${dir}/learned.toml`;
  await Deno.writeTextFile(file, renderLearnedProfile([B, A], { command: ["x"], time: TIME }));
  const config = await loadOnly(file);
  assert.equal(config.profileName, "learned");
  assert.deepEqual(
    config.network.domains.map((r) => [r.pattern, r.action]),
    [["a.test", "allow"], ["b.test", "allow"]],
  );
  assert.equal(config.network.enabled, true);

  const merged = mergeLearnedHosts(EXISTING, [B], { file, command: ["x"], time: TIME });
  await Deno.writeTextFile(file, merged.text);
  const again = await loadOnly(file);
  assert.equal(again.profileName, "ci");
  assert.equal(again.network.mode, "limited");
  assert.deepEqual(
    again.network.domains.map((r) => [r.pattern, r.action]).sort(),
    [["a.test", "allow"], ["b.test", "allow"], ["evil.test", "deny"]],
  );
});

// ---- the command line ----

Deno.test("sandbox learn: usage errors say what to type instead (exit 2)", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["learn"],
      /Missing command: put it after "--", e\.g\. "sandbox learn --out sandbox\.toml -- npm ci"/,
    ],
    [["learn", "--"], /Missing command/],
    [["learn", "--json", "--", "true"], /--json needs --out FILE or --merge FILE/],
    [
      ["learn", "--merge", "/nonexistent/sandbox.toml", "--", "true"],
      /Cannot merge into "\/nonexistent\/sandbox\.toml": the file does not exist: use --out/,
    ],
    [["learn", "--bogus", "--", "true"], /Invalid arguments for "sandbox learn"/],
  ];
  for (const [args, pattern] of cases) {
    const io = captureIo();
    assert.equal(await main(args, io), 2, args.join(" "));
    assert.match(io.err, pattern);
    assert.match(io.err, /Run "sandbox help learn" for usage/);
  }
});

Deno.test("sandbox learn --merge refuses a broken profile before running anything", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const file = `${dir}/bad.toml`;
  const marker = `${dir}/ran`;
  await Deno.writeTextFile(file, "[permissions.a.network]\n[permissions.b.network]\n");
  const io = captureIo();
  assert.equal(await main(["learn", "--merge", file, "--", "touch", marker], io), 2);
  assert.match(io.err, /pass --profile NAME/);
  await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
});

// ---- end to end: learn, then run with the written profile ----

/** `sandbox ARGS…` ($SANDBOX_BIN when set) outside GitHub Actions, so no annotations mix in. */
function runCli(
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  return sandboxCli(args, {
    ...options,
    sandboxBin: true,
    unset: ["GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"],
    timeoutMs: 90_000,
  });
}

/** Two loopback HTTP servers standing in for two hosts; counts requests. */
async function withTwoHosts(
  fn: (ports: { a: number; b: number }, hits: { a: number; b: number }) => Promise<void>,
): Promise<void> {
  const hits = { a: 0, b: 0 };
  const serve = (name: "a" | "b") =>
    Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
      hits[name]++;
      return new Response(`hello from ${name}\n`);
    });
  const a = serve("a");
  const b = serve("b");
  try {
    await fn({ a: a.addr.port, b: b.addr.port }, hits);
  } finally {
    await a.shutdown();
    await b.shutdown();
  }
}

Deno.test("sandbox learn on two hosts writes their allowlist; run with it passes; without one host it fails naming it", async () => {
  await withTwoHosts(async (ports, hits) => {
    await using tmp = await tempDir();
    const dir = tmp.path;
    // Isolated config: no user file, an empty managed file.
    await Deno.writeTextFile(`${dir}/managed.toml`, "");
    const env = { SANDBOX_MANAGED_CONFIG: `${dir}/managed.toml`, XDG_CONFIG_HOME: `${dir}/xdg` };
    const resolve = ["--resolve", "a.test=127.0.0.1", "--resolve", "b.test=127.0.0.1"];
    const fetchBoth = [
      "sh",
      "-c",
      `curl -sSf http://a.test:${ports.a}/ && curl -sSf http://b.test:${ports.b}/ && curl -sSf http://a.test:${ports.a}/x`,
    ];
    const profile = `${dir}/learned.toml`;
    // Loopback servers are private addresses: learn reaches them only with --allow-local-binding.
    const learned = await runCli(
      ["learn", "--allow-local-binding", ...resolve, "--out", profile, "--", ...fetchBoth],
      { env, cwd: dir },
    );
    assert.equal(learned.code, 0, learned.stderr);
    assert.equal(learned.stdout, "hello from a\nhello from b\nhello from a\n");
    assert.deepEqual(hits, { a: 2, b: 1 });
    assert.match(
      learned.stderr,
      /sandbox learn: wrote .*learned\.toml: an allowlist of 2 hosts in profile "learned"/,
    );
    const text = await Deno.readTextFile(profile);
    const entries = text.split("\n").filter((line) => line.includes('= "allow"'));
    assert.deepEqual(entries, [
      `"a.test" = "allow" # 2 connections; port ${ports.a}; http`,
      `"b.test" = "allow" # 1 connection; port ${ports.b}; http`,
    ]);
    assert.doesNotMatch(text, /"\*"/);

    // Lock down: the written profile alone (no --allow-local-binding: exact names unlock loopback).
    const locked = await runCli(["run", "--config", profile, ...resolve, "--", ...fetchBoth], {
      env,
      cwd: dir,
    });
    assert.equal(locked.code, 0, locked.stderr);
    assert.equal(locked.stdout, "hello from a\nhello from b\nhello from a\n");
    assert.doesNotMatch(locked.stderr, /blocked/);

    // One host removed: the command fails and the summary names the host.
    await Deno.writeTextFile(profile, text.replace(/^"b\.test".*\n/m, ""));
    const failing = await runCli(["run", "--config", profile, ...resolve, "--", ...fetchBoth], {
      env,
      cwd: dir,
    });
    assert.notEqual(failing.code, 0);
    assert.match(failing.stderr, /sandbox: blocked 1 connection to 1 host:/);
    assert.match(
      failing.stderr,
      new RegExp(
        `^  b\\.test:${ports.b} +not_allowed: Domain not in allowlist +\\(once\\)$`,
        "m",
      ),
    );
    assert.deepEqual(hits, { a: 5, b: 2 });
  });
});

Deno.test("sandbox learn --merge adds to an existing profile in place and exits with the command's code", async () => {
  await withTwoHosts(async (ports) => {
    await using tmp = await tempDir();
    const dir = tmp.path;
    await Deno.writeTextFile(`${dir}/managed.toml`, "");
    const env = { SANDBOX_MANAGED_CONFIG: `${dir}/managed.toml`, XDG_CONFIG_HOME: `${dir}/xdg` };
    const profile = `${dir}/sandbox.toml`;
    const original = [
      "# Our CI profile: reviewed by the platform team",
      'default_permissions = "ci"',
      "",
      "[permissions.ci.network.domains]",
      '"a.test" = "allow" # the registry',
      "",
      "# unrelated settings stay",
      "[permissions.ci.filesystem]",
      'writable = ["/tmp"]',
      "",
    ].join("\n");
    await Deno.writeTextFile(profile, original);
    const learned = await runCli([
      "learn",
      "--allow-local-binding",
      "--resolve",
      "a.test=127.0.0.1",
      "--resolve",
      "b.test=127.0.0.1",
      "--merge",
      profile,
      "--",
      "sh",
      "-c",
      `curl -sS http://a.test:${ports.a}/ http://b.test:${ports.b}/; exit 7`,
    ], { env, cwd: dir });
    assert.equal(learned.code, 7, learned.stderr);
    assert.match(
      learned.stderr,
      /added 1 host to profile "ci" \(1 already allowed\) \(the command exited 7/,
    );
    const text = await Deno.readTextFile(profile);
    const [head, tail] = original.split("\n\n# unrelated");
    assert.ok(text.startsWith(head + "\n# Added by `sandbox learn` at "), text);
    assert.match(
      text,
      new RegExp(
        `^"b\\.test" = "allow" # 1 connection; port ${ports.b}; http\\n\\n# unrelated`,
        "m",
      ),
    );
    assert.ok(text.endsWith("# unrelated" + tail), text);
  });
});

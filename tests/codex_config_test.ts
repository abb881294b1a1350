/**
 * Codex configs as Codex's own documentation and repository write them
 * (`testdata/codex/`, each file naming its source): they load, map onto the
 * sandbox's file view as documented in docs/profiles.md, and what the
 * sandbox cannot enforce is refused (exit 2), never dropped. The deny-glob
 * tests run real bwrap, as root and as an unprivileged user.
 */
import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { loadEffectiveConfig } from "../profiles/load.ts";
import { validateConfigText } from "../profiles/validate.ts";
import { buildSandboxPlan, collectHostFacts } from "../sandbox/build_plan.ts";
import { buildBwrapArgs } from "../sandbox/bwrap_args.ts";
import { onPath, sandboxCli, type TempDir } from "./cli_helpers.ts";
import { hasProgram } from "./run_helpers.ts";

const DATA = decodeURIComponent(new URL("../testdata/codex/", import.meta.url).pathname);
const READY = Deno.build.os === "linux" && onPath("bwrap");

/** A temp dir outside /tmp (which is private inside the sandbox), so the command sees it. */
async function visibleTempDir(prefix: string): Promise<TempDir> {
  const path = await Deno.makeTempDir({ dir: "/var/tmp", prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** An environment with no user or managed config but the ones a test names. */
function env(home: string, managed = ""): Record<string, string> {
  return { HOME: home, XDG_CONFIG_HOME: `${home}/xdg`, SANDBOX_MANAGED_CONFIG: managed };
}

async function load(file: string, cwd = "/work/app", managed = "") {
  return await loadEffectiveConfig({ config: [`${DATA}${file}`] }, {
    env: env("/home/dev", managed),
    cwd,
  });
}

Deno.test("Codex docs examples: every file in testdata/codex validates with no problem", async () => {
  const files = [...Deno.readDirSync(DATA)].map((e) => e.name).sort();
  assert.ok(files.length >= 5, files.join(", "));
  for (const name of files) {
    const kind = name.startsWith("requirements") ? "managed" : "user";
    const result = await validateConfigText(await Deno.readTextFile(`${DATA}${name}`), {
      file: name,
      kind,
    });
    assert.ok(result.ok, `${name}: ${result.ok ? "" : JSON.stringify(result.problems)}`);
  }
});

Deno.test("Codex project-edit: extends :workspace, denies **/*.env in every workspace root, keeps .git read-only", async () => {
  const config = await load("project_edit.toml");
  assert.equal(config.profileName, "project-edit");
  const fs = config.filesystem;
  assert.equal(fs.readRoots, null);
  assert.deepEqual(fs.workspace, {
    writable: true,
    roots: [],
    rules: [
      { subpath: ".git", access: "read", glob: false },
      { subpath: ".agents", access: "read", glob: false },
      { subpath: ".codex", access: "read", glob: false },
      { subpath: "**/*.env", access: "deny", glob: true },
    ],
  });
  assert.ok(config.network.enabled);
  assert.deepEqual(
    config.network.domains.map((r) => [r.pattern, r.action]),
    [["api.openai.com", "allow"]],
  );
});

Deno.test("Codex restricted-workspace: reads limited to :minimal, two extra roots, private/ denied in each", async () => {
  const config = await load("restricted_workspace.toml", "/Users/alice/project");
  const fs = config.filesystem;
  assert.deepEqual(fs.readRoots, [
    "/bin",
    "/sbin",
    "/usr",
    "/etc",
    "/lib",
    "/lib64",
    "/nix/store",
    "/run/current-system/sw",
  ]);
  assert.deepEqual(fs.workspace?.roots, ["/Users/alice/project", "/Users/alice/other-project"]);
  const plan = buildSandboxPlan(config, ["true"], {
    cwd: "/Users/alice/project",
    env: { PATH: "/usr/bin" },
    runDir: "/var/tmp/run-x",
    network: null,
    host: { uid: 1000, socketPaths: [], pathKinds: new Map(), allowedSockets: new Map() },
  });
  // The other root is writable and shown; private/ in both is denied; "private/**" is a glob.
  assert.ok(plan.writable.includes("/Users/alice/other-project"));
  assert.deepEqual(plan.denyRead, [
    "/Users/alice/project/private",
    "/Users/alice/other-project/private",
  ]);
  assert.ok(plan.readRoots?.includes("/usr"));
  const args = buildBwrapArgs(plan);
  assert.ok(!args.join(" ").includes("--ro-bind / /"), "the whole root must not be shown");
  assert.ok(args.join(" ").includes("--ro-bind-try /usr /usr"));
});

Deno.test("Codex dev profile: workspace_roots from ~ join the working dir; .git, .codex, .vscode stay read-only", async () => {
  const config = await load("dev_workspace_roots.toml", "/home/dev/code/codex");
  assert.deepEqual(config.filesystem.workspace?.roots, [
    "/home/dev/code/openai",
    "/home/dev/code/developers-website",
  ]);
  const plan = buildSandboxPlan(config, ["true"], {
    cwd: "/home/dev/code/codex",
    env: { PATH: "/usr/bin" },
    runDir: "/var/tmp/run-x",
    network: null,
    host: { uid: 1000, socketPaths: [], pathKinds: new Map(), allowedSockets: new Map() },
  });
  for (const root of ["/home/dev/code/codex", "/home/dev/code/openai"]) {
    for (const dir of [".git", ".codex", ".vscode"]) {
      assert.ok(plan.readOnlyPaths?.includes(`${root}/${dir}`), `${root}/${dir}`);
    }
  }
  // No ":root" = "read": reads are limited to the workspace roots (as in Codex).
  assert.deepEqual(config.filesystem.readRoots, []);
});

Deno.test("Codex sample config: every network key loads; admin keys are noted, deny globs and paths kept", async () => {
  const config = await load("config_sample_permissions.toml");
  assert.equal(config.network.mode, "limited");
  assert.equal(config.network.enableSocks5, false);
  assert.deepEqual(config.filesystem.denyRead, ["/absolute/path/to/secrets"]);
  assert.equal(config.filesystem.globScanMaxDepth, 3);
  assert.ok(config.filesystem.workspace?.rules.some((r) => r.subpath === "**/*.env" && r.glob));
  assert.deepEqual(
    config.network.unixSockets.map((r) => [r.path, r.action]),
    [["/var/run/docker.sock", "allow"]],
  );
  assert.match(config.notices.join("\n"), /admin_url/);
});

Deno.test("Codex classic sandbox_mode = workspace-write: writable_roots are writable, network_access = false turns the network off", async () => {
  const config = await load("legacy_workspace_write.toml");
  assert.equal(config.profileName, ":workspace");
  assert.ok(config.filesystem.writable.includes("/srv/build-cache"));
  assert.equal(config.network.enabled, false);
  assert.equal(config.filesystem.workspace?.writable, true);
});

Deno.test('Codex older docs: :project_roots and "none" mean :workspace_roots and deny', async () => {
  const config = await load("approvals_deny_env.toml");
  assert.ok(
    config.filesystem.workspace?.rules.some((r) =>
      r.subpath === "**/*.env" && r.access === "deny" && r.glob
    ),
  );
});

Deno.test('Codex unix socket "deny" closes a socket a later allow cannot reopen in the same profile', async () => {
  const config = await load("unix_socket_deny.toml");
  assert.deepEqual(
    config.network.unixSockets.map((r) => [r.path, r.action]),
    [["/var/run/docker.sock", "none"], ["/run/docker.sock", "none"], [
      "/run/podman/podman.sock",
      "none",
    ]],
  );
});

Deno.test("Codex managed requirements: deny_read paths and globs are a floor; application.network denies bind commands", async () => {
  const config = await load("project_edit.toml", "/work/app", `${DATA}requirements_deny_read.toml`);
  assert.ok(config.filesystem.denyGlobs?.includes("/**/*.env"));
  assert.ok(config.filesystem.denyRead.includes("/home/dev/.ssh"));
  const app = await load(
    "project_edit.toml",
    "/work/app",
    `${DATA}requirements_application_network.toml`,
  );
  const rules = app.network.domains.map((r) => [r.pattern, r.action]);
  assert.ok(rules.some(([p, a]) => p === "gateway.example" && a === "deny"));
  assert.ok(
    !rules.some(([p]) => p === "allowed.example"),
    "an application allow never reaches commands",
  );
});

/** Writes `text` as a config in a fresh dir and returns the problems loading it reports. */
async function problemsOf(text: string, managed?: string): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "codex_refuse_" });
  try {
    await Deno.writeTextFile(`${dir}/c.toml`, text);
    if (managed !== undefined) await Deno.writeTextFile(`${dir}/requirements.toml`, managed);
    await loadEffectiveConfig({ config: [`${dir}/c.toml`] }, {
      env: env(dir, managed === undefined ? "" : `${dir}/requirements.toml`),
      cwd: dir,
    });
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems.map((p) => `${p.keyPath}: ${p.message}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("Codex features the sandbox cannot enforce are refused with what to do instead", async () => {
  const cases: [string, RegExp, string?][] = [
    [
      'default_permissions = ":danger-full-access"\n',
      /":danger-full-access" \(no sandbox\) is refused/,
    ],
    [
      'default_permissions = "p"\n[permissions.p]\nextends = ":danger-full-access"\n',
      /cannot extend ":danger-full-access"/,
    ],
    [
      'default_permissions = "p"\n[permissions.p.filesystem]\n":root" = "write"\n',
      /":root" = "write" would make the whole filesystem writable/,
    ],
    [
      'default_permissions = "p"\n[permissions.p]\nextends = ":workspace"\n[permissions.p.filesystem]\n":future_thing" = "deny"\n',
      /special path this version does not know/,
    ],
    [
      'default_permissions = "p"\n[permissions.p]\nextends = ":workspace"\n[permissions.p.network.mitm.hooks.h]\nhost = "a.example"\nmethods = ["GET"]\npath_prefixes = ["/"]\naction = ["x"]\n',
      /Unknown action "x": define it under \[permissions\.p\.network\.mitm\.actions\.x\]/,
    ],
    [
      'sandbox_mode = "read-only"\ndefault_permissions = "p"\n[permissions.p]\nextends = ":workspace"\n',
      /Codex would use sandbox_mode and ignore the profile/,
    ],
    [
      'default_permissions = "p"\n[permissions.p.filesystem]\n":minimal" = "read"\n',
      /gives the workspace no access/,
    ],
    [
      'default_permissions = "org"\n[permissions.org.network]\nenabled = true\n',
      /Profile "org" is defined by the managed requirements .* cannot be redefined/,
      '[permissions.org]\nextends = ":workspace"\n',
    ],
    [
      'default_permissions = ":workspace"\n',
      /Profile ":workspace" is not allowed by the managed requirements/,
      'allowed_permissions = [":read-only"]\n',
    ],
    [
      'sandbox_mode = "workspace-write"\n',
      /sandbox_mode = "workspace-write" is not allowed by .*: use one of "read-only"/,
      'allowed_sandbox_modes = ["read-only"]\n',
    ],
  ];
  for (const [text, expected, managed] of cases) {
    const problems = await problemsOf(text, managed);
    assert.ok(problems.some((p) => expected.test(p)), `${text}\n=> ${problems.join("\n")}`);
  }
  // An unused profile with an unenforceable entry does not stop a run with another profile.
  assert.deepEqual(
    await problemsOf(
      'default_permissions = "ok"\n[permissions.ok]\nextends = ":workspace"\n[permissions.bad.filesystem]\n":root" = "write"\n',
    ),
    [],
  );
});

/** A workspace with secrets at several depths and files that must stay readable. */
async function plantWorkspace(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/app/deep/er`, { recursive: true });
  await Deno.mkdir(`${dir}/.git`, { recursive: true });
  await Deno.writeTextFile(`${dir}/.env`, "ROOT_SECRET=1");
  await Deno.writeTextFile(`${dir}/app/deep/er/prod.env`, "DEEP_SECRET=1");
  await Deno.writeTextFile(`${dir}/README.md`, "readable");
  await Deno.writeTextFile(`${dir}/app/config.json`, "{}");
  await Deno.writeTextFile(`${dir}/.git/config`, "[core]");
}

const NONE_PROFILE = [
  'default_permissions = "secrets-off"',
  "[permissions.secrets-off]",
  'extends = ":workspace"',
  '[permissions.secrets-off.filesystem.":workspace_roots"]',
  '"**/*.env" = "none"',
  "",
].join("\n");

const PROBE = [
  'cat .env >/dev/null 2>&1 && echo "root-env:read" || echo "root-env:denied"',
  'cat app/deep/er/prod.env >/dev/null 2>&1 && echo "deep-env:read" || echo "deep-env:denied"',
  'echo "readme:$(cat README.md)"',
  'echo "json:$(cat app/config.json)"',
  'echo x >> .git/config 2>/dev/null && echo "git:written" || echo "git:readonly"',
  'echo new > made.txt && echo "cwd:writable"',
].join("; ");

function assertHidden(stdout: string): void {
  assert.match(stdout, /^root-env:denied$/m);
  assert.match(stdout, /^deep-env:denied$/m);
  assert.match(stdout, /^readme:readable$/m);
  assert.match(stdout, /^json:\{\}$/m);
  assert.match(stdout, /^git:readonly$/m);
  assert.match(stdout, /^cwd:writable$/m);
  assert.doesNotMatch(stdout, /SECRET/);
}

Deno.test({
  name:
    'sandbox run (real bwrap): "**/*.env" = "none" under ":workspace_roots" hides every .env in the workspace, other files stay readable',
  ignore: !READY,
  async fn() {
    await using dir = await visibleTempDir("codex-deny-env-");
    await plantWorkspace(`${dir.path}/ws`);
    await Deno.writeTextFile(`${dir.path}/config.toml`, NONE_PROFILE);
    const r = await sandboxCli(
      ["run", "--config", `${dir.path}/config.toml`, "--", "sh", "-c", PROBE],
      { cwd: `${dir.path}/ws`, env: env(dir.path), timeoutMs: 90_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    assertHidden(r.stdout);
    // The secret is untouched on the host, and the workspace write landed.
    assert.equal(await Deno.readTextFile(`${dir.path}/ws/.env`), "ROOT_SECRET=1");
    assert.equal(await Deno.readTextFile(`${dir.path}/ws/.git/config`), "[core]");
    assert.equal(await Deno.readTextFile(`${dir.path}/ws/made.txt`), "new\n");
    // The documented project-edit file ("deny" spelling) hides them the same way.
    const docs = await sandboxCli(
      ["run", "--config", `${DATA}project_edit.toml`, "--", "sh", "-c", PROBE],
      { cwd: `${dir.path}/ws`, env: env(dir.path), timeoutMs: 90_000 },
    );
    assert.equal(docs.code, 0, docs.stderr);
    assertHidden(docs.stdout);
  },
});

/** Whether `nobody` may create user namespaces with bwrap here. */
function unprivilegedWorks(): boolean {
  if (!hasProgram("/usr/bin/setpriv") || Deno.uid() !== 0 || !READY) return false;
  try {
    return new Deno.Command("/usr/bin/setpriv", {
      args: [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "bwrap",
        "--unshare-user",
        "--ro-bind",
        "/",
        "/",
        "/bin/true",
      ],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name:
    'bwrap as an unprivileged user: the plan for "**/*.env" = "none" hides every .env, other files stay readable',
  ignore: !unprivilegedWorks(),
  async fn() {
    await using dir = await visibleTempDir("codex-deny-env-unpriv-");
    const ws = `${dir.path}/ws`;
    await plantWorkspace(ws);
    await Deno.writeTextFile(`${dir.path}/config.toml`, NONE_PROFILE);
    const runDir = `${dir.path}/run`;
    await Deno.mkdir(runDir, { mode: 0o700 });
    await new Deno.Command("/bin/chown", { args: ["-R", "65534:65534", dir.path] }).output();
    const config = await loadEffectiveConfig({ config: [`${dir.path}/config.toml`] }, {
      env: env(dir.path),
      cwd: ws,
    });
    const host = await collectHostFacts(config, { env: {}, runDir, cwd: ws });
    const plan = buildSandboxPlan(config, ["sh", "-c", PROBE], {
      cwd: ws,
      env: { PATH: "/usr/bin:/bin" },
      runDir,
      network: null,
      host: { ...host, uid: 65534 },
    });
    const out = await new Deno.Command("/usr/bin/setpriv", {
      args: ["--reuid=65534", "--regid=65534", "--clear-groups", "bwrap", ...buildBwrapArgs(plan)],
      cwd: ws,
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    assertHidden(stdout);
  },
});

Deno.test("Codex :read-only keeps the working dir read-only; :workspace keeps .git, .agents, .codex read-only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "codex_builtin_" });
  try {
    const plans = [];
    for (const name of [":read-only", ":workspace"]) {
      const config = await loadEffectiveConfig({ profile: name }, { env: env(dir), cwd: "/w" });
      plans.push(buildSandboxPlan(config, ["true"], {
        cwd: "/w",
        env: { PATH: "/usr/bin" },
        runDir: "/var/tmp/run-x",
        network: null,
        host: { uid: 1000, socketPaths: [], pathKinds: new Map(), allowedSockets: new Map() },
      }));
    }
    const [readOnly, workspace] = plans;
    assert.equal(readOnly.readOnlyCwd, true);
    assert.ok(!buildBwrapArgs(readOnly).includes("--bind"), "nothing is bound writable");
    assert.equal(workspace.readOnlyCwd, undefined);
    assert.deepEqual(workspace.readOnlyPaths, ["/w/.git", "/w/.agents", "/w/.codex"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "sandbox run (real bwrap): a profile without :root but with :minimal reads only the system dirs and the workspace",
  ignore: !READY,
  async fn() {
    await using dir = await visibleTempDir("codex-minimal-");
    await Deno.mkdir(`${dir.path}/ws`);
    await Deno.mkdir(`${dir.path}/elsewhere`);
    await Deno.writeTextFile(`${dir.path}/ws/notes.txt`, "mine");
    await Deno.writeTextFile(`${dir.path}/elsewhere/secret.txt`, "OUTSIDE_SECRET");
    await Deno.writeTextFile(
      `${dir.path}/config.toml`,
      [
        'default_permissions = "tight"',
        "[permissions.tight.filesystem]",
        '":minimal" = "read"',
        '[permissions.tight.filesystem.":workspace_roots"]',
        '"." = "write"',
        "",
      ].join("\n"),
    );
    const script = [
      'echo "notes:$(cat notes.txt)"',
      `cat ${dir.path}/elsewhere/secret.txt 2>/dev/null; echo "outside:$?"`,
      'test -x /usr/bin/env && echo "usr:yes"',
      'echo w > out.txt && echo "write:yes"',
    ].join("; ");
    const r = await sandboxCli(
      ["run", "--config", `${dir.path}/config.toml`, "--", "/bin/sh", "-c", script],
      { cwd: `${dir.path}/ws`, env: env(dir.path), timeoutMs: 90_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^notes:mine$/m);
    assert.match(r.stdout, /^outside:[1-9]/m);
    assert.match(r.stdout, /^usr:yes$/m);
    assert.match(r.stdout, /^write:yes$/m);
    assert.doesNotMatch(r.stdout, /OUTSIDE_SECRET/);
  },
});

Deno.test("Codex managed requirements: a managed profile (openai/codex cloud-managed test) is selected by the managed default_permissions", async () => {
  const dir = await Deno.makeTempDir({ prefix: "codex_managed_profile_" });
  try {
    const e = env(dir, `${DATA}requirements_managed_profile.toml`);
    const config = await loadEffectiveConfig({}, { env: e, cwd: "/w" });
    assert.equal(config.profileName, "managed-cloud");
    assert.equal(config.network.enabled, true);
    assert.deepEqual(config.filesystem.workspace?.rules.map((r) => r.subpath), [
      ".git",
      ".agents",
      ".codex",
    ]);
    await assert.rejects(
      loadEffectiveConfig({ profile: ":workspace" }, { env: e, cwd: "/w" }),
      (error) => error instanceof ConfigError && /not allowed by the managed/.test(error.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Codex managed requirements: default_permissions and [allowed_permission_profiles] pick and limit the profile", async () => {
  const dir = await Deno.makeTempDir({ prefix: "codex_managed_default_" });
  try {
    await Deno.writeTextFile(
      `${dir}/requirements.toml`,
      'default_permissions = ":read-only"\n[allowed_permission_profiles]\n":read-only" = true\n":workspace" = false\n',
    );
    const e = env(dir, `${dir}/requirements.toml`);
    const config = await loadEffectiveConfig({}, { env: e, cwd: dir });
    assert.equal(config.profileName, ":read-only");
    await assert.rejects(
      loadEffectiveConfig({ profile: ":workspace" }, { env: e, cwd: dir }),
      (error) => error instanceof ConfigError && /not allowed by the managed/.test(error.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test('Codex :tmpdir = "deny" hides a TMPDIR outside /tmp', async () => {
  const dir = await Deno.makeTempDir({ prefix: "codex_tmpdir_" });
  try {
    await Deno.writeTextFile(
      `${dir}/c.toml`,
      'default_permissions = "p"\n[permissions.p]\nextends = ":workspace"\n[permissions.p.filesystem]\n":tmpdir" = "deny"\n',
    );
    const config = await loadEffectiveConfig({ config: [`${dir}/c.toml`] }, {
      env: { ...env(dir), TMPDIR: "/var/tmp/user-tmp" },
      cwd: dir,
    });
    assert.ok(config.filesystem.denyRead.includes("/var/tmp/user-tmp"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "sandbox run (real bwrap): a managed [permissions.filesystem] deny_read glob hides matches whatever the profile",
  ignore: !READY,
  async fn() {
    await using dir = await visibleTempDir("codex-managed-deny-");
    await plantWorkspace(`${dir.path}/ws`);
    await Deno.writeTextFile(
      `${dir.path}/requirements.toml`,
      `[permissions.filesystem]\ndeny_read = ["${dir.path}/ws/**/*.env", "~/.ssh"]\n`,
    );
    const r = await sandboxCli(["run", "--", "sh", "-c", PROBE], {
      cwd: `${dir.path}/ws`,
      env: env(dir.path, `${dir.path}/requirements.toml`),
      timeoutMs: 90_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^root-env:denied$/m);
    assert.match(r.stdout, /^deep-env:denied$/m);
    assert.match(r.stdout, /^readme:readable$/m);
    // Without a Codex profile, our defaults apply: .git stays writable.
    assert.match(r.stdout, /^git:written$/m);
  },
});

Deno.test("Codex mitm hooks: a profile with [network.mitm] hooks and actions loads unchanged and decides as Codex does", async () => {
  const { compileNetworkPolicy } = await import("../policy/policy.ts");
  const { decideRequest } = await import("../policy/decide_request.ts");
  const config = await load("mitm_hooks.toml");
  const rules = config.network.requestRules ?? [];
  assert.deepEqual(rules.map((r) => [r.name, r.host, r.methods]), [
    ["mitm.hooks.issues", "api.github.com", ["POST", "PUT"]],
    ["mitm.hooks.reads", "api.github.com", ["GET", "HEAD"]],
  ]);
  assert.equal(config.network.mitm, true, "hooks turn MITM on, as in Codex");
  assert.deepEqual(rules[0].stripHeaders, ["authorization"]);
  assert.deepEqual(rules[0].injectHeaders, [
    { name: "authorization", fromEnv: "CODEX_GITHUB_TOKEN", fromFile: null, prefix: "Bearer " },
  ]);
  const policy = compileNetworkPolicy(config.network);
  const tunnel = {
    host: "api.github.com",
    port: 443,
    addresses: ["140.82.112.6"],
    rule: "api.github.com",
    ruleSource: "t",
  };
  const decide = (method: string, target: string, headers: Record<string, string> = {}) =>
    decideRequest({
      door: "mitm",
      host: "api.github.com",
      port: 443,
      method,
      tunnel,
      target,
      headers: Object.entries(headers).map(([name, value]) => ({ name, value })),
    }, {
      policy,
      resolver: () => Promise.reject(new Error("no lookups")),
      socksEnabled: false,
      mitm: true,
    });
  const post = await decide("POST", "/repos/openai/codex/issues?state=open", {
    "X-GitHub-Api-Version": "2022-11-28",
  });
  assert.equal(post.decision, "allow");
  assert.equal(post.rule, "mitm.hooks.issues");
  const read = await decide("GET", "/repos/openai/codex/pulls/1");
  assert.equal(read.rule, "mitm.hooks.reads");
  for (
    const [method, target] of [
      ["POST", "/repos/openai/codex/issues?state=closed"],
      ["DELETE", "/repos/openai/codex"],
      ["GET", "/user"],
    ]
  ) {
    const denied = await decide(method, target, { "x-github-api-version": "2022-11-28" });
    assert.equal(denied.reason, "mitm_hook_denied", `${method} ${target}`);
  }
});

/**
 * Tests of the Seatbelt renderer: golden profiles for typical plans, and
 * properties every rendered profile must have. Every profile this file
 * renders goes through the strict checker (`renderChecked`).
 *
 * Golden files live in testdata/seatbelt/ (`NAME.sb` and `NAME.params.json`).
 * After an intended change to the renderer, rewrite them with
 *
 *     UPDATE_GOLDEN=1 npx -y deno@2.9.6 test -A sandbox/seatbelt_test.ts
 *
 * and review the diff before committing it.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { SandboxError } from "../errors.ts";
import type { SandboxPlan } from "./plan.ts";
import { renderSeatbeltProfile, seatbeltPathForms, type SeatbeltProfile } from "./seatbelt.ts";
import { checkSeatbeltProfile } from "./seatbelt_check.ts";

const GOLDEN_DIR = new URL("../testdata/seatbelt/", import.meta.url);
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";

/** A plan with the given changes; the base has no network and no sockets. */
function plan(changes: Partial<SandboxPlan> = {}): SandboxPlan {
  return {
    argv: ["npm", "ci"],
    cwd: "/Users/dev/project",
    env: { PATH: "/usr/bin:/bin", HOME: "/Users/dev", TMPDIR: "/var/folders/zz/abc123/T/" },
    network: { kind: "none" },
    unixSockets: { kind: "allowlist", paths: [] },
    writable: [],
    denyRead: [],
    extraBinds: [],
    runDir: "/private/var/folders/zz/abc123/T/sandbox-run-1",
    ...changes,
  };
}

const PROXY = { kind: "proxy", httpPort: 3128, socksPort: 1080, proxySocket: null } as const;

/** Renders and runs the strict checker; fails the test on any problem. */
function renderChecked(p: SandboxPlan, options?: { logTag?: string }): SeatbeltProfile {
  const result = renderSeatbeltProfile(p, options);
  const problems = checkSeatbeltProfile(result.profile, result.params);
  assert.deepEqual(problems, [], `checker problems:\n${JSON.stringify(problems, null, 2)}`);
  // Comments never hold a slash, so no path can hide in one.
  for (const line of result.profile.split("\n")) {
    if (line.trimStart().startsWith(";")) assert.ok(!line.includes("/"), line);
  }
  return result;
}

async function golden(name: string, p: SandboxPlan): Promise<SeatbeltProfile> {
  const result = renderChecked(p);
  const sbUrl = new URL(`${name}.sb`, GOLDEN_DIR);
  const paramsUrl = new URL(`${name}.params.json`, GOLDEN_DIR);
  const paramsText = JSON.stringify(result.params, null, 2) + "\n";
  if (UPDATE) {
    await Deno.mkdir(GOLDEN_DIR, { recursive: true });
    await Deno.writeTextFile(sbUrl, result.profile);
    await Deno.writeTextFile(paramsUrl, paramsText);
  }
  assert.equal(result.profile, await Deno.readTextFile(sbUrl), `${name}.sb differs`);
  assert.equal(paramsText, await Deno.readTextFile(paramsUrl), `${name}.params.json differs`);
  // The golden files themselves pass the checker (they are what reviewers read).
  assert.deepEqual(
    checkSeatbeltProfile(await Deno.readTextFile(sbUrl), JSON.parse(paramsText)),
    [],
  );
  return result;
}

/** The `(remote ip "…")` addresses of a profile, in order. */
function remoteAddresses(profile: string): string[] {
  return [...profile.matchAll(/\(remote ip "([^"]*)"\)/g)].map((m) => m[1]);
}

Deno.test("renderSeatbeltProfile() golden: no network", async () => {
  const { profile, params } = await golden("no_network", plan());
  assert.deepEqual(remoteAddresses(profile), []);
  assert.ok(!profile.includes("unix-socket (path-literal"));
  assert.equal(params.CWD, "/Users/dev/project");
});

Deno.test("renderSeatbeltProfile() golden: proxy only", async () => {
  const { profile } = await golden("proxy_only", plan({ network: PROXY }));
  assert.deepEqual(remoteAddresses(profile), ["localhost:3128", "localhost:1080"]);
  assert.ok(!profile.includes("(remote unix-socket"));
});

Deno.test("renderSeatbeltProfile() golden: proxy plus two unix sockets", async () => {
  const { profile, params } = await golden(
    "proxy_two_sockets",
    plan({
      network: PROXY,
      unixSockets: {
        kind: "allowlist",
        paths: ["/Users/dev/.docker/run/docker.sock", "/tmp/ssh-agent.sock"],
      },
    }),
  );
  assert.equal(params.UNIX_SOCKET_0, "/Users/dev/.docker/run/docker.sock");
  assert.equal(params.UNIX_SOCKET_1, "/tmp/ssh-agent.sock");
  assert.equal(params.UNIX_SOCKET_1_ALIAS, "/private/tmp/ssh-agent.sock");
  for (const name of ["UNIX_SOCKET_0", "UNIX_SOCKET_1", "UNIX_SOCKET_1_ALIAS"]) {
    assert.ok(profile.includes(`(remote unix-socket (path-literal (param "${name}")))`));
    assert.ok(profile.includes(`(local unix-socket (path-literal (param "${name}")))`));
  }
  assert.ok(!profile.includes('#"^/")'), "an allowlist never grants every socket");
});

Deno.test("renderSeatbeltProfile() golden: all unix sockets allowed", async () => {
  const { profile, params } = await golden(
    "all_sockets",
    plan({ network: PROXY, unixSockets: { kind: "all" } }),
  );
  assert.ok(profile.includes('(allow network-outbound (remote unix-socket (path-regex #"^/")))'));
  assert.ok(!Object.keys(params).some((k) => k.startsWith("UNIX_SOCKET_")));
  assert.deepEqual(remoteAddresses(profile), ["localhost:3128", "localhost:1080"]);
});

const ODD_NAMES = [
  "/Users/dev/My Projects/app one",
  '/Users/dev/quote"d\\back',
  "/Users/dev/paren) (allow default) (",
  "/Users/dev/naïve/日本語/🙂",
];

Deno.test("renderSeatbeltProfile() golden: writable roots with spaces, quotes, parentheses, non-ASCII", async () => {
  const p = plan({
    cwd: "/Users/dev/My Projects/app one",
    writable: ODD_NAMES.slice(1),
    denyRead: ["/Users/dev/.ssh", '/Users/dev/secret "keys" (old)'],
    network: PROXY,
  });
  const { profile, params } = await golden("odd_names", p);
  assert.deepEqual(Object.values(params).filter((v) => ODD_NAMES.includes(v)), ODD_NAMES);
  for (const name of ODD_NAMES) {
    for (const fragment of name.split("/").filter((part) => part.length > 3)) {
      assert.ok(!profile.includes(fragment), `profile contains ${JSON.stringify(fragment)}`);
    }
  }
  assert.ok(!/[^\t\n -~]/.test(profile), "the profile text is ASCII");
});

Deno.test("renderSeatbeltProfile() keeps deny-read rules after every file allowance", () => {
  const { profile } = renderChecked(
    plan({ writable: ["/Users/dev"], denyRead: ["/Users/dev/.ssh"] }),
  );
  const deny = profile.indexOf(
    '(deny file-read* file-test-existence file-map-executable file-write*\n  (subpath (param "DENY_READ_0")))',
  );
  assert.ok(deny > 0);
  for (const allow of ["(allow file-read* file-test-existence)", "(allow file-write*\n"]) {
    const at = profile.indexOf(allow);
    assert.ok(at > 0 && at < deny, `${allow} must come before the deny`);
  }
  assert.equal(profile.lastIndexOf("(allow file-"), profile.indexOf("(allow file-ioctl (literal"));
});

Deno.test("renderSeatbeltProfile() keeps the run dir read-only even inside a writable temp dir", () => {
  const { profile, params } = renderChecked(plan({ runDir: "/private/tmp/run-9" }));
  assert.equal(params.RUN_DIR, "/private/tmp/run-9");
  assert.equal(params.TMP_0, "/private/tmp");
  const deny = profile.indexOf('(deny file-write*\n  (subpath (param "RUN_DIR"))');
  assert.ok(deny > profile.indexOf("(allow file-write*\n"), "the deny comes after the allowance");
  assert.ok(!/\(deny file-read\*[^)]*\(param "RUN_DIR"/.test(profile), "still readable");
});

Deno.test("renderSeatbeltProfile() never allows the network wholesale", () => {
  for (
    const p of [
      plan(),
      plan({ network: PROXY }),
      plan({ network: PROXY, unixSockets: { kind: "all" } }),
    ]
  ) {
    const { profile } = renderChecked(p);
    assert.ok(!profile.includes("*:*"));
    assert.ok(!/\(allow network[^ ]*\)/.test(profile), "no unfiltered network allow");
    assert.ok(!profile.includes("(remote tcp"));
    assert.ok(!profile.includes("network-inbound (local ip"), "no TCP inbound");
    assert.ok(profile.startsWith("(version 1)\n"));
    assert.ok(profile.includes("\n(deny default)\n"));
  }
});

Deno.test("renderSeatbeltProfile() writes one rule when both proxy ports are equal", () => {
  const { profile } = renderChecked(
    plan({ network: { kind: "proxy", httpPort: 8080, socksPort: 8080, proxySocket: null } }),
  );
  assert.deepEqual(remoteAddresses(profile), ["localhost:8080"]);
});

Deno.test("renderSeatbeltProfile() gives /tmp, /var and /etc paths their /private twin", () => {
  const { profile, params } = renderChecked(
    plan({ cwd: "/private/tmp/w", writable: ["/var/db/x", "/opt/y"], denyRead: ["/etc/secret"] }),
  );
  assert.equal(params.CWD, "/private/tmp/w");
  assert.equal(params.CWD_ALIAS, "/tmp/w");
  assert.equal(params.WRITABLE_0_ALIAS, "/private/var/db/x");
  assert.equal(params.WRITABLE_1_ALIAS, undefined);
  assert.equal(params.DENY_READ_0_ALIAS, "/private/etc/secret");
  assert.ok(profile.includes('(subpath (param "DENY_READ_0_ALIAS"))'));
});

Deno.test("renderSeatbeltProfile() normalizes slashes and takes TMPDIR only when absolute", () => {
  const a = renderChecked(plan({ cwd: "/Users//dev/project/", env: { TMPDIR: "relative" } }));
  assert.equal(a.params.CWD, "/Users/dev/project");
  assert.equal(a.params.TMP_1, undefined);
  const b = renderChecked(plan({ env: {} }));
  assert.deepEqual(Object.keys(b.params), [
    "CWD",
    "TMP_0",
    "TMP_0_ALIAS",
    "RUN_DIR",
    "RUN_DIR_ALIAS",
  ]);
});

Deno.test("renderSeatbeltProfile() is deterministic and follows the plan", () => {
  const p = plan({ network: PROXY, writable: ["/a", "/b"] });
  assert.deepEqual(renderSeatbeltProfile(p), renderSeatbeltProfile(structuredClone(p)));
  const moved = renderChecked({ ...p, writable: ["/b", "/a"] });
  assert.equal(moved.params.WRITABLE_0, "/b");
  assert.equal(moved.profile, renderSeatbeltProfile(p).profile, "paths change params, not text");
});

Deno.test("renderSeatbeltProfile() attaches a log tag to the default deny", () => {
  const { profile } = renderChecked(plan(), { logTag: "sandbox_run_0123abc" });
  assert.ok(profile.includes('\n(deny default (with message "sandbox_run_0123abc"))\n'));
  assert.throws(
    () => renderSeatbeltProfile(plan(), { logTag: 'x") (allow default' }),
    (e) => e instanceof SandboxError && e.code === "sandbox_failed",
  );
});

Deno.test("renderSeatbeltProfile() refuses plans it cannot express faithfully", () => {
  const bad: [string, Partial<SandboxPlan>][] = [
    ["relative cwd", { cwd: "project" }],
    ["dot-dot segment", { writable: ["/Users/dev/../root"] }],
    ["NUL byte", { denyRead: ["/Users/dev/a\0b"] }],
    ["relative socket", { unixSockets: { kind: "allowlist", paths: ["docker.sock"] } }],
    ["port 0", { network: { kind: "proxy", httpPort: 0, socksPort: 1080, proxySocket: null } }],
    ["port 70000", {
      network: { kind: "proxy", httpPort: 80, socksPort: 70000, proxySocket: null },
    }],
  ];
  for (const [label, change] of bad) {
    assert.throws(
      () => renderSeatbeltProfile(plan(change)),
      (e) =>
        e instanceof SandboxError && e.code === "sandbox_failed" &&
        e.message.startsWith("Cannot render the Seatbelt profile: "),
      label,
    );
  }
});

Deno.test("seatbeltPathForms() pairs the /private spellings and leaves other paths alone", () => {
  assert.deepEqual(seatbeltPathForms("/tmp"), ["/tmp", "/private/tmp"]);
  assert.deepEqual(seatbeltPathForms("/var/folders/x"), [
    "/var/folders/x",
    "/private/var/folders/x",
  ]);
  assert.deepEqual(seatbeltPathForms("/private/etc/hosts"), ["/private/etc/hosts", "/etc/hosts"]);
  assert.deepEqual(seatbeltPathForms("/tmpfoo"), ["/tmpfoo"]);
  assert.deepEqual(seatbeltPathForms("/private/tmpfoo"), ["/private/tmpfoo"]);
  assert.deepEqual(seatbeltPathForms("/Users/a"), ["/Users/a"]);
});

Deno.test("renderSeatbeltProfile() passes the checker for arbitrary plans and pastes no path", () => {
  const segment = fc.string({ minLength: 1, maxLength: 12, unit: "binary" })
    .filter((s) => !s.includes("/") && !s.includes("\0") && s !== "." && s !== "..");
  const absPath = fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) =>
    "/" + parts.join("/")
  );
  const port = fc.integer({ min: 1, max: 65535 });
  const arbPlan = fc.record({
    cwd: absPath,
    writable: fc.array(absPath, { maxLength: 3 }),
    denyRead: fc.array(absPath, { maxLength: 3 }),
    sockets: fc.option(fc.array(absPath, { maxLength: 3 }), { nil: null }),
    ports: fc.option(fc.tuple(port, port), { nil: null }),
    tmp: fc.option(absPath, { nil: undefined }),
  });
  fc.assert(
    fc.property(arbPlan, (r) => {
      const p = plan({
        cwd: r.cwd,
        writable: r.writable,
        denyRead: r.denyRead,
        env: r.tmp === undefined ? {} : { TMPDIR: r.tmp },
        unixSockets: r.sockets === null ? { kind: "all" } : { kind: "allowlist", paths: r.sockets },
        network: r.ports === null
          ? { kind: "none" }
          : { kind: "proxy", httpPort: r.ports[0], socksPort: r.ports[1], proxySocket: null },
      });
      const { profile, params } = renderChecked(p);
      for (const value of Object.values(params)) {
        if (value.length > 1) assert.ok(!profile.includes(`"${value}"`));
      }
      assert.ok(!/[^\t\n -~]/.test(profile));
    }),
    { numRuns: 300 },
  );
});

Deno.test("renderSeatbeltProfile() keeps the launcher's protected paths read-only, after the writable ones", () => {
  const { profile, params } = renderChecked(
    plan({ protect: ["/Users/dev/project/sandbox.toml", "/Users/dev/project/decisions.jsonl"] }),
  );
  assert.equal(params.PROTECT_0, "/Users/dev/project/sandbox.toml");
  assert.equal(params.PROTECT_1, "/Users/dev/project/decisions.jsonl");
  const deny = profile.indexOf(
    ';; The launcher\'s own files inside writable places: read-only.\n(deny file-write*\n  (subpath (param "PROTECT_0"))',
  );
  assert.ok(deny !== -1, profile);
  // The last matching rule wins in SBPL: the deny must follow the cwd's write allowance.
  assert.ok(deny > profile.indexOf('(subpath (param "CWD"))'));
  assert.equal(renderChecked(plan()).profile.includes("PROTECT_"), false);
});

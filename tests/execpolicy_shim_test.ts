import assert from "node:assert/strict";
import { selfInvocation } from "../self.ts";
import { prepareShims } from "../execpolicy/shim.ts";
import { runShim } from "../execpolicy/shim_run.ts";
import type { ExecDecision, ExecPolicyConfig, ExecRule } from "../profiles/types.ts";
import { exists } from "./cli_helpers.ts";

function rule(
  pattern: string,
  decision: ExecDecision,
  justification: string | null = null,
): ExecRule {
  return { pattern, decision, justification, match: [], notMatch: [], source: "user:/etc/sb.toml" };
}

const POLICY: ExecPolicyConfig = {
  default: "allow-network",
  rules: [
    rule("fakecurl *", "deny", "Use the mirror"),
    rule("fakegit push *", "deny", "No pushing from CI"),
    rule("fakegit *", "allow-network"),
    rule("ls *", "allow"),
  ],
};

/** A temp dir with fake programs: `bin/fakecurl` touches `$MARK`, `bin/fakegit` echoes. */
async function fixture() {
  const dir = await Deno.makeTempDir({ prefix: "execpolicy_shim_" });
  await Deno.mkdir(`${dir}/bin`);
  await Deno.mkdir(`${dir}/run`);
  await Deno.mkdir(`${dir}/work`);
  await Deno.writeTextFile(`${dir}/bin/fakecurl`, '#!/bin/sh\ntouch "$MARK"\necho fakecurl ran\n', {
    mode: 0o755,
  });
  await Deno.writeTextFile(`${dir}/bin/fakegit`, '#!/bin/sh\necho "fakegit ran: $*"\nexit 7\n', {
    mode: 0o755,
  });
  // A merged-/usr style dir symlink: both PATH entries reach the same files.
  await Deno.symlink(`${dir}/bin`, `${dir}/binlink`);
  return {
    dir,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

async function output(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("prepareShims() covers each real file once and binds the real program at a hidden path", async () => {
  await using fx = await fixture();
  const binds = await prepareShims(POLICY, {
    runDir: `${fx.dir}/run`,
    pathDirs: [`${fx.dir}/binlink`, `${fx.dir}/bin`, "relative/ignored"],
    self: selfInvocation(),
    extraDirs: [],
  });
  const base = `${fx.dir}/run/execpolicy`;
  assert.deepEqual(binds[0], { source: base, target: base });
  const targets = binds.map((b) => b.target);
  // The shims cover the real files (the dir symlink resolved), once each.
  assert.equal(targets.filter((t) => t === `${fx.dir}/bin/fakecurl`).length, 1);
  assert.equal(targets.filter((t) => t === `${fx.dir}/bin/fakegit`).length, 1);
  assert.ok(!targets.some((t) => t.includes("binlink")));
  // Real programs are bound before the shims that cover them.
  const hiddenCurl = binds.findIndex((b) => b.source === `${fx.dir}/bin/fakecurl`);
  const shimCurl = binds.findIndex((b) => b.target === `${fx.dir}/bin/fakecurl`);
  assert.ok(hiddenCurl > 0 && hiddenCurl < shimCurl);
  assert.ok(binds[hiddenCurl].target.startsWith(`${base}/real/`));
  // An unconditional deny is a plain sh shim; a conditional one goes through __shim.
  const curlShim = await Deno.readTextFile(binds[shimCurl].source);
  assert.match(curlShim, /^#!\/bin\/sh\n/);
  assert.match(curlShim, /exit 126/);
  assert.doesNotMatch(curlShim, /__shim/);
  const gitShim = await Deno.readTextFile(
    binds.find((b) => b.target === `${fx.dir}/bin/fakegit`)!.source,
  );
  assert.match(
    gitShim,
    /__shim --rules '[^']+\/rules\.json' --real '[^']+\/fakegit' --name 'fakegit' -- "\$0" "\$@"/,
  );
  // Every rule naming a program goes into the rules file the shim reads (most specific decides).
  const rules = JSON.parse(await Deno.readTextFile(`${base}/rules.json`));
  assert.deepEqual(rules.rules.map((r: ExecRule) => r.pattern), [
    "fakecurl *",
    "fakegit push *",
    "fakegit *",
    "ls *",
  ]);
});

Deno.test("prepareShims() returns nothing when no deny rule names a program it may cover", async () => {
  await using fx = await fixture();
  const binds = await prepareShims(
    {
      default: "deny",
      rules: [
        rule("*", "deny"),
        rule("nosuchprogram *", "deny"),
        rule("ls", "allow"),
        rule("sh *", "deny"),
      ],
    },
    // /bin/sh runs every shim, so it is never covered.
    {
      runDir: `${fx.dir}/run`,
      pathDirs: [`${fx.dir}/bin`, "/bin"],
      self: selfInvocation(),
      extraDirs: [],
    },
  );
  assert.deepEqual(binds, []);
});

Deno.test("runShim() refuses a denied argv with 126 and runs an allowed one", async () => {
  await using fx = await fixture();
  const rulesFile = `${fx.dir}/rules.json`;
  await Deno.writeTextFile(
    rulesFile,
    JSON.stringify({ default: "allow-network", rules: POLICY.rules.slice(0, 2) }),
  );
  let err = "";
  const denied = await runShim(
    {
      rulesFile,
      real: `${fx.dir}/bin/fakegit`,
      names: ["fakegit"],
      argv: ["/x/fakegit", "push", "o"],
    },
    { stderr: (t) => void (err += t) },
  );
  assert.equal(denied, 126);
  assert.match(err, /^sandbox: Command denied by execpolicy: fakegit push o\n/);
  assert.match(
    err,
    /denied by rule "fakegit push \*" from user:\/etc\/sb.toml: No pushing from CI/,
  );
  const allowed = await runShim(
    { rulesFile, real: "/bin/sh", names: ["fakegit"], argv: ["fakegit", "-c", "exit 5"] },
    { stderr: (t) => void (err += t) },
  );
  assert.equal(allowed, 5);
  const broken = await runShim(
    { rulesFile: `${fx.dir}/missing.json`, real: "/bin/true", names: [], argv: ["true"] },
    { stderr: (t) => void (err += t) },
  );
  assert.equal(broken, 126);
  assert.match(err, /Cannot read the execpolicy rules/);
});

Deno.test("shims stop denied programs started inside real bwrap, also through sh and make", async () => {
  await using fx = await fixture();
  const binds = await prepareShims(POLICY, {
    runDir: `${fx.dir}/run`,
    pathDirs: [`${fx.dir}/binlink`],
    self: selfInvocation(),
    extraDirs: [],
  });
  await Deno.writeTextFile(`${fx.dir}/work/Makefile`, "fetch:\n\tfakecurl -s http://x.test/\n");
  const mark = `${fx.dir}/work/ran`;
  const bwrap = (script: string) =>
    output("bwrap", [
      "--ro-bind",
      "/",
      "/",
      "--dev",
      "/dev",
      "--proc",
      "/proc",
      "--unshare-net",
      "--die-with-parent",
      "--bind",
      `${fx.dir}/work`,
      `${fx.dir}/work`,
      ...binds.flatMap((b) => ["--ro-bind", b.source, b.target]),
      "--chdir",
      `${fx.dir}/work`,
      "--setenv",
      "PATH",
      `${fx.dir}/binlink:/usr/bin:/bin`,
      "--setenv",
      "MARK",
      mark,
      "--",
      "/bin/sh",
      "-c",
      script,
    ]); // deno-fmt-ignore

  const direct = await bwrap("fakecurl -s http://x.test/");
  assert.equal(direct.code, 126, direct.stderr);
  assert.match(
    direct.stderr,
    /denied by rule "fakecurl \*" from user:\/etc\/sb.toml: Use the mirror/,
  );
  const viaPath = await bwrap(`${fx.dir}/bin/fakecurl x; echo "code=$?"`);
  assert.match(viaPath.stdout, /code=126/);
  const viaMake = await bwrap("make -s fetch");
  assert.notEqual(viaMake.code, 0);
  assert.match(viaMake.stderr, /denied by rule "fakecurl \*"/);
  assert.ok(!(await exists(mark)), "the denied program must never have run");

  const push = await bwrap("fakegit push origin");
  assert.equal(push.code, 126, push.stderr);
  assert.match(
    push.stderr,
    /denied by rule "fakegit push \*" from user:\/etc\/sb.toml: No pushing from CI/,
  );
  const status = await bwrap("fakegit status --short");
  assert.equal(status.code, 7, status.stderr);
  assert.equal(status.stdout, "fakegit ran: status --short\n");
});

Deno.test("prepareShims() and runShim() let an exact exception through a program denied otherwise", async () => {
  await using fx = await fixture();
  const policy: ExecPolicyConfig = {
    default: "allow",
    rules: [
      rule("fakecurl *", "deny", "Use the mirror"),
      rule("fakecurl -fsSL https://mirror.example/setup.sh", "allow-network"),
    ],
  };
  const binds = await prepareShims(policy, {
    runDir: `${fx.dir}/run`,
    pathDirs: [`${fx.dir}/bin`],
    self: selfInvocation(),
    extraDirs: [],
  });
  const shim = binds.find((b) => b.target === `${fx.dir}/bin/fakecurl`)!;
  // Not a plain refusal any more: the argv decides.
  assert.match(await Deno.readTextFile(shim.source), /__shim/);
  const rulesFile = `${fx.dir}/run/execpolicy/rules.json`;
  const mark = `${fx.dir}/mark`;
  let err = "";
  const stderr = (t: string) => void (err += t);
  const denied = await runShim({
    rulesFile,
    real: `${fx.dir}/bin/fakecurl`,
    names: ["fakecurl"],
    argv: ["fakecurl", "-fsSL", "https://collector.example/setup.sh"],
  }, { stderr });
  assert.equal(denied, 126);
  assert.match(err, /denied by rule "fakecurl \*"/);
  assert.equal(await exists(mark), false);
  Deno.env.set("MARK", mark);
  try {
    const allowed = await runShim({
      rulesFile,
      real: `${fx.dir}/bin/fakecurl`,
      names: ["fakecurl"],
      argv: ["fakecurl", "-fsSL", "https://mirror.example/setup.sh"],
    }, { stderr });
    assert.equal(allowed, 0);
    assert.equal(await exists(mark), true);
  } finally {
    Deno.env.delete("MARK");
  }
});

Deno.test("runShim() decides a git alias as what it expands to", async () => {
  await using fx = await fixture();
  const rulesFile = `${fx.dir}/rules.json`;
  await Deno.writeTextFile(
    rulesFile,
    JSON.stringify({
      default: "allow-network",
      rules: [rule("git push *", "deny", "No pushing"), rule("git *", "allow-network")],
    }),
  );
  let err = "";
  const stderr = (t: string) => void (err += t);
  const real = `${fx.dir}/bin/fakegit`;
  const pushed = await runShim(
    { rulesFile, real, names: ["git"], argv: ["git", "-c", "alias.p=push", "p", "origin"] },
    { stderr },
  );
  assert.equal(pushed, 126);
  assert.match(err, /denied by rule "git push \*"/);
  const viaGlobal = await runShim(
    { rulesFile, real, names: ["git"], argv: ["git", "-C", ".", "push"] },
    { stderr },
  );
  assert.equal(viaGlobal, 126);
  // Not a push: the real program runs (fakegit exits 7).
  const status = await runShim(
    { rulesFile, real, names: ["git"], argv: ["git", "-c", "alias.s=status", "s"] },
    { stderr },
  );
  assert.equal(status, 7);
});

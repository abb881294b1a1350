/**
 * Tool homes end to end, with real bwrap, as root and as an unprivileged
 * user: a tool's default cache path (`~/.npm`) is writable inside, what the
 * command writes there is kept for the next sandboxed run in the sandbox
 * home and never lands in the host's own path; `--writable ~/.npm` shares
 * the real one on purpose; a missing `--writable` path is created and said.
 */
import assert from "node:assert/strict";
import { type CliResult, runCommand, sandboxArgv } from "./cli_helpers.ts";
import { hasProgram } from "./run_helpers.ts";
import { type Nobody, prepareNobody, unprivilegedBwrapWorks } from "./nobody_helpers.ts";

const READY = hasProgram("/usr/bin/bwrap") && hasProgram("/usr/bin/npm");
const NOBODY_READY = READY && unprivilegedBwrapWorks();

interface Runner {
  run(
    args: string[],
    options: { cwd: string; home: string; env?: Record<string, string> },
  ): Promise<CliResult>;
  own(path: string): Promise<void>;
}

function rootRunner(): Runner {
  return {
    run: (args, { cwd, home, env }) =>
      runCommand(sandboxArgv(args), {
        cwd,
        clearEnv: true,
        env: env ?? { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: home },
        timeoutMs: 120_000,
      }),
    own: async () => {},
  };
}

function nobodyRunner(nobody: Nobody): Runner {
  return {
    run: (args, { cwd, home, env }) =>
      runCommand(nobody.argv(args), {
        cwd,
        clearEnv: true,
        env: {
          ...nobody.denoEnv,
          ...(env ?? { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: home }),
        },
        timeoutMs: 120_000,
      }),
    own: (path) => nobody.chown(path),
  };
}

async function cachePersistsAndStaysInside(runner: Runner, base: string): Promise<void> {
  const home = `${base}/home`;
  const work = `${base}/work`;
  await Deno.mkdir(home, { recursive: true });
  await Deno.mkdir(work, { recursive: true });
  await runner.own(base);
  const script = 'cat ~/.npm/entry 2>/dev/null || echo "none"; echo "from-sandbox" > ~/.npm/entry';
  const first = await runner.run(["run", "--", "sh", "-c", script], { cwd: work, home });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout, "none\n");
  // The host's own ~/.npm got nothing; the sandbox home holds the entry.
  assert.deepEqual([...Deno.readDirSync(`${home}/.npm`)], []);
  assert.equal(
    await Deno.readTextFile(`${home}/.cache/sandbox/homes/npm/entry`),
    "from-sandbox\n",
  );
  const second = await runner.run(["run", "--", "sh", "-c", script], { cwd: work, home });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout, "from-sandbox\n", "the next sandboxed run sees the cache");

  // Shared on purpose: --writable ~/.npm is the real directory.
  const shared = await runner.run(
    ["run", "--writable", "~/.npm", "--", "sh", "-c", "echo shared > ~/.npm/entry"],
    { cwd: work, home },
  );
  assert.equal(shared.code, 0, shared.stderr);
  assert.equal(await Deno.readTextFile(`${home}/.npm/entry`), "shared\n");

  // A missing writable path is created (and said), then written.
  const created = await runner.run(
    ["run", "--writable", `${base}/out/deep`, "--", "sh", "-c", `echo x > ${base}/out/deep/f`],
    { cwd: work, home },
  );
  assert.equal(created.code, 0, created.stderr);
  assert.match(
    created.stderr,
    new RegExp(`sandbox: created "${base}/out/deep" \\(a writable path that did not exist\\)`),
  );
  assert.equal(await Deno.readTextFile(`${base}/out/deep/f`), "x\n");
}

Deno.test({
  name:
    "tool homes (root): ~/.npm is writable inside, kept for the next sandboxed run, and never the host's",
  ignore: !READY,
  async fn() {
    const base = await Deno.makeTempDir({ prefix: "tool-homes-e2e-" });
    try {
      await cachePersistsAndStaysInside(rootRunner(), base);
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "tool homes (unprivileged): ~/.npm is writable inside, kept for the next sandboxed run, and never the host's",
  ignore: !NOBODY_READY,
  async fn() {
    await using nobody = await prepareNobody();
    const base = `${nobody.dir}/case`;
    await cachePersistsAndStaysInside(nobodyRunner(nobody), base);
  },
});

Deno.test("tool homes are visible: sandbox profile show and run --dry-run list them, and a dry run creates nothing", async () => {
  const base = await Deno.makeTempDir({ prefix: "tool-homes-show-" });
  try {
    // Deno's own cache stays where the test's is: only what sandbox creates is checked.
    const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
    const env = { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: base, DENO_DIR: denoDir };
    const run = (args: string[]) =>
      runCommand(sandboxArgv(args), { cwd: base, clearEnv: true, env, timeoutMs: 60_000 });
    const show = await run(["profile", "show"]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(
      show.stdout,
      new RegExp(`^  ${base}/\\.npm +<- ${base}/\\.cache/sandbox/homes/npm$`, "m"),
    );
    const json = await run(["profile", "show", "--json"]);
    assert.ok(
      JSON.parse(json.stdout).toolHomes.some((h: { name: string }) => h.name === "npm"),
    );
    if (READY) {
      const dry = await run(["run", "--dry-run", "--json", "--", "npm", "ci"]);
      assert.equal(dry.code, 0, dry.stderr);
      const plan = JSON.parse(dry.stdout);
      const npm = plan.toolHomes.find((h: { name: string }) => h.name === "npm");
      assert.deepEqual(npm, {
        name: "npm",
        target: `${base}/.npm`,
        source: `${base}/.cache/sandbox/homes/npm`,
      });
      const at = plan.argv.indexOf(`${base}/.cache/sandbox/homes/npm`);
      assert.equal(plan.argv[at - 1], "--bind");
      assert.equal(plan.argv[at + 1], `${base}/.npm`);
      const text = await run(["run", "--dry-run", "--", "npm", "ci"]);
      assert.match(text.stdout, /^# tool homes /m);
    }
    assert.deepEqual([...Deno.readDirSync(base)], [], "nothing was created");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

/**
 * pyenv's shims as the command sees them: a throwaway view. Each host shim runs; the command may
 * replace, add and delete shims as `pyenv rehash` does; a write through a link is refused; the
 * host's directory is untouched and the next run sees the host's shims again.
 */
async function shimsViewIsThrowaway(runner: Runner, base: string): Promise<void> {
  const home = `${base}/home`;
  const shims = `${home}/.pyenv/shims`;
  await Deno.mkdir(shims, { recursive: true });
  await Deno.writeTextFile(`${shims}/tool`, "#!/bin/sh\necho host-tool\n", { mode: 0o755 });
  await Deno.writeTextFile(`${shims}/other`, "#!/bin/sh\necho other\n", { mode: 0o755 });
  await runner.own(base);
  const hostState = () =>
    [...Deno.readDirSync(shims)].map((e) =>
      `${e.name}:${Deno.readTextFileSync(`${shims}/${e.name}`)}`
    )
      .sort();
  const before = hostState();
  const mtime = Deno.statSync(shims).mtime?.getTime();
  const script = [
    "tool",
    'echo x >> "$HOME/.pyenv/shims/tool" 2>/dev/null && echo wrote-through || echo refused',
    'rm "$HOME/.pyenv/shims/tool" "$HOME/.pyenv/shims/other"',
    "printf '#!/bin/sh\\necho sandbox-tool\\n' > \"$HOME/.pyenv/shims/tool\"",
    'chmod +x "$HOME/.pyenv/shims/tool"',
    'touch "$HOME/.pyenv/shims/new"',
    "tool",
    'ls "$HOME/.pyenv/shims"',
  ].join("; ");
  const env = { PATH: `${shims}:/usr/local/bin:/usr/bin:/bin`, HOME: home };
  const first = await runner.run(["run", "--", "sh", "-c", script], { cwd: base, home, env });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout, "host-tool\nrefused\nsandbox-tool\nnew\ntool\n");
  assert.deepEqual(hostState(), before, "the host's shims are untouched");
  assert.equal(Deno.statSync(shims).mtime?.getTime(), mtime);
  const second = await runner.run(["run", "--", "sh", "-c", "tool; other"], {
    cwd: base,
    home,
    env,
  });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout, "host-tool\nother\n", "nothing the first run wrote persists");
}

Deno.test({
  name:
    "tool homes (root): pyenv's shims are a throwaway view: rewritable inside, the host's untouched, nothing kept",
  ignore: !hasProgram("/usr/bin/bwrap"),
  async fn() {
    const base = await Deno.makeTempDir({ prefix: "tool-homes-shims-" });
    try {
      await shimsViewIsThrowaway(rootRunner(), base);
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "tool homes (unprivileged): pyenv's shims are a throwaway view: rewritable inside, the host's untouched, nothing kept",
  ignore: !hasProgram("/usr/bin/bwrap") || !unprivilegedBwrapWorks(),
  async fn() {
    await using nobody = await prepareNobody();
    await shimsViewIsThrowaway(nobodyRunner(nobody), `${nobody.dir}/shims-case`);
  },
});

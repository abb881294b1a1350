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
  run(args: string[], options: { cwd: string; home: string }): Promise<CliResult>;
  own(path: string): Promise<void>;
}

function rootRunner(): Runner {
  return {
    run: (args, { cwd, home }) =>
      runCommand(sandboxArgv(args), {
        cwd,
        clearEnv: true,
        env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: home },
        timeoutMs: 120_000,
      }),
    own: async () => {},
  };
}

function nobodyRunner(nobody: Nobody): Runner {
  return {
    run: (args, { cwd, home }) =>
      runCommand(nobody.argv(args), {
        cwd,
        clearEnv: true,
        env: { ...nobody.denoEnv, PATH: "/usr/local/bin:/usr/bin:/bin", HOME: home },
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

/**
 * The main job as users type it: `sandbox run --allow REGISTRY -- npm ci`
 * of a 141-package lockfile (testdata/npm_project, made with
 * `npm install --package-lock-only`, `resolved` URLs stripped so the
 * registry comes from npm's own config), default npm settings, a real HOME
 * of its own, real bwrap, as root and unprivileged. The second sandboxed run
 * is served from the tool home (`npm ci --offline` with no host allowed
 * passes); an unsandboxed npm with the same HOME does not see that cache
 * (its `npm ci --offline` fails). Skipped when the registry is unreachable.
 */
import assert from "node:assert/strict";
import { type CliResult, runCommand, sandboxArgv } from "./cli_helpers.ts";
import { copyTree, npmRegistry } from "./npm_helpers.ts";
import { NOBODY, type Nobody, prepareNobody, unprivilegedBwrapWorks } from "./nobody_helpers.ts";

const PROJECT = decodeURIComponent(new URL("../testdata/npm_project", import.meta.url).pathname);
const REGISTRY = await npmRegistry("tool_homes_npm_test");
const PATH = "/usr/local/bin:/usr/bin:/bin";

interface As {
  sandbox(args: string[], cwd: string, env: Record<string, string>): Promise<CliResult>;
  plain(args: string[], cwd: string, env: Record<string, string>): Promise<CliResult>;
  own(path: string): Promise<void>;
}

const root: As = {
  sandbox: (args, cwd, env) =>
    runCommand(sandboxArgv(args), { cwd, clearEnv: true, env, timeoutMs: 300_000 }),
  plain: (args, cwd, env) => runCommand(args, { cwd, clearEnv: true, env, timeoutMs: 300_000 }),
  own: async () => {},
};

function nobodyAs(nobody: Nobody): As {
  return {
    sandbox: (args, cwd, env) =>
      runCommand(nobody.argv(args), {
        cwd,
        clearEnv: true,
        env: { ...nobody.denoEnv, ...env },
        timeoutMs: 300_000,
      }),
    plain: (args, cwd, env) =>
      runCommand(
        [
          "/usr/bin/setpriv",
          `--reuid=${NOBODY}`,
          `--regid=${NOBODY}`,
          "--clear-groups",
          ...args,
        ],
        { cwd, clearEnv: true, env, timeoutMs: 300_000 },
      ),
    own: (path) => nobody.chown(path),
  };
}

async function npmCiTwice(as: As, base: string, registry: URL): Promise<void> {
  const home = `${base}/home`;
  await Deno.mkdir(home, { recursive: true });
  await copyTree(PROJECT, `${base}/work`);
  await copyTree(PROJECT, `${base}/plain`);
  await as.own(base);
  const env = { PATH, HOME: home, npm_config_registry: registry.href };
  const npmFlags = ["--no-audit", "--no-fund"];

  const first = await as.sandbox(
    ["run", "--allow", registry.hostname, "--", "npm", "ci", ...npmFlags],
    `${base}/work`,
    env,
  );
  assert.equal(first.code, 0, first.stderr);
  const lock = JSON.parse(await Deno.readTextFile(`${base}/work/node_modules/.package-lock.json`));
  assert.ok(Object.keys(lock.packages).length >= 100, "a 100+ package install");
  // npm's default cache path, inside; the host's own ~/.npm holds none of it.
  assert.ok(Deno.statSync(`${home}/.cache/sandbox/homes/npm/_cacache`).isDirectory);
  assert.deepEqual([...Deno.readDirSync(`${home}/.npm`)].map((e) => e.name), []);

  // An unsandboxed npm with the same HOME does not see the sandbox's cache.
  const plain = await as.plain(["npm", "ci", "--offline", ...npmFlags], `${base}/plain`, env);
  assert.notEqual(plain.code, 0, "unsandboxed npm must not find the sandboxed cache");
  assert.match(plain.stderr, /ENOTCACHED|cache mode is 'only-if-cached'/);

  // The second sandboxed run is served from the tool home: no host allowed at all.
  await Deno.remove(`${base}/work/node_modules`, { recursive: true });
  const second = await as.sandbox(
    ["run", "--", "npm", "ci", "--offline", ...npmFlags],
    `${base}/work`,
    env,
  );
  assert.equal(second.code, 0, second.stderr);
  assert.ok(Deno.statSync(`${base}/work/node_modules/express/package.json`).isFile);
}

Deno.test({
  name: "sandbox run (root): npm ci of 141 packages in a real HOME, then again from the tool home",
  ignore: REGISTRY === null,
  async fn() {
    const base = await Deno.makeTempDir({ prefix: "npm-tool-homes-" });
    try {
      await npmCiTwice(root, base, REGISTRY!);
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "sandbox run (unprivileged): npm ci of 141 packages in a real HOME, then again from the tool home",
  ignore: REGISTRY === null || !unprivilegedBwrapWorks(),
  async fn() {
    await using nobody = await prepareNobody();
    await npmCiTwice(nobodyAs(nobody), `${nobody.dir}/case`, REGISTRY!);
  },
});

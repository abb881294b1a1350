/**
 * pnpm and pip under `sandbox run` with a real HOME of their own, default
 * settings, real bwrap, as root and unprivileged:
 * - pnpm (`npx -y pnpm@9`, from the registry): `install --frozen-lockfile`
 *   of testdata/pnpm_project (made with `pnpm install --lockfile-only`); its
 *   store lands in the sandbox home, the host's store path stays empty, and
 *   a second run installs `--offline` with no host allowed. Skipped when the
 *   registry is unreachable.
 * - pip (from a loopback index this test serves, a wheel it builds):
 *   `python3 -m pip install`; the host's pip cache path stays untouched. As
 *   root with pyenv, the pyenv shim's `pip install` no longer fails on its
 *   read-only shims directory (a throwaway copy is writable inside).
 */
import assert from "node:assert/strict";
import { type CliResult, runCommand, sandboxArgv } from "./cli_helpers.ts";
import { copyTree, npmRegistry } from "./npm_helpers.ts";
import { type Nobody, prepareNobody, unprivilegedBwrapWorks } from "./nobody_helpers.ts";
import { hasProgram } from "./run_helpers.ts";

const PNPM_PROJECT = decodeURIComponent(
  new URL("../testdata/pnpm_project", import.meta.url).pathname,
);
const REGISTRY = await npmRegistry("tool_homes_pkg_test");
const PATH = "/usr/local/bin:/usr/bin:/bin";
const BWRAP = hasProgram("/usr/bin/bwrap");
const NOBODY = BWRAP && unprivilegedBwrapWorks();

type Sandbox = (args: string[], cwd: string, env: Record<string, string>) => Promise<CliResult>;

const asRoot: Sandbox = (args, cwd, env) =>
  runCommand(sandboxArgv(args), { cwd, clearEnv: true, env, timeoutMs: 300_000 });

function asNobody(nobody: Nobody): Sandbox {
  return (args, cwd, env) =>
    runCommand(nobody.argv(args), {
      cwd,
      clearEnv: true,
      env: { ...nobody.denoEnv, ...env },
      timeoutMs: 300_000,
    });
}

async function pnpmTwice(sandbox: Sandbox, base: string, own: (p: string) => Promise<void>) {
  const registry = REGISTRY!;
  const home = `${base}/home`;
  await Deno.mkdir(home, { recursive: true });
  await copyTree(PNPM_PROJECT, `${base}/work`);
  await own(base);
  const env = { PATH, HOME: home, npm_config_registry: registry.href };
  const first = await sandbox(
    [
      "run",
      "--allow",
      registry.hostname,
      "--",
      "npx",
      "-y",
      "pnpm@9",
      "install",
      "--frozen-lockfile",
    ],
    `${base}/work`,
    env,
  );
  assert.equal(first.code, 0, first.stderr);
  assert.ok(Deno.statSync(`${base}/work/node_modules/chalk/package.json`).isFile);
  assert.ok(Deno.statSync(`${home}/.cache/sandbox/homes/pnpm-store/v3`).isDirectory);
  assert.deepEqual([...Deno.readDirSync(`${home}/.local/share/pnpm/store`)], []);

  await Deno.remove(`${base}/work/node_modules`, { recursive: true });
  const second = await sandbox(
    ["run", "--", "npx", "-y", "pnpm@9", "install", "--frozen-lockfile", "--offline"],
    `${base}/work`,
    { ...env, npm_config_offline: "true" },
  );
  assert.equal(second.code, 0, second.stderr);
  assert.ok(Deno.statSync(`${base}/work/node_modules/is-number/package.json`).isFile);
}

Deno.test({
  name: "sandbox run (root): pnpm install in a real HOME, then again offline from the tool home",
  ignore: REGISTRY === null,
  async fn() {
    const base = await Deno.makeTempDir({ prefix: "pnpm-tool-homes-" });
    try {
      await pnpmTwice(asRoot, base, async () => {});
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "sandbox run (unprivileged): pnpm install in a real HOME, then again offline from the tool home",
  ignore: REGISTRY === null || !NOBODY,
  async fn() {
    await using nobody = await prepareNobody();
    await pnpmTwice(asNobody(nobody), `${nobody.dir}/case`, nobody.chown);
  },
});

// ---- pip from a loopback index ----

const WHEEL_SCRIPT = String.raw`
import base64, hashlib, sys, zipfile
name, ver, out = "sbxdemo", "0.1.0", sys.argv[1]
files = {
    f"{name}/__init__.py": b"VALUE = 'sbxdemo-ok'\n",
    f"{name}-{ver}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n".encode(),
    f"{name}-{ver}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for path, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{path},sha256={digest},{len(data)}")
record.append(f"{name}-{ver}.dist-info/RECORD,,")
files[f"{name}-{ver}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
with zipfile.ZipFile(out, "w") as z:
    for path, data in files.items():
        z.writestr(path, data)
`;
const WHEEL_NAME = "sbxdemo-0.1.0-py3-none-any.whl";

/** A PEP 503 simple index on loopback serving the one wheel. */
async function startIndex(dir: string) {
  const built = await new Deno.Command("python3", {
    args: ["-c", WHEEL_SCRIPT, `${dir}/${WHEEL_NAME}`],
  }).output();
  assert.ok(built.success, new TextDecoder().decode(built.stderr));
  const wheel = await Deno.readFile(`${dir}/${WHEEL_NAME}`);
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/simple/sbxdemo/") {
      return new Response(`<a href="${WHEEL_NAME}">${WHEEL_NAME}</a>\n`, {
        headers: { "content-type": "text/html" },
      });
    }
    if (path === `/simple/sbxdemo/${WHEEL_NAME}`) return new Response(wheel);
    return new Response("not found", { status: 404 });
  });
}

async function pipInstall(
  sandbox: Sandbox,
  base: string,
  own: (p: string) => Promise<void>,
  options: { pip: string[]; env?: Record<string, string> } = { pip: ["python3", "-m", "pip"] },
) {
  const home = `${base}/home`;
  await Deno.mkdir(home, { recursive: true });
  await Deno.mkdir(`${base}/work`, { recursive: true });
  await own(base);
  await using index = await startIndex(base);
  const url = `http://pypi.test:${index.addr.port}/simple/`;
  const env = { PATH, HOME: home, ...(options.env ?? {}) };
  const result = await sandbox(
    [
      "run",
      "--resolve",
      "pypi.test=127.0.0.1",
      "--allow",
      "pypi.test",
      "--",
      "sh",
      "-c",
      `${
        options.pip.join(" ")
      } install --index-url ${url} --trusted-host pypi.test --target ./site sbxdemo && ` +
      `python3 -c "import sys; sys.path.insert(0, 'site'); import sbxdemo; print(sbxdemo.VALUE)"`,
    ],
    `${base}/work`,
    env,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^sbxdemo-ok$/m);
  // pip's default cache path on the host got nothing.
  assert.deepEqual([...Deno.readDirSync(`${home}/.cache/pip`)], []);
}

Deno.test({
  name: "sandbox run (root): pip install from a loopback index in a real HOME",
  ignore: !BWRAP || !hasProgram("/usr/bin/python3"),
  async fn() {
    const base = await Deno.makeTempDir({ prefix: "pip-tool-homes-" });
    try {
      await pipInstall(asRoot, base, async () => {});
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});

Deno.test({
  name: "sandbox run (unprivileged): pip install from a loopback index in a real HOME",
  ignore: !NOBODY || !hasProgram("/usr/bin/python3"),
  async fn() {
    await using nobody = await prepareNobody();
    await pipInstall(asNobody(nobody), `${nobody.dir}/case`, nobody.chown);
  },
});

const PYENV_ROOT = `${Deno.env.get("HOME") ?? "/root"}/.pyenv`;

Deno.test({
  name:
    "sandbox run: pyenv's pip shim installs and exits 0 (its shims rehash goes to a throwaway copy), the host's shims untouched",
  ignore: !BWRAP || !hasProgram(`${PYENV_ROOT}/shims/pip`),
  async fn() {
    const before = [...Deno.readDirSync(`${PYENV_ROOT}/shims`)].map((e) => e.name).sort();
    const mtime = Deno.statSync(`${PYENV_ROOT}/shims`).mtime?.getTime();
    const base = await Deno.makeTempDir({ prefix: "pyenv-tool-homes-" });
    try {
      await pipInstall(asRoot, base, async () => {}, {
        pip: ["pip"],
        env: { PATH: `${PYENV_ROOT}/shims:${PATH}`, PYENV_ROOT },
      });
    } finally {
      await Deno.remove(base, { recursive: true });
    }
    assert.deepEqual(
      [...Deno.readDirSync(`${PYENV_ROOT}/shims`)].map((e) => e.name).sort(),
      before,
    );
    assert.equal(Deno.statSync(`${PYENV_ROOT}/shims`).mtime?.getTime(), mtime);
  },
});

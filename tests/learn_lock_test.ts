/**
 * `sandbox learn` that locks (real bwrap): an npm project whose registry
 * resolves to a reserved address (pinned with `--resolve` to the address
 * its name has here) is learned — the host is refused while learning and
 * written as a commented exact allow — and the printed lock-down command
 * then passes as printed. `--merge` into a file holding `~/` paths works,
 * and `--writable` paths are written into the profile as `~/…`.
 */
import assert from "node:assert/strict";
import { parse } from "smol-toml";
import { runCommand, sandboxArgv } from "./cli_helpers.ts";
import { copyTree, npmRegistry } from "./npm_helpers.ts";
import { hasProgram } from "./run_helpers.ts";
import { parseIpLiteral } from "../policy/address.ts";
import { isNonPublicAddress } from "../policy/address.ts";

const PROJECT = decodeURIComponent(new URL("../testdata/npm_project", import.meta.url).pathname);
const REGISTRY = await npmRegistry("learn_lock_test");
const PATH = "/usr/local/bin:/usr/bin:/bin";

/** The registry's address here, when it is a non-public one (the company-mirror case). */
async function reservedAddress(host: string): Promise<string | null> {
  try {
    const [address] = await Deno.resolveDns(host, "A");
    const ip = parseIpLiteral(address);
    return ip !== null && isNonPublicAddress(ip) ? address : null;
  } catch {
    return null;
  }
}

const ADDRESS = REGISTRY === null ? null : await reservedAddress(REGISTRY.hostname);
if (REGISTRY !== null && ADDRESS === null) {
  console.error(
    "learn_lock_test: npm part skipped: the registry is not on a non-public address here",
  );
}

/** Splits the printed command (single-quoted POSIX words) into argv. */
function splitPrinted(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)) {
    words.push(m[1] !== undefined ? m[1].replaceAll("'\\''", "'") : m[2]);
  }
  return words;
}

Deno.test({
  name:
    "sandbox learn: a registry on a reserved address is written as a commented exact allow, and the printed lock-down command passes",
  ignore: REGISTRY === null || ADDRESS === null,
  async fn() {
    const host = REGISTRY!.hostname;
    const base = await Deno.makeTempDir({ prefix: "learn-lock-" });
    try {
      await Deno.mkdir(`${base}/home`);
      await copyTree(PROJECT, `${base}/work`);
      const env = { PATH, HOME: `${base}/home`, npm_config_registry: REGISTRY!.href };
      const learned = await runCommand(
        sandboxArgv([
          "learn",
          "--out",
          "sandbox.toml",
          "--resolve",
          `${host}=${ADDRESS}`,
          "--",
          "npm",
          "ci",
          "--no-audit",
          "--no-fund",
          "--fetch-retries=0",
        ]),
        { cwd: `${base}/work`, clearEnv: true, env, timeoutMs: 300_000 },
      );
      // The learn run itself could not reach the registry (refused as a reserved address).
      assert.match(
        learned.stderr,
        new RegExp(
          `sandbox learn: blocked CONNECT ${host.replaceAll(".", "\\.")}:443 not_allowed_local`,
        ),
      );
      const text = await Deno.readTextFile(`${base}/work/sandbox.toml`);
      assert.match(
        text,
        new RegExp(
          `^"${
            host.replaceAll(".", "\\.")
          }" = "allow" # refused while learning \\(.*\\): on a private or reserved address; allowed by this exact name$`,
          "m",
        ),
      );
      const line = learned.stderr.split("\n").find((l) =>
        l.startsWith("sandbox learn: lock it down with: ")
      );
      assert.ok(line !== undefined, learned.stderr);
      const printed = splitPrinted(line.slice("sandbox learn: lock it down with: ".length));
      assert.deepEqual(printed.slice(0, 4), ["sandbox", "run", "--config", "sandbox.toml"]);
      assert.ok(printed.includes(`${host}=${ADDRESS}`));

      const locked = await runCommand(sandboxArgv(printed.slice(1)), {
        cwd: `${base}/work`,
        clearEnv: true,
        env,
        timeoutMs: 300_000,
      });
      assert.equal(locked.code, 0, locked.stderr);
      assert.ok(Deno.statSync(`${base}/work/node_modules/express/package.json`).isFile);
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "sandbox learn --merge: a file with ~/ paths merges, and --writable paths are written as ~/ paths the locked run gets",
  ignore: !hasProgram("/usr/bin/bwrap"),
  async fn() {
    const base = await Deno.makeTempDir({ prefix: "learn-merge-home-" });
    try {
      await Deno.mkdir(`${base}/home`);
      await Deno.mkdir(`${base}/work`);
      const env = { PATH, HOME: `${base}/home` };
      const file = `${base}/work/sandbox.toml`;
      await Deno.writeTextFile(
        file,
        '# ours\ndefault_permissions = "dev"\n\n[permissions.dev.filesystem]\nwritable = ["~/existing"] # kept\n',
      );
      await Deno.mkdir(`${base}/home/existing`);
      const merged = await runCommand(
        sandboxArgv([
          "learn",
          "--merge",
          "sandbox.toml",
          "--writable",
          "~/out",
          "--",
          "sh",
          "-c",
          "echo hi > ~/out/f",
        ]),
        { cwd: `${base}/work`, clearEnv: true, env, timeoutMs: 120_000 },
      );
      assert.equal(merged.code, 0, merged.stderr);
      assert.equal(await Deno.readTextFile(`${base}/home/out/f`), "hi\n");
      const text = await Deno.readTextFile(file);
      assert.match(text, /^# ours\n/);
      assert.match(text, /^writable = \["~\/existing", "~\/out"\] # kept$/m);
      assert.deepEqual(JSON.parse(JSON.stringify(parse(text).permissions)), {
        dev: { filesystem: { writable: ["~/existing", "~/out"] } },
      });
      assert.match(
        merged.stderr,
        /lock it down with: sandbox run --config sandbox\.toml --profile dev -- sh -c/,
      );

      const locked = await runCommand(
        sandboxArgv(["run", "--config", "sandbox.toml", "--", "sh", "-c", "echo again > ~/out/f"]),
        { cwd: `${base}/work`, clearEnv: true, env, timeoutMs: 120_000 },
      );
      assert.equal(locked.code, 0, locked.stderr);
      assert.equal(await Deno.readTextFile(`${base}/home/out/f`), "again\n");
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});

/**
 * The README's first session, run verbatim: every `$ ` line of its console
 * block runs through an installed `sandbox` command (the wrapper
 * `deno task install` writes) in a project under a real, fresh HOME, and
 * every output line the README shows must appear. The session runs npm ci,
 * so it needs the npm registry (read at run time from `npm config get
 * registry`); without it the test is skipped with a message.
 */
import assert from "node:assert/strict";
import { renderWrapper } from "../tools/install.ts";
import { sandboxTaskFlags } from "../tools/task_flags.ts";
import { npmRegistry } from "./npm_helpers.ts";

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");

interface Step {
  readonly command: string;
  readonly expected: readonly string[];
}

/** The `$ ` lines of the README's first-session console block with the output shown after each. */
export function firstSessionSteps(readme: string): Step[] {
  const section = readme.slice(readme.indexOf("## A first session"));
  const start = section.indexOf("```console\n") + "```console\n".length;
  const block = section.slice(start, section.indexOf("\n```", start));
  const steps: { command: string; expected: string[] }[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("$ ")) {
      steps.push({ command: line.slice(2).replace(/\s{2,}#.*$/, "").trim(), expected: [] });
    } else if (line.trim() !== "") {
      steps.at(-1)?.expected.push(line.trim());
    }
  }
  return steps;
}

const REGISTRY = await npmRegistry("readme_test");

Deno.test("README: the first session's steps parse into commands and shown output", async () => {
  const steps = firstSessionSteps(await Deno.readTextFile(`${ROOT}/README.md`));
  assert.ok(steps.length >= 5, "the session has its steps");
  assert.equal(steps[0].command, "cd ~/my-project");
  assert.ok(steps.some((s) => s.command.startsWith("sandbox run") && s.expected.length > 0));
});

Deno.test({
  name: "README: the first session works verbatim with a real HOME",
  ignore: REGISTRY === null,
  async fn() {
    const steps = firstSessionSteps(await Deno.readTextFile(`${ROOT}/README.md`));
    // Not under /tmp: the sandbox has a fresh /tmp of its own, where a HOME
    // would be writable and empty. A home beside the real one is seen as a
    // user's home is.
    const home = await Deno.makeTempDir({
      dir: Deno.env.get("HOME") ?? "/root",
      prefix: ".sandbox-readme-home-",
    });
    try {
      const bin = `${home}/.local/bin`;
      await Deno.mkdir(bin, { recursive: true });
      const flags = await sandboxTaskFlags();
      await Deno.writeTextFile(
        `${bin}/sandbox`,
        renderWrapper({ deno: Deno.execPath(), checkout: ROOT, flags }),
        { mode: 0o755 },
      );
      const project = `${home}/my-project`;
      await Deno.mkdir(project);
      await Deno.writeTextFile(
        `${project}/package.json`,
        JSON.stringify({
          name: "my-project",
          version: "1.0.0",
          scripts: { test: "node -e \"console.log('tests pass')\"" },
          dependencies: { "is-number": "7.0.0" },
        }),
      );
      const lock = await new Deno.Command("npm", {
        args: [
          "install",
          "--package-lock-only",
          "--ignore-scripts",
          "--cache",
          `${home}/.host-cache`,
        ],
        cwd: project,
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(lock.code, 0, new TextDecoder().decode(lock.stderr));
      await Deno.remove(`${home}/.host-cache`, { recursive: true });

      const env: Record<string, string> = {
        HOME: home,
        PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
        LANG: "C.UTF-8",
      };
      let cwd = home;
      for (const step of steps) {
        const cd = /^cd (\S+)$/.exec(step.command);
        if (cd) {
          cwd = cd[1].replace(/^~/, home);
          await Deno.stat(cwd);
          continue;
        }
        const out = await new Deno.Command("/bin/sh", {
          args: ["-c", step.command],
          cwd,
          clearEnv: true,
          env,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(180_000),
        }).output();
        const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
        const lines = new Set(text.split("\n").map((l) => l.trim()));
        for (const want of step.expected) {
          const line = want.replaceAll("/home/me", home);
          assert.ok(lines.has(line), `"${step.command}" printed "${line}":\n${text}`);
        }
        if (step.expected.length === 0) {
          assert.equal(out.code, 0, `"${step.command}" exits 0:\n${text}`);
        }
      }
      // npm ci installed into the project, with npm's default cache under a read-only HOME,
      // and the learned profile exists.
      await Deno.stat(`${home}/my-project/node_modules/is-number/package.json`);
      await Deno.stat(`${home}/my-project/ci.toml`);
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  },
});

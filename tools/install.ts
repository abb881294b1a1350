/**
 * `deno task install [--bin DIR] [--force]`: puts a `sandbox` command on PATH
 * that runs this checkout with the Deno that ran the install, the flags of
 * the `sandbox` task and this checkout's deno.json — so that from any project
 * directory `sandbox run -- npm ci` runs in that directory.
 *
 * `deno install -g` would do most of this, but its wrapper calls whatever
 * `deno` is on PATH, and a Deno taken from npm through npx is not on PATH.
 *
 * @module
 */
import { sandboxTaskFlags } from "./task_flags.ts";

/** Marks a wrapper this task wrote, so a reinstall may replace it. */
const MARKER = "# written by sandbox's deno task install";

/** Quotes one word for a POSIX shell. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Options for {@linkcode renderWrapper}. */
export interface RenderWrapperOptions {
  /** Absolute path of the Deno binary. */
  deno: string;
  /** Absolute path of the checkout (holds deno.json and main.ts). */
  checkout: string;
  /** `deno run` flags of the sandbox task. */
  flags: readonly string[];
}

/** Renders the wrapper script. Pure. */
export function renderWrapper(options: RenderWrapperOptions): string {
  const argv = [
    options.deno,
    "run",
    "-A",
    "--no-prompt",
    "--quiet",
    ...options.flags,
    "--config",
    `${options.checkout}/deno.json`,
    `${options.checkout}/main.ts`,
  ];
  return `#!/bin/sh\n${MARKER}\nexec ${argv.map(shellQuote).join(" ")} "$@"\n`;
}

if (import.meta.main) {
  const args = [...Deno.args];
  const force = args.includes("--force");
  const binIndex = args.indexOf("--bin");
  const home = Deno.env.get("HOME");
  const bin = binIndex !== -1 ? args[binIndex + 1] : home ? `${home}/.local/bin` : undefined;
  if (!bin || !bin.startsWith("/")) {
    console.error('sandbox install: Give an absolute directory with "--bin DIR" (HOME is not set)');
    Deno.exit(2);
  }
  const checkout = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const target = `${bin}/sandbox`;
  try {
    const existing = await Deno.readTextFile(target);
    if (!existing.includes(MARKER) && !force) {
      console.error(
        `sandbox install: "${target}" exists and was not written by this task: remove it or pass --force`,
      );
      Deno.exit(1);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(bin, { recursive: true });
  const text = renderWrapper({ deno: Deno.execPath(), checkout, flags: await sandboxTaskFlags() });
  // Replace atomically, never writing through a symlink someone left there.
  const temp = `${target}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(temp, text, { createNew: true, mode: 0o755 });
  await Deno.rename(temp, target);
  console.log(`Installed ${target}: runs ${checkout} with ${Deno.execPath()}`);
  const path = (Deno.env.get("PATH") ?? "").split(":");
  if (!path.includes(bin)) console.log(`Add ${bin} to PATH: export PATH="${bin}:$PATH"`);
}

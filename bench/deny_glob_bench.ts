/**
 * What a deny glob costs at run start: `expandDenyGlobs()` (the walk that
 * finds every match of `**\/*.env` so the sandbox can hide it) on a generated
 * workspace, beside a plain recursive `readDirSync` walk of the same tree
 * measured in the same run (the floor any expansion pays), and with
 * `glob_scan_max_depth = 3`. Medians of `--samples` runs; the ratio to the
 * plain walk is the figure to compare across machines.
 *
 * Run: `npx -y deno@2.9.6 run -A bench/deny_glob_bench.ts [--dirs 400] [--files 50] [--samples 9] [--root /]`
 * (`--root DIR` also times `DIR/**\/*.env`, e.g. the whole filesystem for a managed `"/**\/*.env"`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { expandDenyGlobs } from "../sandbox/glob_expand.ts";
import { median } from "./common.ts";

const { values } = parseArgs({
  options: {
    dirs: { type: "string", default: "400" },
    files: { type: "string", default: "50" },
    samples: { type: "string", default: "9" },
    root: { type: "string" },
  },
});
const dirs = Number(values.dirs);
const files = Number(values.files);
const samples = Number(values.samples);

function time(fn: () => unknown): number[] {
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const start = performance.now();
    fn();
    out.push(performance.now() - start);
  }
  return out;
}

function plainWalk(dir: string): number {
  let n = 0;
  for (const entry of Deno.readDirSync(dir)) {
    n++;
    if (entry.isDirectory && !entry.isSymlink) n += plainWalk(`${dir}/${entry.name}`);
  }
  return n;
}

const root = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "deny_glob_bench_" });
try {
  // A workspace shaped like a JS monorepo: nested package dirs, many small files, a few .env.
  for (let d = 0; d < dirs; d++) {
    const dir = `${root}/packages/p${d % 20}/src/m${d}`;
    Deno.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < files; f++) Deno.writeTextFileSync(`${dir}/f${f}.js`, "");
    if (d % 50 === 0) Deno.writeTextFileSync(`${dir}/.env`, "S=1");
  }
  const entries = plainWalk(root);
  const matches = expandDenyGlobs([`${root}/**/*.env`]).length;
  const baseline = median(time(() => plainWalk(root)));
  const full = median(time(() => expandDenyGlobs([`${root}/**/*.env`])));
  const capped = median(time(() => expandDenyGlobs([`${root}/**/*.env`], { maxDepth: 3 })));
  console.log(`tree: ${entries} entries, ${matches} matches of **/*.env; medians of ${samples}`);
  console.log(`plain readDirSync walk (baseline)   ${baseline.toFixed(1)} ms`);
  console.log(
    `expandDenyGlobs **/*.env            ${full.toFixed(1)} ms  (${
      (full / baseline).toFixed(2)
    }x baseline)`,
  );
  console.log(
    `expandDenyGlobs, max depth 3        ${capped.toFixed(1)} ms  (${
      (capped / baseline).toFixed(2)
    }x baseline)`,
  );
  if (values.root !== undefined) {
    const start = performance.now();
    const found = expandDenyGlobs([`${values.root.replace(/\/$/, "")}/**/*.env`]).length;
    console.log(
      `expandDenyGlobs ${values.root}**/*.env (one run)  ${
        (performance.now() - start).toFixed(0)
      } ms, ${found} matches`,
    );
  }
} finally {
  await Deno.remove(root, { recursive: true });
}

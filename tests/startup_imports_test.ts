import assert from "node:assert/strict";

const REPO = new URL("../", import.meta.url);

/**
 * The modules `entry` loads before any of its code runs: its static imports,
 * transitively (type-only and dynamic imports left out), from `deno info --json`.
 */
async function staticGraph(entry: URL): Promise<Map<string, string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry.href],
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: {
      specifier: string;
      dependencies?: { isDynamic?: boolean; code?: { specifier: string } }[];
    }[];
  };
  const modules = new Map(info.modules.map((m) => [m.specifier, m]));
  const importer = new Map<string, string>([[entry.href, ""]]);
  const todo = [entry.href];
  while (todo.length > 0) {
    const specifier = todo.pop()!;
    for (const dep of modules.get(specifier)?.dependencies ?? []) {
      const code = dep.code?.specifier;
      if (dep.isDynamic === true || code === undefined || importer.has(code)) continue;
      importer.set(code, specifier);
      todo.push(code);
    }
  }
  return importer;
}

Deno.test("sandbox run's start-up module graph imports no node: or npm: module", async () => {
  // A node: import switches on Deno's Node compatibility layer (~7 ms) and an npm: one loads a
  // package (smol-toml: ~5 ms) on every `sandbox run`; they belong behind a dynamic import()
  // on the path that needs them (bench/run_bench.ts measures the start-up).
  const graph = await staticGraph(new URL("cli/run.ts", REPO));
  assert.ok(graph.has(new URL("profiles/load.ts", REPO).href), "the walk found load.ts");
  assert.ok(graph.has(new URL("cli/args.ts", REPO).href), "the walk found args.ts");
  const offenders = [...graph].filter(([specifier]) => /^(node|npm):/.test(specifier))
    .map(([specifier, by]) => `${specifier} (imported by ${by})`);
  assert.deepEqual(offenders, []);
});

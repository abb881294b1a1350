/**
 * The floors of the house, and a check that keeps them: each library folder
 * imports only folders on lower floors (or on its own floor without a cycle).
 * `deno task check` runs it, and so CI.
 *
 * ```
 * errors.ts, self.ts, version.ts, safe_file.ts  →  policy/  →  execpolicy/  →  profiles/  →  proxy/, sandbox/  →  run/  →  cli/
 * ```
 *
 * `main.ts` and `mod.ts` are the entries and may import any floor; tests,
 * benches and tools are not part of the library and are not checked.
 *
 * @module
 */

/** Floor of each library folder (root files are named by file). */
export const FLOORS: Readonly<Record<string, number>> = {
  "errors.ts": 0,
  "self.ts": 0,
  "version.ts": 0,
  "safe_file.ts": 0,
  policy: 1,
  execpolicy: 2,
  profiles: 3,
  proxy: 4,
  sandbox: 4,
  run: 5,
  cli: 6,
};

/** Entries that may import any floor. */
const ENTRIES = new Set(["main.ts", "mod.ts"]);

/** One import between two files of the repository (paths relative to its root). */
export interface ImportEdge {
  readonly from: string;
  readonly to: string;
}

/** Which unit (folder or root file) a path belongs to. */
export function unitOf(path: string): string {
  const slash = path.indexOf("/");
  return slash === -1 ? path : path.slice(0, slash);
}

/**
 * Returns every violation of the floors in `edges`, one sentence each:
 * an import to a higher floor, an import from a library file into a unit
 * that has no floor, each cycle between units of the same floor, and each
 * cycle between files (type-only imports count: a cycle of types is still
 * two files that cannot be read apart).
 */
export function checkLayers(edges: readonly ImportEdge[]): string[] {
  const problems: string[] = [];
  const unitEdges = new Map<string, Set<string>>();
  const fileEdges = new Map<string, Set<string>>();
  for (const { from, to } of edges) {
    const a = unitOf(from);
    const b = unitOf(to);
    // A module's own @example may import itself ("./mod.ts"): not an edge.
    if (FLOORS[a] !== undefined && FLOORS[b] !== undefined && from !== to) {
      let files = fileEdges.get(from);
      if (!files) fileEdges.set(from, files = new Set());
      files.add(to);
    }
    if (ENTRIES.has(a) || a === b) continue;
    const fa = FLOORS[a];
    if (fa === undefined) continue; // tests, bench, tools
    const fb = FLOORS[b];
    if (fb === undefined) {
      problems.push(`${from} imports ${to}: "${b}" is not a library floor`);
      continue;
    }
    if (fb > fa) {
      problems.push(
        `${from} imports ${to}: "${a}" (floor ${fa}) may not import "${b}" (floor ${fb})`,
      );
      continue;
    }
    let set = unitEdges.get(a);
    if (!set) unitEdges.set(a, set = new Set());
    set.add(b);
  }
  for (const cycle of findCycles(unitEdges)) {
    problems.push(`folder cycle: ${cycle.join(" -> ")}`);
  }
  for (const cycle of findCycles(fileEdges)) {
    problems.push(`file cycle: ${cycle.join(" -> ")}`);
  }
  return problems;
}

function findCycles(graph: Map<string, Set<string>>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const s = state.get(next);
      if (s === "open") cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (s === undefined) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])(\.{1,2}\/[^"']+)\1/g;

/** The relative imports of one source text (static, dynamic, re-exports, type-only). */
export function relativeImports(source: string): string[] {
  return [...source.matchAll(SPECIFIER)].map((m) => m[2]);
}

function join(dir: string, relative: string): string {
  const parts = dir === "" ? [] : dir.split("/");
  for (const part of relative.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== ".") parts.push(part);
  }
  return parts.join("/");
}

/** Reads the import edges of every library file under `root` (tests excluded). */
export async function readImportEdges(root: string): Promise<ImportEdge[]> {
  const edges: ImportEdge[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir === "" ? root : `${root}/${dir}`)) {
      const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory) {
        if (dir === "" && FLOORS[entry.name] === undefined) continue;
        await walk(path);
      } else if (entry.isFile && path.endsWith(".ts") && !path.endsWith("_test.ts")) {
        if (dir === "" && FLOORS[path] === undefined && !ENTRIES.has(path)) continue;
        const text = await Deno.readTextFile(`${root}/${path}`);
        for (const spec of relativeImports(text)) {
          edges.push({ from: path, to: join(dir, spec) });
        }
      }
    }
  };
  await walk("");
  return edges;
}

if (import.meta.main) {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const problems = checkLayers(await readImportEdges(root));
  if (problems.length > 0) {
    console.error(`Layer check failed (${problems.length}):`);
    for (const p of problems) console.error(`  ${p}`);
    Deno.exit(1);
  }
  console.log("Layer check: every library import goes down a floor, no folder or file cycle");
}

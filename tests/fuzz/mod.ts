/**
 * `deno task fuzz`: runs every fuzz target (or one, with `--target NAME`)
 * for a fixed budget of inputs and prints, per target, the inputs run, the
 * failures and the time. Exits non-zero on any failure and prints the
 * shrunk counterexample and the seed that replays it.
 *
 * ```sh
 * deno task fuzz                               # 1,000,000 inputs per target
 * deno task fuzz --runs 20000 --target socks5_wire --seed 42
 * deno task fuzz --list
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { FuzzReport, FuzzTarget } from "./harness.ts";
import { FUZZ_TARGETS } from "./targets.ts";

/** Default inputs per target. */
export const DEFAULT_RUNS = 1_000_000;

/** Default per-input time limit for pure targets (ms); socket targets get more. */
export const DEFAULT_PER_INPUT_MS = 2_000;

/** Options for {@linkcode runFuzz}. */
export interface RunFuzzOptions {
  /** Inputs per target. */
  runs: number;
  /** Seed; the same seed replays the same inputs. */
  seed: number;
  /** Only these targets (all when empty). */
  targets?: readonly string[];
  /** Called with each report as it finishes. */
  onReport?: (report: FuzzReport) => void;
}

/** Picks targets by name; throws on an unknown name, listing the known ones. */
export function selectTargets(names: readonly string[] = []): FuzzTarget[] {
  if (names.length === 0) return [...FUZZ_TARGETS];
  return names.map((name) => {
    const target = FUZZ_TARGETS.find((t) => t.name === name);
    if (target === undefined) {
      throw new Error(
        `Unknown fuzz target "${name}": expected one of ${
          FUZZ_TARGETS.map((t) => `"${t.name}"`).join(", ")
        }`,
      );
    }
    return target;
  });
}

/**
 * Runs the selected targets one after another and returns their reports.
 *
 * @example
 * ```ts
 * const reports = await runFuzz({ runs: 2000, seed: 1 });
 * reports.every((r) => r.failures === 0);
 * ```
 */
export async function runFuzz(options: RunFuzzOptions): Promise<FuzzReport[]> {
  const reports: FuzzReport[] = [];
  for (const target of selectTargets(options.targets)) {
    const result = await target.run({
      runs: options.runs,
      seed: options.seed,
      perInputMs: target.kind === "socket" ? 10_000 : DEFAULT_PER_INPUT_MS,
    });
    reports.push(result);
    options.onReport?.(result);
  }
  return reports;
}

/** One line per report: target, inputs, failures, time and rate. */
export function formatReport(report: FuzzReport): string {
  const rate = report.ms > 0 ? Math.round(report.inputs / (report.ms / 1000)) : report.inputs;
  let line = `${report.target.padEnd(18)} inputs ${
    String(report.inputs).padStart(9)
  }  failures ${report.failures}  time ${
    (report.ms / 1000).toFixed(1)
  } s  (${rate}/s)  seed ${report.seed}`;
  if (report.notes) line += `\n  ${report.notes}`;
  if (report.failures > 0) {
    line += `\n  error: ${report.error}\n  counterexample: ${report.counterexample}`;
  }
  return line;
}

async function main(args: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args,
      options: {
        runs: { type: "string" },
        target: { type: "string", multiple: true },
        seed: { type: "string" },
        list: { type: "boolean" },
      },
      strict: true,
    }).values;
  } catch (error) {
    console.error(`fuzz: ${error instanceof Error ? error.message : error}`);
    return 2;
  }
  if (values.list) {
    for (const t of FUZZ_TARGETS) {
      console.log(`${t.name.padEnd(18)} ${t.kind.padEnd(6)} ${t.description}`);
    }
    return 0;
  }
  const runs = values.runs === undefined ? DEFAULT_RUNS : Number(values.runs);
  const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
  if (!Number.isSafeInteger(runs) || runs < 1) {
    console.error(`fuzz: invalid --runs "${values.runs}": expected a positive integer`);
    return 2;
  }
  if (!Number.isSafeInteger(seed)) {
    console.error(`fuzz: invalid --seed "${values.seed}": expected an integer`);
    return 2;
  }
  let reports: FuzzReport[];
  try {
    reports = await runFuzz({
      runs,
      seed,
      targets: values.target ?? [],
      onReport: (r) => console.log(formatReport(r)),
    });
  } catch (error) {
    console.error(`fuzz: ${error instanceof Error ? error.message : error}`);
    return 2;
  }
  const failed = reports.filter((r) => r.failures > 0);
  const total = reports.reduce((n, r) => n + r.inputs, 0);
  console.log(`total inputs ${total}, failed targets ${failed.length}`);
  return failed.length > 0 ? 1 : 0;
}

if (import.meta.main) {
  Deno.exitCode = await main(Deno.args);
}

/**
 * The fuzz harness: a target is a fast-check property over bounded inputs
 * plus a name; {@linkcode runTarget} runs it for a fixed number of inputs
 * with a seed and a per-input time limit, and reports inputs run, failures,
 * the shrunk counterexample and the time taken. Used by `deno task fuzz`
 * (tests/fuzz/mod.ts) with a large budget and by tests/fuzz_test.ts with a
 * small one.
 *
 * @module
 */
import fc from "fast-check";

/** How a target runs: in memory, or against a real proxy on loopback sockets. */
export type FuzzKind = "pure" | "socket";

/** Options of one fuzz run. */
export interface FuzzRunOptions {
  /** How many inputs to try. */
  readonly runs: number;
  /** The fast-check seed (the same seed replays the same inputs). */
  readonly seed: number;
  /** An input that takes longer than this fails as a hang (ms). */
  readonly perInputMs: number;
}

/** A fuzz target: a name and a way to build its property. */
export interface FuzzTarget {
  /** Short name, used with `--target`. */
  readonly name: string;
  /** What is fuzzed and which properties are checked. */
  readonly description: string;
  /** `socket` targets open one loopback connection per input and are run with fewer inputs. */
  readonly kind: FuzzKind;
  /** Runs the target. Never throws for a property failure: that is in the report. */
  run(options: FuzzRunOptions): Promise<FuzzReport>;
}

/** The outcome of one target's run. */
export interface FuzzReport {
  /** The target's name. */
  readonly target: string;
  /** Inputs that ran (fewer than asked when a failure stopped the run). */
  readonly inputs: number;
  /** 0, or 1 when a property failed (fast-check stops at the first failure and shrinks it). */
  readonly failures: number;
  /** The shrunk failing input, printed, or null. */
  readonly counterexample: string | null;
  /** Why it failed, or null. */
  readonly error: string | null;
  /** The seed used. */
  readonly seed: number;
  /** Wall time in milliseconds. */
  readonly ms: number;
  /** Counters a target reports (how often its deeper checks ran), or null. */
  readonly notes?: string | null;
}

/** A property failure with a readable message (thrown from inside a property). */
export class PropertyFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PropertyFailure";
  }
}

/** Throws a {@linkcode PropertyFailure} when `condition` is false. */
export function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new PropertyFailure(message);
}

/**
 * Rethrows `error` as a failure unless it is one of the module's documented
 * clean refusal types.
 */
export function onlyRefusals(
  error: unknown,
  // deno-lint-ignore no-explicit-any
  allowed: readonly (abstract new (...args: any[]) => Error)[],
  where: string,
): void {
  if (allowed.some((type) => error instanceof type)) return;
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  throw new PropertyFailure(`${where} threw something other than a clean refusal: ${text}`);
}

function report(
  target: string,
  options: FuzzRunOptions,
  started: number,
  details: fc.RunDetails<unknown>,
): FuzzReport {
  const failed = details.failed;
  let error: string | null = null;
  if (failed) {
    const e = details.errorInstance;
    error = e instanceof Error ? `${e.name}: ${e.message}` : String(e ?? "property returned false");
    if (details.interrupted) error = `interrupted: ${error}`;
  }
  return {
    target,
    inputs: details.numRuns + (failed ? 1 : 0),
    failures: failed ? 1 : 0,
    counterexample: failed && details.counterexample !== null
      ? fc.stringify(details.counterexample)
      : null,
    error,
    seed: options.seed,
    ms: Math.round(performance.now() - started),
  };
}

/** Runs a synchronous property; each input is timed and fails when slower than `perInputMs`. */
export function runSync<T>(
  target: string,
  arbitrary: fc.Arbitrary<T>,
  predicate: (input: T) => void,
  options: FuzzRunOptions,
): FuzzReport {
  const started = performance.now();
  const property = fc.property(arbitrary, (input) => {
    const t0 = performance.now();
    predicate(input);
    const took = performance.now() - t0;
    check(took <= options.perInputMs, `one input took ${Math.round(took)} ms (a hang?)`);
  });
  const details = fc.check(property, {
    numRuns: options.runs,
    seed: options.seed,
    endOnFailure: false,
  });
  return report(target, options, started, details as fc.RunDetails<unknown>);
}

/** Runs an asynchronous property; an input still pending after `perInputMs` fails as a hang. */
export async function runAsync<T>(
  target: string,
  arbitrary: fc.Arbitrary<T>,
  predicate: (input: T) => Promise<void>,
  options: FuzzRunOptions,
): Promise<FuzzReport> {
  const started = performance.now();
  const property = fc.asyncProperty(arbitrary, async (input) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new PropertyFailure(`one input took over ${options.perInputMs} ms (a hang?)`)),
        options.perInputMs,
      );
    });
    const work = predicate(input);
    try {
      await Promise.race([work, hang]);
    } finally {
      clearTimeout(timer);
      // Let a timed-out input finish before the next one starts (its sockets close).
      await work.catch(() => {});
    }
  });
  const details = await fc.check(property, { numRuns: options.runs, seed: options.seed });
  return report(target, options, started, details as fc.RunDetails<unknown>);
}

/** Byte equality. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

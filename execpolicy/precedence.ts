/**
 * Which matching rule decides: the most specific one. Patterns are compared
 * word by word from the left; at the first word where they differ:
 *
 * 1. a literal word (`push`) beats a glob with some fixed characters
 *    (`pu*`, `v[0-9]*`), which beats a bare wildcard word (`*` or `?` in the
 *    middle of a pattern), which beats no word at all (the pattern has ended,
 *    or only its trailing `*` is left);
 * 2. between two globs with fixed characters, more fixed characters win.
 *
 * When every word ties, a pattern without a trailing `*` (exact length) beats
 * one with it. Rules still tied have equal specificity: they combine strictest
 * first (deny > allow > allow-network).
 *
 * So `git push *` beats `git *`, `npm ci` beats `npm *` and `npm ci *`, and
 * `curl -fsSL https://mirror.example/setup.sh` beats `curl *`.
 *
 * @module
 */
import type { WordGlob } from "./glob.ts";
import type { CompiledPattern } from "./match.ts";

function wordRank(glob: WordGlob | undefined): [number, number] {
  if (glob === undefined) return [0, 0];
  if (glob.literal !== null) return [3, glob.literalChars];
  if (glob.literalChars > 0) return [2, glob.literalChars];
  return [1, 0];
}

/**
 * Compares two patterns' specificity: positive when `a` is more specific,
 * negative when `b` is, 0 when they tie.
 *
 * @example
 * ```ts
 * compareSpecificity(compilePattern("git push *"), compilePattern("git *")); // > 0
 * ```
 */
export function compareSpecificity(a: CompiledPattern, b: CompiledPattern): number {
  const n = Math.max(a.words.length, b.words.length);
  for (let i = 0; i < n; i++) {
    const [ka, ca] = wordRank(a.words[i]);
    const [kb, cb] = wordRank(b.words[i]);
    if (ka !== kb) return ka - kb;
    // Literal words tie whatever their length: `git push` is no more specific than `git pull`.
    if (ka === 2 && ca !== cb) return ca - cb;
  }
  if (a.trailingStar !== b.trailingStar) return a.trailingStar ? -1 : 1;
  return 0;
}

/**
 * The most specific of `items` (every item tied at the top), by
 * {@linkcode compareSpecificity} of `pattern(item)`.
 */
export function mostSpecific<T>(items: readonly T[], pattern: (item: T) => CompiledPattern): T[] {
  let best: T[] = [];
  for (const item of items) {
    if (best.length === 0) {
      best = [item];
      continue;
    }
    const c = compareSpecificity(pattern(item), pattern(best[0]));
    if (c > 0) best = [item];
    else if (c === 0) best.push(item);
  }
  return best;
}

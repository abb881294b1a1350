/**
 * Loads the C library through Deno's FFI with the symbols a caller needs:
 * the one place that knows libc's file names (glibc and musl). Free of other
 * project imports: the bridge's start-up loads it too.
 *
 * @module
 */

const LIBC_NAMES = ["libc.so.6", "libc.so", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"];

/**
 * Opens libc with `symbols`. Throws an `Error` saying why the last name
 * failed when none loads.
 *
 * @example
 * ```ts
 * using libc = dlopenLibc({ close: { parameters: ["i32"], result: "i32" } });
 * libc.symbols.close(-1);
 * ```
 */
export function dlopenLibc<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> & Disposable {
  let last: unknown = null;
  for (const name of LIBC_NAMES) {
    try {
      const lib = Deno.dlopen(name, symbols);
      return Object.assign(lib, { [Symbol.dispose]: () => lib.close() });
    } catch (error) {
      last = error;
    }
  }
  throw new Error(
    `libc could not be loaded: ${last instanceof Error ? last.message : String(last)}`,
  );
}

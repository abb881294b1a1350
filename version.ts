/**
 * The version of sandbox, kept in one place (it must equal `deno.json`'s,
 * which a test checks).
 *
 * @module
 */

/** The release version. */
export const VERSION = "0.1.0";

/**
 * The command-line settings a config load takes (`--config`, `--allow`, …),
 * as the profile loader's own type: the CLI parses flags into this shape and
 * hands it down, so nothing below the CLI depends on the CLI.
 *
 * @module
 */

/** Settings from the command line that the loader merges over the config files. */
export interface ConfigFlags {
  config?: string[];
  profile?: string;
  allow?: string[];
  deny?: string[];
  preset?: string[];
  mode?: string;
  mitm?: boolean;
  /** `--no-capture` (run): false turns capture off. */
  capture?: boolean;
  "allow-local-binding"?: boolean;
  "allow-unix-socket"?: string[];
  /** `--writable PATH` (run, learn): absolute or `~/` (the CLI makes relative paths absolute). */
  writable?: string[];
  resolve?: string[];
  /** `--rules FILE` (policy check, run): Codex execpolicy `.rules` files (relative to the cwd). */
  rules?: string[];
  log?: string;
  "ca-dir"?: string;
  json?: boolean;
  help?: boolean;
  /** `--report` (run): report mode. */
  report?: boolean;
  /** `--secret VAR=HOST[,HOST…]` (run): bind the launcher's VAR to those hosts. */
  secret?: string[];
}

/**
 * Execpolicy: per-command decisions. A table of command patterns decides,
 * before anything runs, whether a command is refused (`deny`), runs
 * sandboxed without any network (`allow`) or runs sandboxed with the proxy
 * (`allow-network`). Shell scripts given with `sh -c` are split into their
 * commands; wrappers such as `env` and `timeout` are looked through; shims
 * keep `deny` rules in force for programs started inside the sandbox.
 *
 * @example
 * ```ts
 * import { decideCommand, formatExecDenial } from "./mod.ts";
 * const verdict = decideCommand(config.execpolicy, ["npm", "ci"], { networkEnabled: true });
 * if (verdict.decision === "deny") console.error(`sandbox: ${formatExecDenial(verdict)}`);
 * ```
 *
 * @module
 */
export {
  approvePrompts,
  combineParts,
  decideCommand,
  decideCommandLazily,
  deniedOnlyByPrompts,
  formatExecDenial,
  strictest,
} from "./decide.ts";
export { loadShellParser } from "./bash_parser.ts";
export { codexRulesToExecRules, parseCodexRules, RulesFileError } from "./codex_rules.ts";
export type {
  CodexHostExecutable,
  CodexPrefixRule,
  CodexRules,
  CodexRulesOptions,
  RulesProblem,
} from "./codex_rules.ts";
export type { ShellParser } from "./bash_parser.ts";
export { bindNetwork } from "./hosts.ts";
export type {
  DecideCommandOptions,
  ExecBasis,
  ExecCommandVerdict,
  ExecMatch,
  ExecVerdict,
} from "./decide.ts";
export { checkExecPolicyExamples } from "./check.ts";
export { compilePattern, matchArgv, PatternError } from "./match.ts";
export type { CompiledPattern } from "./match.ts";
export { shellJoin, shellSplit, ShellSplitError } from "./shell_split.ts";
export { parseScript } from "./script.ts";
export { COMMON_BIN_DIRS, planShims, prepareShims, writeShims } from "./shim.ts";
export type { PrepareShimsOptions, ShimBind, ShimFile, ShimPlan } from "./shim.ts";
export { runShim } from "./shim_run.ts";
export type { RunShimOptions, ShimRequest } from "./shim_run.ts";
export type { ScriptParse, ScriptWord } from "./script.ts";

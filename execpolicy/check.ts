/**
 * Load-time checks of an execpolicy table: every pattern compiles, every
 * decision is known, and every `match` example matches its rule's pattern
 * while every `not_match` example does not. Examples are command lines,
 * shell-split like patterns, and matched against the pattern itself.
 *
 * @module
 */
import type { ConfigProblem } from "../errors.ts";
import type { ExecPolicyConfig, ExecRule } from "./types.ts";
import { compilePattern, matchArgv, PatternError } from "./match.ts";
import { shellSplit, ShellSplitError } from "./shell_split.ts";

const DECISIONS = ["deny", "allow", "allow-network"];

/**
 * Returns every problem of the table (an empty list when it is fine), each
 * naming the rule's file (from `ExecRule.source`) and key path, e.g.
 * `execpolicy."git push *".match[0]`.
 *
 * @example
 * ```ts
 * const problems = checkExecPolicyExamples(policy);
 * if (problems.length > 0) throw new ConfigError(problems);
 * ```
 */
export function checkExecPolicyExamples(policy: ExecPolicyConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (!DECISIONS.includes(policy.default)) {
    problems.push({
      file: policy.rules[0] === undefined ? "config" : sourceFile(policy.rules[0]),
      keyPath: "execpolicy_default",
      message: `Unknown decision "${policy.default}": expected "deny", "allow" or "allow-network"`,
    });
  }
  for (const rule of policy.rules) {
    const file = sourceFile(rule);
    const key = `execpolicy.${quoteKey(rule.pattern)}`;
    if (!DECISIONS.includes(rule.decision)) {
      problems.push({
        file,
        keyPath: key,
        message: `Unknown decision "${rule.decision}" for rule "${rule.pattern}": ` +
          `expected "deny", "allow" or "allow-network"`,
      });
    }
    let pattern;
    try {
      pattern = compilePattern(rule.pattern);
    } catch (error) {
      if (!(error instanceof PatternError)) throw error;
      problems.push({
        file,
        keyPath: key,
        message: `Bad rule "${rule.pattern}": ${error.message}`,
      });
      continue;
    }
    const examples: [string, readonly string[], boolean][] = [
      ["match", rule.match, true],
      ["not_match", rule.notMatch, false],
    ];
    for (const [field, list, expected] of examples) {
      list.forEach((example, index) => {
        const keyPath = `${key}.${field}[${index}]`;
        let argv: string[];
        try {
          argv = shellSplit(example).map((w) => w.text);
        } catch (error) {
          if (!(error instanceof ShellSplitError)) throw error;
          problems.push({
            file,
            keyPath,
            message:
              `The example "${example}" of rule "${rule.pattern}" cannot be split into words: ${error.message}`,
          });
          return;
        }
        if (matchArgv(pattern, argv) !== expected) {
          problems.push({
            file,
            keyPath,
            message: expected
              ? `The rule "${rule.pattern}" does not match its example "${example}": fix the pattern or the example`
              : `The rule "${rule.pattern}" matches "${example}", which its not_match list says it must not: fix the pattern or the example`,
          });
        }
      });
    }
  }
  return problems;
}

/** `user:/a/config.toml` -> `/a/config.toml`; `flag:--x` -> `--x`; otherwise the source itself. */
function sourceFile(rule: ExecRule): string {
  const match = /^[a-z][a-z0-9-]*:(.+)$/.exec(rule.source);
  return match === null ? rule.source : match[1];
}

function quoteKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

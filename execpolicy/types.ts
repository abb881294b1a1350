/**
 * The execpolicy table's data shapes, owned by the engine that reads them.
 *
 * @module
 */
import type { RuleSource } from "../policy/types.ts";

/** An execpolicy decision. Strictness: deny > allow > allow-network. */
export type ExecDecision = "deny" | "allow" | "allow-network";

/** One execpolicy rule. */
export interface ExecRule {
  /** The command pattern as written, e.g. `git push *`. */
  readonly pattern: string;
  /** What the rule decides. */
  readonly decision: ExecDecision;
  /** Why the rule exists, shown when it denies. */
  readonly justification: string | null;
  /** Example command lines that must match (checked at load). */
  readonly match: readonly string[];
  /** Example command lines that must not match (checked at load). */
  readonly notMatch: readonly string[];
  /** Where the rule came from. */
  readonly source: RuleSource;
  /**
   * For `allow-network`: the only hosts a run decided by this rule may reach
   * (still intersected with the profile's domain rules). Absent or null: no
   * binding.
   */
  readonly hosts?: readonly string[] | null;
  /**
   * When set (Codex `host_executable`), a program given as a path matches the
   * rule's program word only at one of these paths (`~/` is the home dir);
   * a bare name still matches.
   */
  readonly programPaths?: readonly string[] | null;
  /**
   * Codex `prompt`: the rule denies unless the user approves the command on
   * the terminal (`sandbox run --ask`); its `decision` is `deny`.
   */
  readonly prompt?: boolean;
}

/** The execpolicy table. */
export interface ExecPolicyConfig {
  /** Decision for a command no rule matches (`allow` unless set). */
  readonly default: ExecDecision;
  /** Rules in merge order. */
  readonly rules: readonly ExecRule[];
}

/**
 * Orchestration: one run of a command under the sandbox (execpolicy, the
 * proxy, the platform backend), and what is reported about it afterwards.
 * Shared by `sandbox run` and `sandbox learn`.
 *
 * @module
 */
export { BRIDGE_PORTS, runSandboxed } from "./run.ts";
export type { RunOptions, RunResult, RunVerdict } from "./run.ts";
export { reportRun, summarizeDecisions } from "./report.ts";
export type { AllowedHost, DecisionSummary } from "./report.ts";

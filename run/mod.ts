/**
 * Orchestration: one run of a command under the sandbox (execpolicy, the
 * proxy, the platform backend), and what is reported about it afterwards.
 * Shared by `sandbox run` and `sandbox learn`.
 *
 * @module
 */
export { runSandboxed } from "./run.ts";
export { BRIDGE_PORTS, prepareRun } from "./prepare.ts";
export type { PrepareRunOptions, RunPlan } from "./prepare.ts";
export type { RunOptions, RunResult, RunVerdict } from "./run.ts";
export { reportRun, summarizeDecisions } from "./report.ts";
export type { AllowedHost, DecisionSummary } from "./report.ts";

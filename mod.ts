/**
 * sandbox: run untrusted or semi-trusted commands under an enforced network
 * posture. The library surface: the policy engine, the proxy, the sandbox
 * plan builders and the configuration loader.
 *
 * @module
 */
export { DENY_REASON_NAMES, DENY_REASONS } from "./proxy/reasons.ts";
export type { DenyReason, DenyReasonInfo } from "./proxy/reasons.ts";
export { ConfigError, SandboxError, UsageError } from "./cli/errors.ts";
export type { ConfigProblem } from "./cli/errors.ts";
export { VERSION } from "./cli/version.ts";

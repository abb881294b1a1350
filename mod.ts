/**
 * sandbox: run untrusted or semi-trusted commands under an enforced network
 * posture. This is the library surface; the `sandbox` binary (`main.ts`) is
 * built on it.
 *
 * - Configuration: {@linkcode loadEffectiveConfig} merges managed
 *   requirements, the user file, `--config` files and flags.
 * - Network policy: {@linkcode compileNetworkPolicy} and
 *   {@linkcode decideHost} decide a host (no DNS for refused hosts).
 * - Proxy: {@linkcode startProxy} runs the HTTP/SOCKS5 egress proxy.
 * - Execpolicy: {@linkcode decideCommand} decides `deny`, `allow` or
 *   `allow-network` for an argv.
 * - Sandbox: {@linkcode buildSandboxPlan} makes the platform-neutral plan,
 *   {@linkcode buildBwrapArgs} and {@linkcode renderSeatbeltProfile} derive
 *   the Linux argv and the macOS profile from it, {@linkcode runSandboxed}
 *   runs a command end to end.
 *
 * @example
 * ```ts
 * import { compileNetworkPolicy, createResolver, decideHost, loadEffectiveConfig } from "./mod.ts";
 *
 * const config = await loadEffectiveConfig({ allow: ["*.example.com"] });
 * const policy = compileNetworkPolicy(config.network);
 * const decision = await decideHost(policy, "api.example.com", { resolver: createResolver() });
 * console.log(decision.decision, decision.reason);
 * ```
 *
 * @module
 */
export { ConfigError, SandboxError, UsageError } from "./errors.ts";
export type { ConfigErrorCode, ConfigProblem, SandboxErrorCode, UsageErrorCode } from "./errors.ts";
export { VERSION } from "./version.ts";

export { loadEffectiveConfig, validateConfigText } from "./profiles/mod.ts";
export type {
  DomainRule,
  EffectiveConfig,
  ExecDecision,
  ExecPolicyConfig,
  ExecRule,
  NetworkConfig,
  NetworkMode,
  UnixSocketRule,
} from "./profiles/mod.ts";
export { PRESETS } from "./profiles/mod.ts";

export {
  compileNetworkPolicy,
  decideHost,
  decideMethod,
  DENY_REASONS,
  isNonPublicAddress,
  normalizeHost,
  parseIpLiteral,
  validateDomainPattern,
} from "./policy/mod.ts";
export type { DenyReason, HostDecision, IpAddress, NetworkPolicy, Resolver } from "./policy/mod.ts";
export { createResolver, startProxy } from "./proxy/mod.ts";
export type { DecisionEvent, ProxyOptions, ProxyProtocol, RunningProxy } from "./proxy/mod.ts";

export { decideCommand, formatExecDenial } from "./execpolicy/mod.ts";
export type { ExecVerdict } from "./execpolicy/mod.ts";

export { buildBwrapArgs, buildSandboxPlan, renderSeatbeltProfile } from "./sandbox/mod.ts";
export type { SandboxPlan } from "./sandbox/mod.ts";
export { runSandboxed } from "./run/mod.ts";
export type { RunOptions, RunResult } from "./run/mod.ts";

/**
 * The network policy engine, pure: host normalization, IP address classes,
 * the domain pattern grammar, the deny reasons table, the host and method
 * decisions, and `decideRequest()`, the one decision per proxied request.
 * Its only I/O is what it is handed (the resolver, the unix socket check,
 * the `--ask` decider).
 *
 * @example
 * ```ts
 * import { compileNetworkPolicy, decideHost } from "./mod.ts";
 * const policy = compileNetworkPolicy(config.network);
 * const decision = await decideHost(policy, "api.example.com", { resolver });
 * ```
 *
 * @module
 */
export { normalizeHost, splitHostPort } from "./host.ts";
export type { HostPort } from "./host.ts";
export {
  classifyAddress,
  isNonPublicAddress,
  NON_PUBLIC_RANGES,
  parseIpLiteral,
} from "./address.ts";
export type { AddressClass, AddressRange, IpAddress } from "./address.ts";
export {
  compileDomainPattern,
  matchesDomainPattern,
  PatternError,
  validateDomainPattern,
} from "./pattern.ts";
export type { DomainPattern, MatchOptions, NameScope, PatternErrorCode } from "./pattern.ts";
export { compileNetworkPolicy, decideHost, decideMethod } from "./policy.ts";
export type {
  CompiledRule,
  DecideHostOptions,
  HostDecision,
  MethodDecision,
  NetworkPolicy,
} from "./policy.ts";
export {
  canonicalHost,
  decideRequest,
  DECISION_SOURCES,
  isOwnListener,
  sameHost,
} from "./decide_request.ts";
export type {
  AskQuestion,
  DecideRequestOptions,
  DecisionSource,
  OwnListeners,
  RequestDoor,
  RequestFacts,
  RequestVerdict,
  TunnelFacts,
  UnixSocketCheck,
} from "./decide_request.ts";
export { DENY_REASON_NAMES, DENY_REASONS } from "./reasons.ts";
export type { DenyReason, DenyReasonInfo } from "./reasons.ts";
export type {
  DomainRule,
  NetworkConfig,
  NetworkMode,
  Resolver,
  RuleSource,
  UnixSocketRule,
} from "./types.ts";

/**
 * The egress side of sandbox: the network policy engine (host
 * normalization, IP address classification, the domain pattern grammar,
 * name resolution, host and method decisions) and, beside it, the proxy.
 *
 * @example
 * ```ts
 * import { compileNetworkPolicy, createResolver, decideHost } from "./mod.ts";
 * const policy = compileNetworkPolicy(config.network);
 * const decision = await decideHost(policy, "api.example.com", { resolver: createResolver() });
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
export { createResolver, parseResolveFlags, ResolveError } from "./resolver.ts";
export type { CreateResolverOptions, Resolver } from "./resolver.ts";
export { compileNetworkPolicy, decideHost, decideMethod } from "./policy.ts";
export type {
  CompiledRule,
  DecideHostOptions,
  HostDecision,
  MethodDecision,
  NetworkPolicy,
} from "./policy.ts";
export { DENY_REASON_NAMES, DENY_REASONS } from "./reasons.ts";
export type { DenyReason, DenyReasonInfo } from "./reasons.ts";
export { caFilesIn, caFromPem, defaultCaDir, initCa, loadCa, signCertificate } from "./ca.ts";
export type {
  CaFiles,
  CertificateAuthority,
  CertificateIssuer,
  CertificateSpec,
  InitCaResult,
} from "./ca.ts";
export { createLeafIssuer } from "./leaf_certs.ts";
export type { LeafCertificate, LeafIssuer, LeafIssuerOptions } from "./leaf_certs.ts";
export { PROXY_LIMITS, startProxy } from "./server.ts";
export type {
  DecisionEvent,
  ListenAddress,
  MitmContext,
  MitmHandler,
  ProxyLimits,
  ProxyOptions,
  ProxyProtocol,
  RunningProxy,
} from "./server.ts";
export { formatDecisionLine, openDecisionLog, readDecisionLog } from "./decision_log.ts";
export type { DecisionLog, DecisionLogOptions, ReadDecisionLogOptions } from "./decision_log.ts";
export { connectTarget, UpstreamError, upstreamProxyFromEnv } from "./upstream.ts";
export type { ConnectTarget, UpstreamProxyConfig, UpstreamProxyServer } from "./upstream.ts";
export {
  BufferedReader,
  copyBody,
  DEFAULT_HTTP_LIMITS,
  HttpParseError,
  readRequestHead,
  readResponseHead,
  requestBodyFraming,
  responseBodyFraming,
} from "./http_parser.ts";
export type {
  BodyFraming,
  HttpHeader,
  HttpLimits,
  RequestHead,
  ResponseHead,
} from "./http_parser.ts";
export { createMitmHandler, prepareMitm } from "./mitm.ts";
export type {
  MitmOptions,
  MitmTarget,
  MitmTunnelContext,
  MitmTunnelHandler,
  PrepareMitmOptions,
} from "./mitm.ts";

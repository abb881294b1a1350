/**
 * The egress proxy: HTTP (absolute-form and CONNECT), SOCKS5, MITM for
 * limited mode, name resolution and the decision log. The policy it enforces
 * lives one floor down, in `policy/`.
 *
 * @example
 * ```ts
 * import { startProxy } from "./mod.ts";
 * await using proxy = await startProxy({ config, resolver: createResolver() });
 * ```
 *
 * @module
 */
export { createResolver, parseResolveFlags, ResolveError } from "./resolver.ts";
export type { CreateResolverOptions, Resolver } from "./resolver.ts";
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
export { createMitmHandler, prepareMitm } from "./mitm.ts";
export type {
  MitmOptions,
  MitmTarget,
  MitmTunnelContext,
  MitmTunnelHandler,
  PrepareMitmOptions,
  TunnelSlot,
} from "./mitm.ts";
export {
  connectAllowedUnixSocket,
  UnixForwardError,
  X_UNIX_SOCKET_HEADER,
} from "./unix_forward.ts";
export type { ConnectAllowedUnixSocketOptions, UnixForwardRefusal } from "./unix_forward.ts";

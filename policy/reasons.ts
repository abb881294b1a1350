/**
 * The one table of deny reasons. Every refusal the proxy makes names one of
 * these; the table maps it to its `x-proxy-error` header value and a human
 * sentence. The first six follow `testdata/conformance/blocked_responses.json`
 * (the reference design's values); the rest name what the reference folds
 * into its catch-all and keep its catch-all header, `blocked-by-policy`, so
 * that a client reading the header sees what it always saw while the JSON
 * body's `reason` says exactly why. `other` stays in the table for the
 * reference's vectors; nothing in this proxy refuses with it any more.
 *
 * @module
 */

/** Why a connection or request was refused. */
export type DenyReason =
  | "not_allowed"
  | "not_allowed_local"
  | "denied"
  | "method_not_allowed"
  | "mitm_required"
  | "other"
  | "proxy_disabled"
  | "socks_disabled"
  | "unix_socket_unsupported"
  | "unix_socket_not_allowed"
  | "invalid_port"
  | "host_mismatch"
  | "bad_request"
  | "resolve_failed"
  | "own_listener"
  | "policy_error"
  | "mitm_hook_denied"
  | "secret_wrong_host";

/** How a deny reason is shown to clients and people. */
export interface DenyReasonInfo {
  /** Value of the `x-proxy-error` response header. */
  readonly xProxyError: string;
  /** A short human sentence. */
  readonly message: string;
}

const POLICY = "blocked-by-policy";

/** Every deny reason with its header value and message. */
export const DENY_REASONS: Readonly<Record<DenyReason, DenyReasonInfo>> = Object.freeze({
  not_allowed: { xProxyError: "blocked-by-allowlist", message: "Domain not in allowlist" },
  not_allowed_local: {
    xProxyError: "blocked-by-allowlist",
    message: "Sandbox policy blocks local/private network addresses",
  },
  denied: { xProxyError: "blocked-by-denylist", message: "Domain denied by the sandbox policy" },
  method_not_allowed: {
    xProxyError: "blocked-by-method-policy",
    message: "Method not allowed in limited mode",
  },
  mitm_required: {
    xProxyError: "blocked-by-mitm-required",
    message: "MITM required for limited HTTPS",
  },
  other: { xProxyError: POLICY, message: "Request blocked by network policy" },
  proxy_disabled: { xProxyError: POLICY, message: "Network access is disabled by the profile" },
  socks_disabled: { xProxyError: POLICY, message: "SOCKS5 is disabled by the configuration" },
  unix_socket_unsupported: {
    xProxyError: POLICY,
    message: "x-unix-socket is honoured on absolute-form HTTP requests only",
  },
  unix_socket_not_allowed: { xProxyError: POLICY, message: "Unix socket not in allowlist" },
  invalid_port: { xProxyError: POLICY, message: "Port out of range" },
  host_mismatch: { xProxyError: POLICY, message: "The request's host is not the tunnel's host" },
  bad_request: { xProxyError: POLICY, message: "Malformed request" },
  resolve_failed: { xProxyError: POLICY, message: "The allowed name did not resolve" },
  own_listener: { xProxyError: POLICY, message: "The target is the proxy's own listener" },
  policy_error: { xProxyError: POLICY, message: "The policy check failed" },
  mitm_hook_denied: {
    xProxyError: "blocked-by-mitm-hook",
    message: "The host has request rules and none matches this request",
  },
  secret_wrong_host: {
    xProxyError: "blocked-by-secret-policy",
    message: "The request carries a secret's placeholder to a host the secret is not bound to",
  },
});

/** All deny reasons, in table order. */
export const DENY_REASON_NAMES: readonly DenyReason[] = Object.freeze(
  Object.keys(DENY_REASONS) as DenyReason[],
);

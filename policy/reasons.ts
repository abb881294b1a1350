/**
 * The one table of deny reasons. Every refusal the proxy makes names one of
 * these; the table maps it to its `x-proxy-error` header value and a human
 * sentence. The values follow `testdata/conformance/blocked_responses.json`.
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
  | "other";

/** How a deny reason is shown to clients and people. */
export interface DenyReasonInfo {
  /** Value of the `x-proxy-error` response header. */
  readonly xProxyError: string;
  /** A short human sentence. */
  readonly message: string;
}

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
  other: { xProxyError: "blocked-by-policy", message: "Request blocked by network policy" },
});

/** All deny reasons, in table order. */
export const DENY_REASON_NAMES: readonly DenyReason[] = Object.freeze(
  Object.keys(DENY_REASONS) as DenyReason[],
);

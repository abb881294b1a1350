/**
 * The defaults of every setting, in one place. A key a user writes always
 * replaces its default; a key nobody writes takes the value here. Pinned by
 * `defaults_test.ts` so that a change is deliberate.
 *
 * @module
 */
import type { EnvConfig, ExecDecision, FilesystemConfig } from "./types.ts";

/** Network defaults (the rule lists start empty: an empty allowlist blocks every host). */
export interface NetworkDefaults {
  /** The command gets network through the proxy (an empty allowlist still blocks everything). */
  readonly enabled: boolean;
  /** Every method passes. */
  readonly mode: "full" | "limited";
  /** Loopback and private addresses stay blocked. */
  readonly allowLocalBinding: boolean;
  /** No TLS interception. */
  readonly mitm: boolean;
  /** Only allowlisted unix sockets. */
  readonly dangerouslyAllowAllUnixSockets: boolean;
  /** The command may make unix sockets of its own (the file view hides the host's). */
  readonly strictUnixSockets: boolean;
  /** The proxy listens on loopback only. */
  readonly dangerouslyAllowNonLoopbackProxy: boolean;
  /** Pick the HTTP listen address automatically. */
  readonly proxyUrl: string | null;
  /** Pick the SOCKS5 listen address automatically. */
  readonly socksUrl: string | null;
  /** The SOCKS5 listener runs. */
  readonly enableSocks5: boolean;
  /** A miss is a denial, not a prompt. */
  readonly ask: boolean;
  /** Connections that bypass the proxy variables are captured and decided by the same policy. */
  readonly capture: boolean;
  /** Refusals are enforced (`report`: let through and logged as `would_block`). */
  readonly enforcement: "enforce" | "report";
}

/** The shape of {@linkcode DEFAULTS}. */
export interface Defaults {
  /** Network settings. */
  readonly network: NetworkDefaults;
  /** Filesystem additions. */
  readonly filesystem: FilesystemConfig;
  /** Environment filtering. */
  readonly env: EnvConfig;
  /** Decision for a command no execpolicy rule matches. */
  readonly execpolicyDefault: ExecDecision;
}

/**
 * Every default, frozen.
 *
 * @example
 * ```ts
 * import { DEFAULTS } from "./defaults.ts";
 * DEFAULTS.network.mode; // "full"
 * ```
 */
export const DEFAULTS: Defaults = deepFreeze({
  network: {
    enabled: true,
    mode: "full",
    allowLocalBinding: false,
    mitm: false,
    dangerouslyAllowAllUnixSockets: false,
    strictUnixSockets: false,
    dangerouslyAllowNonLoopbackProxy: false,
    proxyUrl: null,
    socksUrl: null,
    enableSocks5: true,
    ask: false,
    capture: true,
    enforcement: "enforce",
  },
  filesystem: { writable: [], denyRead: [] },
  env: { allow: null, deny: [] },
  execpolicyDefault: "allow",
});

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/**
 * `sandbox policy host [OPTIONS] HOST[:PORT]`: how the network policy
 * decides HOST, without connecting. The host is resolved only when an allow
 * rule matches it, exactly as the proxy would; `--resolve HOST=ADDR` answers
 * instead of DNS.
 *
 * @module
 */
import { loadEffectiveConfig } from "../profiles/load.ts";
import {
  compileNetworkPolicy,
  decideHost,
  type HostDecision,
  tlsMarkingRule,
} from "../policy/policy.ts";
import { DENY_REASONS } from "../policy/reasons.ts";
import { createResolver, parseResolveFlags, type Resolver } from "../proxy/resolver.ts";
import { splitHostPort } from "../policy/host.ts";
import { parseCommandArgs, SHARED_OPTIONS, type SharedValues } from "./args.ts";
import { UsageError } from "../errors.ts";
import { evaluateRequestRules } from "../policy/request_rules.ts";

/** Help text for `sandbox help policy host`. */
export const POLICY_HOST_HELP = `Usage: sandbox policy host [OPTIONS] HOST[:PORT]

How the network policy decides HOST, without connecting. With :PORT, only
rules without a port or with that port apply, and a "tls://HOST:PORT" rule that
marks the port as TLS is shown. A host no allow rule matches is refused without any DNS
lookup; an allowed name is resolved once and every address is checked.

Options:
  --config FILE           A TOML config file (repeatable)
  --profile NAME          Permissions profile to use
  --allow PATTERN         Add an allow rule (repeatable)
  --deny PATTERN          Add a deny rule (repeatable)
  --preset NAME           Add a named allowlist (repeatable)
  --allow-local-binding   Let the policy reach loopback/private addresses
  --resolve HOST=ADDR     Resolve HOST to ADDR instead of asking DNS (repeatable;
                          ADDR may be a comma-separated list)
  --method METHOD         With request rules: which rule decides this method
  --path PATH             … on this path and query (default /)
  --json                  Print {"host","decision","reason","rule",...} on stdout
  -h, --help              Show this help

Exit status: 0 allowed, 1 denied, 2 usage or config error.

Example:
  sandbox policy host --allow '*.example.com' --resolve api.example.com=8.8.8.8 --json api.example.com`;

/** The JSON object `--json` prints (CLI.md's four fields first). */
export interface PolicyHostJson {
  /** The normalized host. */
  readonly host: string;
  /** `allow` or `deny`. */
  readonly decision: "allow" | "deny";
  /** `allowed` or a reason of the deny-reason table. */
  readonly reason: HostDecision["reason"];
  /** The rule that decided, as written, or null. */
  readonly rule: string | null;
  /** Where that rule came from, or null. */
  readonly source: string | null;
  /** The port given with the host, or null. */
  readonly port: number | null;
  /** Allowed: the checked addresses the proxy would connect to. */
  readonly addresses?: string[];
  /** Denied: the precise cause. */
  readonly detail?: string;
  /** Denied: the `x-proxy-error` header the proxy would send. */
  readonly x_proxy_error?: string;
  /** The `tls://HOST:PORT` rule that marks this port as TLS for captured connections, if any. */
  readonly tls_rule?: string;
}

/**
 * Turns a decision into the `--json` object: `host`, `decision`, `reason`,
 * `rule` first, then `source`, `port` and `addresses` or `detail`.
 *
 * @example
 * ```ts
 * JSON.stringify(policyHostJson(decision, null));
 * // {"host":"127.0.0.1","decision":"deny","reason":"not_allowed_local","rule":null,...}
 * ```
 */
export function policyHostJson(decision: HostDecision, port: number | null): PolicyHostJson {
  const head = {
    host: decision.host,
    decision: decision.decision,
    reason: decision.reason,
    rule: decision.rule,
    source: decision.source,
    port,
  };
  return decision.decision === "allow" ? { ...head, addresses: decision.addresses } : {
    ...head,
    detail: decision.detail,
    x_proxy_error: DENY_REASONS[decision.reason].xProxyError,
  };
}

/** Renders a decision for people (what `policy host` prints without `--json`). */
export function formatHostDecision(decision: HostDecision, port: number | null): string {
  const target = port === null ? decision.host : `${decision.host} (port ${port})`;
  const rule = decision.rule === null
    ? null
    : `${JSON.stringify(decision.rule)}${
      decision.source === null ? "" : ` from ${decision.source}`
    }`;
  if (decision.decision === "allow") {
    return [
      `allow ${target}`,
      `  rule:      ${rule ?? "(none)"}`,
      `  addresses: ${decision.addresses.join(", ")}`,
    ].join("\n");
  }
  const info = DENY_REASONS[decision.reason];
  const lines = [
    `deny ${target}: ${decision.reason} (${info.message})`,
    `  detail: ${decision.detail}`,
  ];
  if (rule !== null) lines.push(`  rule:   ${rule}`);
  lines.push(`  x-proxy-error: ${info.xProxyError}`);
  return lines.join("\n");
}

/** Options for {@linkcode policyHostCommand}; the defaults are the real process's. */
export interface PolicyHostCommandOptions {
  /** Receives stdout text. */
  readonly stdout?: (text: string) => void;
  /** Environment for config discovery (`HOME`, `XDG_CONFIG_HOME`, …). */
  readonly env?: Record<string, string>;
  /** Directory for config discovery and relative `--config` paths. */
  readonly cwd?: string;
  /** Replaces the system resolver (`--resolve` overrides still come first). */
  readonly resolver?: Resolver;
}

const encoder = new TextEncoder();

/**
 * Runs `sandbox policy host`; returns the exit code (0 allowed, 1 denied).
 * Usage and config mistakes throw {@linkcode UsageError} / `ConfigError`,
 * which `main()` reports with exit code 2.
 *
 * @example
 * ```ts
 * const code = await policyHostCommand(["--allow", "example.com", "--json", "127.0.0.1"]);
 * // prints {"host":"127.0.0.1","decision":"deny","reason":"not_allowed_local",…}; code === 1
 * ```
 */
export async function policyHostCommand(
  args: string[],
  options: PolicyHostCommandOptions = {},
): Promise<number> {
  const stdout = options.stdout ??
    ((text: string) => void Deno.stdout.writeSync(encoder.encode(text)));
  const { values, positionals, rest } = parseCommandArgs("policy host", args, {
    ...SHARED_OPTIONS,
    method: { type: "string" },
    path: { type: "string" },
  }, {
    allowPositionals: true,
  });
  const method = (values as { method?: string }).method;
  const path = (values as { path?: string }).path;
  if (path !== undefined && method === undefined) {
    throw new UsageError('"--path" needs "--method", e.g. --method GET --path /pkg', {
      command: "policy host",
    });
  }
  if (path !== undefined && !path.startsWith("/")) {
    throw new UsageError(`Invalid value for --path: "${path}": expected a path starting with /`, {
      command: "policy host",
    });
  }
  const flags = values as SharedValues;
  if (flags.help === true) {
    stdout(POLICY_HOST_HELP + "\n");
    return 0;
  }
  const targets = [...positionals, ...(rest ?? [])];
  if (targets.length !== 1) {
    throw new UsageError(
      targets.length === 0
        ? 'Missing HOST for "sandbox policy host": expected one HOST[:PORT], e.g. "api.example.com:443"'
        : `Too many hosts for "sandbox policy host": got ${targets.length} (${
          targets.map((t) => JSON.stringify(t)).join(", ")
        }), expected one HOST[:PORT]`,
      { command: "policy host" },
    );
  }
  let overrides: Map<string, string[]>;
  try {
    overrides = parseResolveFlags(flags.resolve);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    throw new UsageError(error.message, { command: "policy host", cause: error });
  }
  const config = await loadEffectiveConfig(flags, { cwd: options.cwd, env: options.env });
  const policy = compileNetworkPolicy(config.network);
  const fallback = options.resolver;
  const system = createResolver();
  const resolver: Resolver = (host) => {
    const pinned = overrides.get(host);
    if (pinned !== undefined) return Promise.resolve([...pinned]);
    return (fallback ?? system)(host);
  };
  const { port } = splitHostPort(targets[0]);
  const decision = await decideHost(policy, targets[0], { resolver });
  // A program that connects directly to a port a `tls://` rule marks is decided like a CONNECT.
  const marking = port === null ? undefined : tlsMarkingRule(policy, decision.host, port);
  const tlsLine = marking === undefined
    ? ""
    : `\n  tls:       ${
      JSON.stringify(marking.pattern.text)
    } marks port ${port} as TLS: a captured connection's server name must be ${decision.host}`;
  // Which request rule decides METHOD PATH on this host (the proxy's request_rules guard).
  let request:
    | { kind: string; rule: string | null; source: string | null; reason: string | null }
    | null = null;
  if (method !== undefined) {
    const evaluation = evaluateRequestRules(policy.requestRules ?? new Map(), decision.host, {
      method,
      target: path ?? "/",
      headers: [],
    });
    request = evaluation.kind === "matched"
      ? {
        kind: "matched",
        rule: evaluation.rule.name,
        source: evaluation.rule.source,
        reason: null,
      }
      : evaluation.kind === "no_match"
      ? { kind: "no_match", rule: null, source: null, reason: "mitm_hook_denied" }
      : { kind: "no_rules", rule: null, source: null, reason: null };
  }
  const requestLine = request === null
    ? ""
    : request.kind === "matched"
    ? `\nrequest ${method!.toUpperCase()} ${
      path ?? "/"
    }: allowed by request rule ${request.rule} (${request.source})`
    : request.kind === "no_match"
    ? `\nrequest ${method!.toUpperCase()} ${
      path ?? "/"
    }: refused (mitm_hook_denied): the host has request rules and none matches`
    : `\nrequest ${method!.toUpperCase()} ${path ?? "/"}: the host has no request rules`;
  stdout(
    (flags.json === true
      ? JSON.stringify({
        ...policyHostJson(decision, port),
        ...(marking === undefined ? {} : { tls_rule: marking.pattern.text }),
        ...(request === null ? {} : { request_rule: request }),
      })
      : formatHostDecision(decision, port) + tlsLine + requestLine) + "\n",
  );
  return decision.decision === "allow" && request?.kind !== "no_match" ? 0 : 1;
}

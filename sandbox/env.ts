/**
 * The sandboxed command's environment: the launcher's own variables filtered
 * by the profile's `env` allow/deny globs, every proxy variable the caller
 * had removed, and (when the command gets the network) the proxy variables
 * of the common tools pointed at the bridge inside the sandbox.
 *
 * @module
 */
import type { EnvConfig } from "../profiles/types.ts";

/** The two loopback ports the bridge listens on inside the sandbox. */
export interface ProxyPorts {
  /** HTTP proxy port (CONNECT and absolute-form). */
  readonly httpPort: number;
  /** SOCKS5 port. */
  readonly socksPort: number;
}

/** The host the bridge listens on inside the sandbox's network namespace. */
export const BRIDGE_HOST = "127.0.0.1";

/**
 * Names the launcher always removes from the caller's environment before it
 * sets its own, so that no caller-supplied proxy or bypass list survives.
 * Matched case-insensitively.
 */
export const PROXY_ENV_NAMES: readonly string[] = Object.freeze([
  "http_proxy",
  "https_proxy",
  "all_proxy",
  "ftp_proxy",
  "rsync_proxy",
  "no_proxy",
  "npm_config_proxy",
  "npm_config_https_proxy",
  "npm_config_noproxy",
  "yarn_http_proxy",
  "yarn_https_proxy",
  "pip_proxy",
  "cargo_http_proxy",
  "node_use_env_proxy",
  "global_agent_http_proxy",
  "global_agent_https_proxy",
  "global_agent_no_proxy",
]);

/**
 * Loopback, which the proxy variables leave alone: inside the sandbox it is
 * the sandbox's own (servers the command starts), never the host's. Plain
 * names and addresses for the clients that only compare strings (Python,
 * npm), and the CIDR for those that read it (curl, Go).
 */
export const LOOPBACK_NO_PROXY = "localhost,.localhost,127.0.0.1,127.0.0.0/8,::1";

/** The same for Java's `http.nonProxyHosts` and `socksNonProxyHosts`. */
const JAVA_NON_PROXY_HOSTS = "localhost|*.localhost|127.*|[::1]";

/**
 * The proxy variables for a command whose only way out is the bridge on
 * `127.0.0.1`. `NO_PROXY` names loopback only ({@linkcode LOOPBACK_NO_PROXY}):
 * the command's own servers are reached directly, everything else goes
 * through the proxy.
 *
 * @example
 * ```ts
 * const env = proxyEnv({ httpPort: 3128, socksPort: 1080 });
 * env.HTTPS_PROXY; // "http://127.0.0.1:3128"
 * env.ALL_PROXY; // "socks5h://127.0.0.1:1080"
 * ```
 */
export function proxyEnv(ports: ProxyPorts): Record<string, string> {
  const http = `http://${BRIDGE_HOST}:${ports.httpPort}`;
  const socks = `socks5h://${BRIDGE_HOST}:${ports.socksPort}`;
  const env: Record<string, string> = {
    HTTP_PROXY: http,
    HTTPS_PROXY: http,
    ALL_PROXY: socks,
    FTP_PROXY: http,
    NO_PROXY: LOOPBACK_NO_PROXY,
    http_proxy: http,
    https_proxy: http,
    all_proxy: socks,
    ftp_proxy: http,
    no_proxy: LOOPBACK_NO_PROXY,
    RSYNC_PROXY: `${BRIDGE_HOST}:${ports.httpPort}`,
    npm_config_proxy: http,
    npm_config_https_proxy: http,
    npm_config_noproxy: LOOPBACK_NO_PROXY,
    YARN_HTTP_PROXY: http,
    YARN_HTTPS_PROXY: http,
    PIP_PROXY: http,
    CARGO_HTTP_PROXY: http,
    NODE_USE_ENV_PROXY: "1",
    GLOBAL_AGENT_HTTP_PROXY: http,
    GLOBAL_AGENT_HTTPS_PROXY: http,
    GLOBAL_AGENT_NO_PROXY: LOOPBACK_NO_PROXY,
    JAVA_TOOL_OPTIONS: [
      `-Dhttp.proxyHost=${BRIDGE_HOST}`,
      `-Dhttp.proxyPort=${ports.httpPort}`,
      `-Dhttps.proxyHost=${BRIDGE_HOST}`,
      `-Dhttps.proxyPort=${ports.httpPort}`,
      `-Dhttp.nonProxyHosts=${JAVA_NON_PROXY_HOSTS}`,
      `-DsocksProxyHost=${BRIDGE_HOST}`,
      `-DsocksProxyPort=${ports.socksPort}`,
      `-DsocksNonProxyHosts=${JAVA_NON_PROXY_HOSTS}`,
    ].join(" "),
  };
  return env;
}

/**
 * CI runner credentials that never reach the command unless the profile's
 * `env.allow` names one exactly (a glob such as `*` or `ACTIONS_*` is not
 * enough): with them a command could poison the Actions cache for later
 * jobs, mint OIDC tokens for the workflow's cloud roles, or talk to the
 * runner's own services. Matched by exact name, and by the prefixes below.
 */
export const RUNNER_CREDENTIAL_NAMES: readonly string[] = Object.freeze([
  "ACTIONS_RUNTIME_TOKEN",
  "ACTIONS_RUNTIME_URL",
  "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
  "ACTIONS_ID_TOKEN_REQUEST_URL",
  "ACTIONS_CACHE_URL",
  "ACTIONS_CACHE_SERVICE_V2",
  "ACTIONS_RESULTS_URL",
  "ACTIONS_ORCHESTRATION_ID",
  "SYSTEM_ACCESSTOKEN",
  "CI_JOB_TOKEN",
]);

/** Name prefixes treated like {@linkcode RUNNER_CREDENTIAL_NAMES}. */
export const RUNNER_CREDENTIAL_PREFIXES: readonly string[] = Object.freeze([
  "ACTIONS_ID_TOKEN_REQUEST_",
  "ACTIONS_RUNTIME_",
  "ACTIONS_CACHE_",
  "ACTIONS_RESULTS_",
]);

/** Whether `name` is a CI runner credential (see {@linkcode RUNNER_CREDENTIAL_NAMES}). */
export function isRunnerCredential(name: string): boolean {
  return RUNNER_CREDENTIAL_NAMES.includes(name) ||
    RUNNER_CREDENTIAL_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/** Options for {@linkcode buildChildEnv}. */
export interface BuildChildEnvOptions {
  /** The profile's allow/deny lists. */
  readonly rules: EnvConfig;
  /** Bridge ports, or null when the command gets no network. */
  readonly ports: ProxyPorts | null;
  /** Variables added last (e.g. the MITM CA trust variables); they win over everything. */
  readonly extraEnv?: Readonly<Record<string, string>>;
}

/**
 * The complete environment of the sandboxed command: `launcherEnv` filtered
 * by the profile, caller proxy variables removed, proxy variables added,
 * `extraEnv` last. `git` gets `http.proxy` through `GIT_CONFIG_COUNT`,
 * appended after any entries the caller already had.
 *
 * @example
 * ```ts
 * const env = buildChildEnv({ PATH: "/usr/bin", HTTP_PROXY: "http://corp:8080" }, {
 *   rules: { allow: null, deny: [] },
 *   ports: { httpPort: 3128, socksPort: 1080 },
 * });
 * env.HTTP_PROXY; // "http://127.0.0.1:3128"
 * ```
 */
export function buildChildEnv(
  launcherEnv: Readonly<Record<string, string>>,
  options: BuildChildEnvOptions,
): Record<string, string> {
  const env = filterEnv(launcherEnv, options.rules);
  const namedAllow = new Set(options.rules.allow ?? []);
  for (const name of Object.keys(env)) {
    if (isRunnerCredential(name) && !namedAllow.has(name)) delete env[name];
  }
  const proxyNames = new Set(PROXY_ENV_NAMES);
  for (const name of Object.keys(env)) {
    if (proxyNames.has(name.toLowerCase())) delete env[name];
  }
  if (options.ports !== null) {
    const added = proxyEnv(options.ports);
    const javaOptions = env.JAVA_TOOL_OPTIONS;
    Object.assign(env, added);
    if (javaOptions !== undefined && javaOptions !== "") {
      env.JAVA_TOOL_OPTIONS = `${javaOptions} ${added.JAVA_TOOL_OPTIONS}`;
    }
    addGitConfig(env, "http.proxy", added.HTTP_PROXY);
  }
  Object.assign(env, options.extraEnv ?? {});
  return env;
}

/**
 * Keeps the variables the profile lets through: when `rules.allow` is set,
 * only names matching one of its globs; names matching a `rules.deny` glob
 * never (deny beats allow). Globs use `*` as the only wildcard and match
 * the whole name, case-sensitively.
 *
 * @example
 * ```ts
 * filterEnv({ AWS_SECRET: "x", PATH: "/bin" }, { allow: null, deny: ["AWS_*"] }); // { PATH: "/bin" }
 * ```
 */
export function filterEnv(
  env: Readonly<Record<string, string>>,
  rules: EnvConfig,
): Record<string, string> {
  const allow = rules.allow === null ? null : rules.allow.map(globToRegExp);
  const deny = rules.deny.map(globToRegExp);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (allow !== null && !allow.some((re) => re.test(name))) continue;
    if (deny.some((re) => re.test(name))) continue;
    out[name] = value;
  }
  return out;
}

function globToRegExp(glob: string): RegExp {
  const body = glob.split("*").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(
    ".*",
  );
  return new RegExp(`^${body}$`);
}

function addGitConfig(env: Record<string, string>, key: string, value: string): void {
  const count = Number.parseInt(env.GIT_CONFIG_COUNT ?? "0", 10);
  const index = Number.isSafeInteger(count) && count >= 0 ? count : 0;
  env[`GIT_CONFIG_KEY_${index}`] = key;
  env[`GIT_CONFIG_VALUE_${index}`] = value;
  env.GIT_CONFIG_COUNT = String(index + 1);
}

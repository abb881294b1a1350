/**
 * `loadEffectiveConfig()`: the one function every command calls to get the
 * merged configuration it works from (defaults, managed requirements, the
 * user file, each `--config FILE`, the chosen profile, presets, flags).
 *
 * @module
 */
import type { SharedValues } from "../cli/args.ts";
import { ConfigError, type ConfigProblem } from "../cli/errors.ts";
import { DEFAULTS } from "./defaults.ts";
import { isPresetName, PRESETS } from "./presets.ts";
import { checkDomainPattern } from "./_pattern.ts";
import type {
  DomainRule,
  EffectiveConfig,
  NetworkMode,
  RuleSource,
  UnixSocketRule,
} from "./types.ts";

/** Options for {@linkcode loadEffectiveConfig}. */
export interface LoadEffectiveConfigOptions {
  /** Directory relative `--config` paths are resolved against (default: `Deno.cwd()`). */
  cwd?: string;
  /** Environment to read `HOME`, `XDG_CONFIG_HOME` and `SANDBOX_MANAGED_CONFIG` from (default: the process's). */
  env?: Record<string, string>;
}

/**
 * Loads and merges the configuration for one command: defaults, then flags.
 * Throws a {@linkcode ConfigError} listing every problem found.
 *
 * @example
 * ```ts
 * const config = await loadEffectiveConfig({ allow: ["registry.example"], mode: "limited" });
 * config.network.domains; // [{ pattern: "registry.example", action: "allow", source: "flag:--allow" }]
 * ```
 */
export function loadEffectiveConfig(
  flags: SharedValues,
  _options: LoadEffectiveConfigOptions = {},
): Promise<EffectiveConfig> {
  try {
    const problems: ConfigProblem[] = [];
    const draft = newDraft();
    for (const file of flags.config ?? []) {
      // File loading lands next behind this same signature; until then refuse rather than ignore.
      problems.push({
        file,
        keyPath: "",
        message: "Config files are not supported yet: use flags",
      });
    }
    if (flags.profile !== undefined) {
      problems.push({
        file: "--profile",
        keyPath: "",
        message: `Unknown profile "${flags.profile}": no config file defines profiles yet`,
      });
    }
    applyFlags(draft, flags, problems);
    if (problems.length > 0) return Promise.reject(new ConfigError(problems));
    return Promise.resolve(finish(draft));
  } catch (error) {
    return Promise.reject(error);
  }
}

/** The merge in progress: plain data built up layer by layer, frozen by {@linkcode finish}. */
interface Draft {
  profileName: string | null;
  network: {
    enabled: boolean;
    mode: NetworkMode;
    allowLocalBinding: boolean;
    mitm: boolean;
    mitmCa: { cert: string; key: string } | null;
    dangerouslyAllowAllUnixSockets: boolean;
    dangerouslyAllowNonLoopbackProxy: boolean;
    proxyUrl: string | null;
    socksUrl: string | null;
    enableSocks5: boolean;
    ask: boolean;
    domains: DomainRule[];
    unixSockets: UnixSocketRule[];
    managedAllowedDomainsOnly: boolean;
  };
  files: string[];
  sources: Record<string, RuleSource>;
  notices: string[];
}

function newDraft(): Draft {
  const d = DEFAULTS.network;
  return {
    profileName: null,
    network: {
      enabled: d.enabled,
      mode: d.mode,
      allowLocalBinding: d.allowLocalBinding,
      mitm: d.mitm,
      mitmCa: null,
      dangerouslyAllowAllUnixSockets: d.dangerouslyAllowAllUnixSockets,
      dangerouslyAllowNonLoopbackProxy: d.dangerouslyAllowNonLoopbackProxy,
      proxyUrl: d.proxyUrl,
      socksUrl: d.socksUrl,
      enableSocks5: d.enableSocks5,
      ask: d.ask,
      domains: [],
      unixSockets: [],
      managedAllowedDomainsOnly: false,
    },
    files: [],
    sources: {},
    notices: [],
  };
}

function applyFlags(draft: Draft, flags: SharedValues, problems: ConfigProblem[]): void {
  const net = draft.network;
  for (const name of flags.preset ?? []) {
    if (!isPresetName(name)) {
      problems.push({
        file: "--preset",
        keyPath: "",
        message: `Unknown preset "${name}": expected one of ${
          Object.keys(PRESETS).map((p) => `"${p}"`).join(", ")
        }`,
      });
      continue;
    }
    for (const pattern of PRESETS[name].allow) {
      net.domains.push({ pattern, action: "allow", source: `preset:${name}` });
    }
  }
  for (const [flag, action] of [["allow", "allow"], ["deny", "deny"]] as const) {
    for (const pattern of flags[flag] ?? []) {
      const error = checkDomainPattern(pattern, action);
      if (error !== null) {
        problems.push({
          file: `--${flag}`,
          keyPath: "",
          message: `Invalid pattern "${pattern}": ${error}`,
        });
        continue;
      }
      net.domains.push({ pattern, action, source: `flag:--${flag}` });
    }
  }
  if (flags.mode !== undefined) {
    if (flags.mode === "full" || flags.mode === "limited") {
      net.mode = flags.mode;
      draft.sources["network.mode"] = "flag:--mode";
    } else {
      problems.push({
        file: "--mode",
        keyPath: "",
        message: `Invalid mode "${flags.mode}": expected "full" or "limited"`,
      });
    }
  }
  if (flags.mitm === true) {
    net.mitm = true;
    draft.sources["network.mitm"] = "flag:--mitm";
  }
  if (flags["allow-local-binding"] === true) {
    net.allowLocalBinding = true;
    draft.sources["network.allowLocalBinding"] = "flag:--allow-local-binding";
  }
  for (const path of flags["allow-unix-socket"] ?? []) {
    if (!path.startsWith("/")) {
      problems.push({
        file: "--allow-unix-socket",
        keyPath: "",
        message:
          `Invalid socket path "${path}": expected an absolute path such as "/run/user/1000/bus"`,
      });
      continue;
    }
    net.unixSockets.push({ path, action: "allow", source: "flag:--allow-unix-socket" });
  }
}

function finish(draft: Draft): EffectiveConfig {
  const n = draft.network;
  return deepFreeze({
    profileName: draft.profileName,
    network: {
      enabled: n.enabled,
      mode: n.mode,
      allowLocalBinding: n.allowLocalBinding,
      mitm: n.mitm,
      mitmCa: n.mitmCa,
      dangerouslyAllowAllUnixSockets: n.dangerouslyAllowAllUnixSockets,
      dangerouslyAllowNonLoopbackProxy: n.dangerouslyAllowNonLoopbackProxy,
      proxyUrl: n.proxyUrl,
      socksUrl: n.socksUrl,
      enableSocks5: n.enableSocks5,
      domains: n.domains,
      unixSockets: n.unixSockets,
      managedAllowedDomainsOnly: n.managedAllowedDomainsOnly,
      ask: n.ask,
    },
    filesystem: {
      writable: [...DEFAULTS.filesystem.writable],
      denyRead: [...DEFAULTS.filesystem.denyRead],
    },
    env: { allow: DEFAULTS.env.allow, deny: [...DEFAULTS.env.deny] },
    execpolicy: null,
    files: draft.files,
    sources: draft.sources,
    notices: draft.notices,
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

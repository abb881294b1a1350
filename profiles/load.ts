/**
 * `loadEffectiveConfig()`: the one function every command calls to get the
 * merged configuration it works from.
 *
 * Search order (lowest to highest precedence; see the README's `profile` section):
 *
 * 1. defaults ({@linkcode DEFAULTS});
 * 2. the managed requirements file: `$SANDBOX_MANAGED_CONFIG`, else
 *    `/etc/sandbox/requirements.toml` (skipped when absent) — its values are
 *    a floor: later layers may only make them stricter;
 * 3. the user file: `$XDG_CONFIG_HOME/sandbox/config.toml`, else
 *    `~/.config/sandbox/config.toml` (skipped when absent);
 * 4. each `--config FILE`, in order (later wins);
 * 5. flags (`--allow`, `--deny`, `--preset`, `--mode`, …).
 *
 * Nothing is read from the working directory: the sandboxed command can
 * write there, and a file it wrote must not widen its own policy next run.
 *
 * @module
 */
import type { ConfigFlags } from "./flags.ts";
import { ConfigError, type ConfigProblem } from "../errors.ts";
import { DEFAULTS } from "./defaults.ts";
import { discoverPresetHosts } from "./preset_hosts.ts";
import { isPresetName, type PresetName, PRESETS } from "./presets.ts";
import { checkDomainPattern } from "./_pattern.ts";
import { READ_METHODS } from "../policy/request_rules.ts";
import type { RequestRule } from "../policy/types.ts";
import { type KeyLines, parseTomlText, splitDottedKey } from "./toml.ts";
import {
  checkExecPolicyExamples,
  codexRulesToExecRules,
  parseCodexRules,
  RulesFileError,
} from "../execpolicy/mod.ts";
import { builtInEntries, isBuiltInProfileName } from "./builtin_profiles.ts";
import { compileCodexFilesystem } from "./codex_fs.ts";
import {
  type ApplicationNetwork,
  type ConfigKind,
  type FsEntry,
  hasGlob,
  type ManagedConfigFile,
  type NetworkLayer,
  normalizePattern,
  type ProfileLayer,
  type UserConfigFile,
  validateConfig,
  type ValidationResult,
} from "./validate.ts";
import type {
  DomainRule,
  EffectiveConfig,
  ExecDecision,
  ExecRule,
  NetworkMode,
  RuleSource,
  SecretConfig,
  UnixSocketRule,
  WorkspaceConfig,
} from "./types.ts";

/** Options for {@linkcode loadEffectiveConfig}. */
export interface LoadEffectiveConfigOptions {
  /** Directory relative `--config` paths are resolved against (default: `Deno.cwd()`). */
  cwd?: string;
  /** Environment to read `HOME`, `XDG_CONFIG_HOME` and `SANDBOX_MANAGED_CONFIG` from (default: the process's). */
  env?: Record<string, string>;
}

/** The system-wide managed requirements file, unless `SANDBOX_MANAGED_CONFIG` names another. */
export const SYSTEM_MANAGED_CONFIG = "/etc/sandbox/requirements.toml";

/** Where the config files are looked for, given an environment. */
export interface ConfigLocations {
  /** The managed requirements file, and whether it must exist (it must when named by the env variable). */
  readonly managed: { readonly path: string; readonly required: boolean };
  /** The user config file, or null when neither `XDG_CONFIG_HOME` nor `HOME` is set. */
  readonly user: string | null;
}

/**
 * Where `loadEffectiveConfig()` looks for the managed and user files.
 *
 * @example
 * ```ts
 * configLocations({ HOME: "/home/a" }).user; // "/home/a/.config/sandbox/config.toml"
 * ```
 */
export function configLocations(env: Record<string, string>): ConfigLocations {
  const override = env.SANDBOX_MANAGED_CONFIG;
  const managed = override !== undefined && override !== ""
    ? { path: override, required: true }
    : { path: SYSTEM_MANAGED_CONFIG, required: false };
  const xdg = env.XDG_CONFIG_HOME;
  const home = env.HOME;
  const user = xdg !== undefined && xdg.startsWith("/")
    ? `${xdg}/sandbox/config.toml`
    : home !== undefined && home !== ""
    ? `${home}/.config/sandbox/config.toml`
    : null;
  return { managed, user };
}

/**
 * Loads and merges the configuration for one command. Throws a
 * {@linkcode ConfigError} listing every problem found in every file and flag.
 *
 * @example
 * ```ts
 * const config = await loadEffectiveConfig({ allow: ["registry.example"], mode: "limited" });
 * config.network.domains; // [..., { pattern: "registry.example", action: "allow", source: "flag:--allow" }]
 * ```
 */
export async function loadEffectiveConfig(
  flags: ConfigFlags,
  options: LoadEffectiveConfigOptions = {},
): Promise<EffectiveConfig> {
  const env = options.env ?? Deno.env.toObject();
  const cwd = options.cwd ?? Deno.cwd();
  const problems: ConfigProblem[] = [];
  const lines = new Map<string, KeyLines>();
  const locations = configLocations(env);

  const managed = await readConfigFile(locations.managed.path, "managed", {
    required: locations.managed.required,
    problems,
    lines,
  }) as ManagedConfigFile | null;
  const userLayers: { file: UserConfigFile; source: RuleSource }[] = [];
  if (locations.user !== null) {
    const user = await readConfigFile(locations.user, "user", { required: false, problems, lines });
    if (user !== null) {
      userLayers.push({ file: user as UserConfigFile, source: `user:${locations.user}` });
    }
  }
  for (const given of flags.config ?? []) {
    const path = given.startsWith("/") ? given : `${cwd.replace(/\/$/, "")}/${given}`;
    const file = await readConfigFile(path, "user", { required: true, problems, lines });
    if (file !== null) userLayers.push({ file: file as UserConfigFile, source: `config:${path}` });
  }
  if (managed !== null && Object.keys(managed.profiles).length > 0) {
    // Profiles defined by the administrator come first and cannot be redefined by a user file.
    for (const { file } of userLayers) {
      for (const name of Object.keys(file.profiles)) {
        if (!Object.hasOwn(managed.profiles, name)) continue;
        problems.push({
          file: file.file,
          keyPath: `permissions.${name}`,
          message:
            `Profile "${name}" is defined by the managed requirements (${managed.file}) and cannot be redefined: rename yours, or extend it (extends = "${name}")`,
        });
      }
    }
    userLayers.unshift({ file: managedProfilesLayer(managed), source: `managed:${managed.file}` });
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const draft = newDraft();
  if (managed !== null) applyManaged(draft, managed);
  for (const { file, source } of userLayers) {
    if (source.startsWith("managed:")) continue; // the managed file's profiles: recorded by applyManaged
    draft.files.push(file.file);
    draft.notices.push(...file.notices);
  }
  const profileName = selectProfile(userLayers, flags.profile, problems, managed);
  if (profileName !== null) {
    draft.profileName = profileName;
    const resolved = resolveProfileLayers(profileName, userLayers, problems);
    for (const { layer, source } of resolved.layers) {
      applyProfileLayer(draft, layer, source, { cwd, problems });
    }
    applyCodexFilesystem(draft, profileName, resolved, { userLayers, problems, env });
  }
  if (managed !== null) checkAllowedProfile(draft, managed, problems);
  for (const { file, source } of userLayers) {
    applyExecLayer(draft, file, source);
    if (file.application !== null) applyApplicationNetwork(draft, file.application, source, false);
  }
  applyFlags(draft, flags, problems);
  await applyRulesFiles(draft, userLayers, flags.rules ?? [], { cwd, problems });
  await addDiscoveredPresetHosts(draft, env, cwd);
  await bindSecretsToRegistry(draft, env, cwd);
  if (managed !== null) enforceManaged(draft, managed);
  expandHome(draft, env, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  const config = finish(draft);
  // Pattern grammar and match/not_match examples belong to the execpolicy engine: its one call site.
  if (config.execpolicy !== null) {
    const found = checkExecPolicyExamples(config.execpolicy);
    if (found.length > 0) throw new ConfigError(found.map((p) => withLine(p, lines)));
  }
  return config;
}

/** The managed file's profiles as a layer the profile resolution reads like a user file's. */
function managedProfilesLayer(managed: ManagedConfigFile): UserConfigFile {
  return {
    kind: "user",
    file: managed.file,
    defaultPermissions: null,
    profiles: managed.profiles,
    execpolicy: [],
    execpolicyDefault: null,
    classic: { mode: null, workspaceWrite: {} },
    application: null,
    notices: [],
  };
}

/** Options for {@linkcode readConfigFile}. */
export interface ReadConfigFileOptions {
  /** A missing file is a problem (otherwise it is skipped and null returned). */
  required: boolean;
  /** Where problems are appended. */
  problems: ConfigProblem[];
  /** When given, receives the file's key-line index (for problems found after validation). */
  lines?: Map<string, KeyLines>;
}

/**
 * Reads, parses and validates one config file as `kind`. Returns null (and
 * appends problems) when it is invalid, or when it is absent and not required.
 */
export async function readConfigFile(
  path: string,
  kind: ConfigKind,
  options: ReadConfigFileOptions,
): Promise<UserConfigFile | ManagedConfigFile | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && !options.required) return null;
    const why = error instanceof Deno.errors.NotFound
      ? "the file does not exist"
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : error instanceof Error
      ? error.message
      : String(error);
    options.problems.push({ file: path, keyPath: "", message: `Cannot read config file: ${why}` });
    return null;
  }
  // `domains` tables come as entries, not objects: the validator reads them (large allowlists).
  const parsed = await parseTomlText(text, path, { entries: true });
  if (parsed.ok) options.lines?.set(path, parsed.lines);
  const result: ValidationResult = parsed.ok
    ? validateConfig(parsed.value, { file: path, kind, lines: parsed.lines })
    : { ok: false, problems: parsed.problems };
  if (!result.ok) {
    options.problems.push(...result.problems);
    return null;
  }
  return result.config;
}

/** Adds the line to a problem found after validation (e.g. by execpolicy), when its file was read here. */
function withLine(problem: ConfigProblem, lines: ReadonlyMap<string, KeyLines>): ConfigProblem {
  if (problem.line !== undefined) return problem;
  const index = lines.get(problem.file);
  const path = splitDottedKey(problem.keyPath.replace(/\[\d+\]$/, ""));
  const line = index !== undefined && path !== null ? index.lineOf(path) : undefined;
  return line === undefined ? problem : { ...problem, line };
}

type Scalar =
  | "enabled"
  | "mode"
  | "allowLocalBinding"
  | "mitm"
  | "mitmCa"
  | "dangerouslyAllowAllUnixSockets"
  | "strictUnixSockets"
  | "dangerouslyAllowNonLoopbackProxy"
  | "proxyUrl"
  | "socksUrl"
  | "enableSocks5"
  | "ask"
  | "capture"
  | "enforcement";

const SCALARS: readonly Scalar[] = [
  "enabled",
  "mode",
  "allowLocalBinding",
  "mitm",
  "mitmCa",
  "dangerouslyAllowAllUnixSockets",
  "strictUnixSockets",
  "dangerouslyAllowNonLoopbackProxy",
  "proxyUrl",
  "socksUrl",
  "enableSocks5",
  "ask",
  "capture",
  "enforcement",
];

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
    strictUnixSockets: boolean;
    dangerouslyAllowNonLoopbackProxy: boolean;
    proxyUrl: string | null;
    socksUrl: string | null;
    enableSocks5: boolean;
    ask: boolean;
    capture: boolean;
    enforcement: "enforce" | "report";
    domains: DomainRule[];
    unixSockets: UnixSocketRule[];
    managedAllowedDomainsOnly: boolean;
    requestRules: RequestRule[];
  };
  /** Rules that came from the managed file (they are never replaced by a later layer). */
  managedRules: Set<DomainRule | UnixSocketRule | ExecRule>;
  /**
   * The domain index that keeps merging linear: the non-managed rule in
   * `network.domains` for each normalized pattern, the normalized patterns
   * of managed rules, and the rules that a later layer replaced (dropped
   * from `network.domains` by {@linkcode liveDomains}). Read it through
   * {@linkcode domainIndexOf}: the first `pendingCount` rules of `pending`
   * (a first layer's rules, appended by {@linkcode addLayerDomainRules}) are
   * only indexed when a later rule needs the index.
   */
  domainIndex: {
    replaceable: Map<string, DomainRule>;
    managed: Set<string>;
    replaced: Set<DomainRule>;
    pending: readonly DomainRule[];
    pendingCount: number;
  };
  filesystem: {
    writable: string[];
    denyRead: string[];
    denyGlobs: string[];
    globScanMaxDepth: number | null;
    readOnly: string[];
    readRoots: string[] | null;
    workspace: { writable: boolean; roots: string[]; rules: WorkspaceConfig["rules"][number][] };
  };
  env: { allow: string[] | null; deny: string[] };
  execRules: ExecRule[];
  execDefault: ExecDecision | null;
  files: string[];
  sources: Record<string, RuleSource>;
  notices: string[];
  /** Secret bindings in merge order (a later one of the same name replaces the earlier). */
  secrets: (SecretConfig & { npmRegistry: boolean })[];
  /** Every use of a preset, for adding the hosts it takes from the machine afterwards. */
  presetUses: { name: PresetName; source: RuleSource; managed: boolean }[];
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
      strictUnixSockets: d.strictUnixSockets,
      dangerouslyAllowNonLoopbackProxy: d.dangerouslyAllowNonLoopbackProxy,
      proxyUrl: d.proxyUrl,
      socksUrl: d.socksUrl,
      enableSocks5: d.enableSocks5,
      ask: d.ask,
      capture: d.capture,
      enforcement: d.enforcement,
      domains: [],
      unixSockets: [],
      managedAllowedDomainsOnly: false,
      requestRules: [],
    },
    managedRules: new Set(),
    domainIndex: {
      replaceable: new Map(),
      managed: new Set(),
      replaced: new Set(),
      pending: [],
      pendingCount: 0,
    },
    filesystem: {
      writable: [...DEFAULTS.filesystem.writable],
      denyRead: [...DEFAULTS.filesystem.denyRead],
      denyGlobs: [],
      globScanMaxDepth: null,
      readOnly: [],
      readRoots: null,
      workspace: { writable: true, roots: [], rules: [] },
    },
    env: {
      allow: DEFAULTS.env.allow === null ? null : [...DEFAULTS.env.allow],
      deny: [...DEFAULTS.env.deny],
    },
    execRules: [],
    execDefault: null,
    files: [],
    sources: {},
    notices: [],
    presetUses: [],
    secrets: [],
  };
}

function applyManaged(draft: Draft, managed: ManagedConfigFile): void {
  const source = `managed:${managed.file}`;
  draft.files.push(managed.file);
  draft.notices.push(...managed.notices);
  applyNetworkLayer(draft, managed.network, source, { managed: true });
  if (managed.network.managedAllowedDomainsOnly === true) {
    draft.network.managedAllowedDomainsOnly = true;
    draft.sources["network.managedAllowedDomainsOnly"] = source;
  }
  for (const spec of managed.execpolicy) {
    const rule: ExecRule = { ...spec, source };
    draft.execRules.push(rule);
    draft.managedRules.add(rule);
  }
  if (managed.execpolicyDefault !== null) {
    draft.execDefault = managed.execpolicyDefault;
    draft.sources["execpolicy.default"] = source;
  }
  // Managed deny_read is a floor: added first, and nothing later removes a hidden path.
  for (const path of managed.denyRead) {
    const list = hasGlob(path) ? draft.filesystem.denyGlobs : draft.filesystem.denyRead;
    if (!list.includes(path)) list.push(path);
  }
  if (managed.application !== null) {
    applyApplicationNetwork(draft, managed.application, source, true);
  }
}

/**
 * `[application.network]` governs the Codex application's own connections
 * in Codex, not its commands'. Here its denies also bind the command (a host
 * the agent itself may not reach is no host for its commands either); its
 * allows are not added: they would widen what commands reach.
 */
function applyApplicationNetwork(
  draft: Draft,
  application: ApplicationNetwork,
  source: RuleSource,
  managed: boolean,
): void {
  if (!application.enabled) return;
  const allowed: string[] = [];
  for (const rule of application.domains) {
    if (rule.action === "deny") {
      addDomainRule(draft, { pattern: rule.pattern, action: "deny", source }, { managed });
    } else allowed.push(rule.pattern);
  }
  if (allowed.length > 0) {
    draft.notices.push(
      `${source}: [application.network] allows ${
        allowed.map((d) => `"${d}"`).join(", ")
      } for the Codex application itself; not added for commands (add them to a profile's network.domains to let commands reach them)`,
    );
  }
}

function applyNetworkLayer(
  draft: Draft,
  layer: NetworkLayer,
  source: RuleSource,
  options: { managed: boolean },
): void {
  const net = draft.network as Record<Scalar, unknown>;
  for (const key of SCALARS) {
    const value = layer[key];
    if (value === undefined) continue;
    net[key] = value;
    draft.sources[`network.${key}`] = source;
  }
  for (const name of layer.presets) {
    if (!isPresetName(name)) continue;
    const presetRuleSource = presetSource(name, source, options);
    draft.presetUses.push({ name, source: presetRuleSource, managed: options.managed });
    for (const pattern of PRESETS[name].allow) {
      addDomainRule(draft, { pattern, action: "allow", source: presetRuleSource }, options);
    }
    addPresetReadRules(draft, name, PRESETS[name].allow, presetRuleSource);
  }
  addLayerDomainRules(draft, layer.domains, source, options);
  for (const rule of layer.requestRules ?? []) addRequestRule(draft, { ...rule, source });
  for (const rule of layer.unixSockets) addSocketRule(draft, { ...rule, source }, options);
}

function addSecret(draft: Draft, secret: SecretConfig & { npmRegistry: boolean }): void {
  const at = draft.secrets.findIndex((s) => s.name === secret.name);
  if (at >= 0) draft.secrets[at] = secret;
  else draft.secrets.push(secret);
}

/** `--secret VAR=HOST[,HOST…]`. */
function applySecretFlags(draft: Draft, flags: ConfigFlags, problems: ConfigProblem[]): void {
  for (const text of flags.secret ?? []) {
    const eq = text.indexOf("=");
    const name = eq < 0 ? text : text.slice(0, eq);
    const hosts = eq < 0
      ? []
      : text.slice(eq + 1).split(",").map((h) => h.trim()).filter((h) => h !== "");
    const bad = !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || hosts.length === 0;
    const patternError = hosts.map((h) => checkDomainPattern(h, "allow")).find((e) => e !== null);
    if (bad || patternError) {
      problems.push({
        file: "--secret",
        keyPath: "",
        message: `Invalid --secret "${name}": ${
          patternError ?? "expected VAR=HOST[,HOST…], e.g. --secret NPM_TOKEN=registry.example"
        }`,
      });
      continue;
    }
    addSecret(draft, {
      name,
      fromEnv: null,
      fromFile: null,
      hosts,
      optional: false,
      npmRegistry: false,
      source: "flag:--secret",
    });
  }
}

/** Built-in npm bindings go to the registry this machine's npm is configured for. */
async function bindSecretsToRegistry(
  draft: Draft,
  env: Record<string, string>,
  cwd: string,
): Promise<void> {
  if (!draft.secrets.some((s) => s.npmRegistry)) return;
  const found = await discoverPresetHosts(["npm-registry"], {
    env,
    untrustedDirs: [cwd, ...draft.filesystem.writable],
  });
  draft.notices.push(...found.notes);
  const hosts = found.hosts["npm-registry"].map((h) => h.includes(":") ? `[${h}]` : h);
  draft.secrets = draft.secrets.map((s) =>
    s.npmRegistry ? { ...s, hosts: [...new Set([...s.hosts, ...hosts])] } : s
  ).filter((s) => s.hosts.length > 0);
}

/**
 * Adds a request rule; a later rule of the same name replaces the earlier one
 * in its place (Codex merges `[network.mitm.hooks]` tables by name).
 */
function addRequestRule(draft: Draft, rule: RequestRule): void {
  const rules = draft.network.requestRules;
  const at = rules.findIndex((r) => r.name === rule.name && r.host === rule.host);
  if (at >= 0) rules[at] = rule;
  else rules.push(rule);
}

/** A read-only preset: each exact host it allows gets a GET/HEAD/OPTIONS request rule. */
function addPresetReadRules(
  draft: Draft,
  name: PresetName,
  hosts: readonly string[],
  source: RuleSource,
): void {
  if (PRESETS[name].requests !== "read") return;
  for (const host of hosts) {
    if (host.includes("*")) continue;
    addRequestRule(draft, {
      name: `preset.${name}.${JSON.stringify(host)}`,
      host,
      methods: [...READ_METHODS],
      paths: ["/"],
      query: {},
      headers: {},
      stripHeaders: [],
      injectHeaders: [],
      source,
    });
  }
}

function presetSource(name: string, source: RuleSource, options: { managed: boolean }): RuleSource {
  return options.managed ? `preset:${name} (${source})` : `preset:${name}`;
}

/**
 * Adds the hosts that used presets take from the machine (the configured npm
 * registry, APT's archives). They never replace a rule already written for
 * the same pattern: a user's deny of the registry stays a deny.
 */
async function addDiscoveredPresetHosts(
  draft: Draft,
  env: Record<string, string>,
  cwd: string,
): Promise<void> {
  const sources = [...new Set(draft.presetUses.flatMap((use) => PRESETS[use.name].discover))];
  if (sources.length === 0) return;
  // npm is run outside the sandbox: never from a PATH entry a sandboxed command could write.
  const untrustedDirs = [cwd, ...draft.filesystem.writable];
  const found = await discoverPresetHosts(sources, { env, untrustedDirs });
  draft.notices.push(...found.notes);
  for (const use of draft.presetUses) {
    for (const source of PRESETS[use.name].discover) {
      for (const discovered of found.hosts[source]) {
        const host = discovered.includes(":") ? `[${discovered}]` : discovered;
        if (checkDomainPattern(host, "allow") !== null) {
          draft.notices.push(
            `Preset "${use.name}" skipped "${discovered}" from ${source}: not a host pattern`,
          );
          continue;
        }
        addPresetReadRules(draft, use.name, [host], use.source);
        const key = normalizePattern(host);
        const index = domainIndexOf(draft);
        if (index.replaceable.has(key) || index.managed.has(key)) continue;
        addDomainRule(draft, { pattern: host, action: "allow", source: use.source }, {
          managed: use.managed,
        });
      }
    }
  }
}

/**
 * Adds a rule; a non-managed rule replaces an earlier non-managed rule of
 * the same pattern (later wins, and takes the later place). One map lookup
 * per rule: the replaced rule is only marked here and dropped in one pass
 * by {@linkcode liveDomains}.
 */
function addDomainRule(draft: Draft, rule: DomainRule, options: { managed: boolean }): void {
  const key = normalizePattern(rule.pattern);
  const index = domainIndexOf(draft);
  if (options.managed) {
    index.managed.add(key);
  } else {
    // A replaced rule is replaced by one of the same pattern: the key stays present.
    const earlier = index.replaceable.get(key);
    if (earlier !== undefined) index.replaced.add(earlier);
    index.replaceable.set(key, rule);
  }
  draft.network.domains.push(rule);
  if (options.managed) draft.managedRules.add(rule);
}

/**
 * Adds the domain rules of one validated block (their normalized patterns
 * are distinct: validation dropped duplicates). When they are the first
 * rules and not managed, they cannot replace anything: they are appended
 * without touching the index, which {@linkcode domainIndexOf} builds from
 * them only if a later rule needs it (a single large allowlist never does).
 */
function addLayerDomainRules(
  draft: Draft,
  rules: NetworkLayer["domains"],
  source: RuleSource,
  options: { managed: boolean },
): void {
  const domains = draft.network.domains;
  if (options.managed || domains.length > 0 || draft.domainIndex.pendingCount > 0) {
    for (const rule of rules) {
      addDomainRule(draft, { pattern: rule.pattern, action: rule.action, source }, options);
    }
    return;
  }
  for (let i = 0; i < rules.length; i++) {
    domains.push({ pattern: rules[i].pattern, action: rules[i].action, source });
  }
  draft.domainIndex.pending = domains;
  draft.domainIndex.pendingCount = domains.length;
}

/** The domain index, with any pending first-layer rules indexed (see `Draft.domainIndex`). */
function domainIndexOf(draft: Draft): Draft["domainIndex"] {
  const index = draft.domainIndex;
  if (index.pendingCount > 0) {
    // Distinct keys, nothing before them: each is simply the replaceable rule of its key.
    for (let i = 0; i < index.pendingCount; i++) {
      const rule = index.pending[i];
      index.replaceable.set(normalizePattern(rule.pattern), rule);
    }
    index.pending = [];
    index.pendingCount = 0;
  }
  return index;
}

/** `network.domains` without the rules a later layer replaced (call once adding is over). */
function liveDomains(draft: Draft): DomainRule[] {
  const replaced = draft.domainIndex.replaced;
  if (replaced.size > 0) {
    draft.network.domains = draft.network.domains.filter((r) => !replaced.has(r));
    replaced.clear();
  }
  return draft.network.domains;
}

function addSocketRule(draft: Draft, rule: UnixSocketRule, options: { managed: boolean }): void {
  const list = draft.network.unixSockets;
  if (!options.managed) {
    const at = list.findIndex((r) => !draft.managedRules.has(r) && r.path === rule.path);
    if (at !== -1) list.splice(at, 1);
  }
  list.push(rule);
  if (options.managed) draft.managedRules.add(rule);
}

/**
 * The profile to use: `--profile`, else the last `default_permissions` of a
 * user file, else the managed `default_permissions`, else the classic
 * `sandbox_mode`'s built-in profile, else none.
 */
function selectProfile(
  layers: readonly { file: UserConfigFile; source: RuleSource }[],
  flag: string | undefined,
  problems: ConfigProblem[],
  managed: ManagedConfigFile | null,
): string | null {
  let chosen: { name: string; file: string; keyPath: string } | null = null;
  let classic: { mode: string; file: string; line?: number } | null = null;
  for (const { file } of layers) {
    if (file.defaultPermissions !== null) {
      chosen = { name: file.defaultPermissions, file: file.file, keyPath: "default_permissions" };
    }
    if (file.classic.mode !== null) {
      classic = { mode: file.classic.mode, file: file.file, line: file.classic.modeLine };
    }
  }
  if (flag !== undefined) chosen = { name: flag, file: "--profile", keyPath: "" };
  else if (chosen === null && managed?.defaultPermissions != null) {
    // The managed default applies when no user file picks a profile; as in Codex, a managed
    // profile choice puts profiles in force over the classic sandbox_mode.
    chosen = {
      name: managed.defaultPermissions,
      file: managed.file,
      keyPath: "default_permissions",
    };
  } else if (classic !== null) {
    if (chosen !== null) {
      // Codex uses sandbox_mode and ignores default_permissions when both are set: running the
      // profile would not be what Codex does, and ignoring it would drop what it denies.
      problems.push({
        file: classic.file,
        ...(classic.line === undefined ? {} : { line: classic.line }),
        keyPath: "sandbox_mode",
        message:
          `Both sandbox_mode = "${classic.mode}" and default_permissions = "${chosen.name}" (${chosen.file}) are set; Codex would use sandbox_mode and ignore the profile: remove one, or choose with --profile`,
      });
      return null;
    }
    const allowedModes = managed?.allowedSandboxModes ?? null;
    if (allowedModes !== null && !allowedModes.includes(classic.mode)) {
      problems.push({
        file: classic.file,
        ...(classic.line === undefined ? {} : { line: classic.line }),
        keyPath: "sandbox_mode",
        message: `sandbox_mode = "${classic.mode}" is not allowed by ${managed?.file}: use one of ${
          allowedModes.map((m) => `"${m}"`).join(", ")
        }`,
      });
      return null;
    }
    chosen = {
      name: CLASSIC_MODES[classic.mode],
      file: classic.file,
      keyPath: "sandbox_mode",
    };
  }
  if (chosen === null) return null;
  if (chosen.name === ":danger-full-access") {
    problems.push({
      file: chosen.file,
      keyPath: chosen.keyPath,
      message:
        `Profile ":danger-full-access" (no sandbox) is refused: sandbox always runs commands sandboxed; use ":workspace", or run the command without sandbox`,
    });
    return null;
  }
  if (isBuiltInProfileName(chosen.name)) return chosen.name;
  if (layers.some(({ file }) => Object.hasOwn(file.profiles, chosen.name))) return chosen.name;
  const available = [...new Set(layers.flatMap(({ file }) => Object.keys(file.profiles)))];
  const searched = layers.map(({ file }) => file.file);
  problems.push({
    file: chosen.file,
    keyPath: chosen.keyPath,
    message: `Unknown profile "${chosen.name}": ${
      available.length > 0
        ? `expected one of ${available.map((n) => `"${n}"`).join(", ")}`
        : `no [permissions.NAME] profile is defined in ${
          searched.length > 0
            ? searched.map((f) => `"${f}"`).join(", ")
            : "any config file (none was found)"
        }`
    }`,
  });
  return null;
}

/** The built-in profile each classic `sandbox_mode` stands for. */
const CLASSIC_MODES: Readonly<Record<string, string>> = {
  "read-only": ":read-only",
  "workspace-write": ":workspace",
  "danger-full-access": ":danger-full-access",
};

/** A profile's layers in order (parents first) and the built-in profile its chain ends in, if any. */
interface ResolvedProfile {
  readonly layers: { layer: ProfileLayer; source: RuleSource; file: string }[];
  readonly base: string | null;
}

/** The layers of `name` to apply in order: its `extends` parents first, then its own, file by file. */
function resolveProfileLayers(
  name: string,
  layers: readonly { file: UserConfigFile; source: RuleSource }[],
  problems: ConfigProblem[],
): ResolvedProfile {
  const out: { layer: ProfileLayer; source: RuleSource; file: string }[] = [];
  const seen: string[] = [];
  let base: string | null = null;
  const visit = (current: string, from: { file: string; keyPath: string } | null): void => {
    if (isBuiltInProfileName(current)) {
      if (current === ":danger-full-access") {
        problems.push({
          file: from?.file ?? "--profile",
          keyPath: from?.keyPath ?? "",
          message: `Profile "${
            seen[seen.length - 1]
          }" cannot extend ":danger-full-access" (no sandbox): sandbox always runs commands sandboxed; extend ":workspace" or ":read-only"`,
        });
        return;
      }
      base = current;
      return;
    }
    if (seen.includes(current)) {
      problems.push({
        file: from?.file ?? "--profile",
        keyPath: from?.keyPath ?? "",
        message: `Profile inheritance loops: ${
          [...seen, current].map((n) => `"${n}"`).join(" extends ")
        }`,
      });
      return;
    }
    const own = layers.filter(({ file }) => Object.hasOwn(file.profiles, current)).map((
      { file, source },
    ) => ({
      layer: file.profiles[current],
      source,
      file: file.file,
    }));
    if (own.length === 0) {
      problems.push({
        file: from?.file ?? "--profile",
        keyPath: from?.keyPath ?? "",
        message:
          `Unknown profile "${current}" in "extends": define [permissions.${current}] or extend ":workspace"`,
      });
      return;
    }
    seen.push(current);
    const withParent = own.filter((o) => o.layer.extends !== null);
    const last = withParent[withParent.length - 1];
    if (last !== undefined) {
      visit(last.layer.extends as string, {
        file: last.file,
        keyPath: `permissions.${current}.extends`,
      });
    }
    out.push(...own);
  };
  visit(name, null);
  return { layers: out, base };
}

function applyProfileLayer(
  draft: Draft,
  layer: ProfileLayer,
  source: RuleSource,
  options: { cwd: string; problems: ConfigProblem[] },
): void {
  options.problems.push(...layer.unsupported);
  for (const root of layer.workspaceRoots) {
    if (!root.enabled) continue;
    const path = root.path.startsWith("/") || root.path === "~" || root.path.startsWith("~/")
      ? root.path
      : `${options.cwd.replace(/\/$/, "")}/${root.path}`;
    if (!draft.filesystem.workspace.roots.includes(path)) {
      draft.filesystem.workspace.roots.push(path);
    }
  }
  if (layer.filesystem.globScanMaxDepth !== undefined) {
    draft.filesystem.globScanMaxDepth = layer.filesystem.globScanMaxDepth;
  }
  applyNetworkLayer(draft, layer.network, source, { managed: false });
  for (const secret of layer.secrets ?? []) addSecret(draft, { ...secret, source });
  for (const path of layer.filesystem.writable) {
    if (!draft.filesystem.writable.includes(path)) draft.filesystem.writable.push(path);
  }
  for (const path of layer.filesystem.denyRead) {
    if (!draft.filesystem.denyRead.includes(path)) draft.filesystem.denyRead.push(path);
  }
  if (layer.env.allow !== undefined) {
    draft.env.allow = [...new Set([...(draft.env.allow ?? []), ...layer.env.allow])];
    draft.sources["env.allow"] = source;
  }
  for (const glob of layer.env.deny) if (!draft.env.deny.includes(glob)) draft.env.deny.push(glob);
}

/**
 * Applies the Codex filesystem entries of the selected profile: the entries
 * of the built-in profile its chain ends in (if any), then each layer's,
 * a later entry replacing an earlier one with the same key (as Codex merges
 * `extends`). A profile with no Codex entry and no built-in parent keeps the
 * sandbox's own defaults (working dir writable, everything else read-only).
 * A classic `sandbox_mode = "workspace-write"` adds `writable_roots`, and its
 * `network_access` (or, for `:workspace`, `[sandbox_workspace_write]`'s) turns
 * the network on or off.
 */
function applyCodexFilesystem(
  draft: Draft,
  name: string,
  resolved: ResolvedProfile,
  options: {
    userLayers: readonly { file: UserConfigFile; source: RuleSource }[];
    problems: ConfigProblem[];
    env: Record<string, string>;
  },
): void {
  const base = isBuiltInProfileName(name) ? name : resolved.base;
  const merged = new Map<string, { entry: FsEntry; file: string }>();
  for (const entry of base === null ? [] : builtInEntries(base) ?? []) {
    merged.set(entry.id, { entry, file: `built-in profile ${base}` });
  }
  for (const { layer, file } of resolved.layers) {
    for (const entry of layer.filesystem.entries) {
      merged.delete(entry.id);
      merged.set(entry.id, { entry, file });
    }
  }
  const fileOf = new Map([...merged.values()].map(({ entry, file }) => [entry, file]));
  if (base !== null && name === base) {
    // A built-in profile selected directly (default_permissions, --profile or sandbox_mode).
    applyClassicWorkspaceWrite(draft, name, options.userLayers);
  }
  if (merged.size === 0) return;
  const fs = compileCodexFilesystem([...merged.values()].map((m) => m.entry), {
    profile: name,
    fileOf: (entry) => fileOf.get(entry) ?? name,
  });
  options.problems.push(...fs.problems);
  draft.notices.push(...fs.notices);
  const target = draft.filesystem;
  target.workspace.writable = fs.workspace.writable;
  target.workspace.rules.push(...fs.workspace.rules);
  const addAll = (list: string[], paths: readonly string[]) => {
    for (const path of paths) if (!list.includes(path)) list.push(path);
  };
  addAll(target.writable, fs.writable);
  addAll(target.denyRead, fs.denyRead);
  addAll(target.denyGlobs, fs.denyGlobs);
  addAll(target.readOnly, fs.readOnly);
  target.readRoots = fs.readRoots;
  // ":tmpdir" = "deny": /tmp is private anyway, but a TMPDIR elsewhere is the host's own dir.
  const tmpdir = options.env.TMPDIR;
  const deniesTmpdir = [...merged.values()].some(({ entry }) =>
    entry.target.kind === "special" && entry.target.name === ":tmpdir" &&
    entry.target.subpath === undefined && entry.access === "deny"
  );
  if (
    deniesTmpdir && tmpdir !== undefined && tmpdir.startsWith("/") && !/^\/tmp(\/|$)/.test(tmpdir)
  ) {
    addAll(target.denyRead, [tmpdir]);
  }
}

/** `[sandbox_workspace_write]` for a directly selected `:workspace` (or `sandbox_mode = "workspace-write"`). */
function applyClassicWorkspaceWrite(
  draft: Draft,
  name: string,
  layers: readonly { file: UserConfigFile; source: RuleSource }[],
): void {
  for (const { file, source } of layers) {
    const ww = file.classic.workspaceWrite;
    if (name === ":workspace" && file.classic.mode === "workspace-write") {
      for (const root of ww.writableRoots ?? []) {
        if (!draft.filesystem.writable.includes(root)) draft.filesystem.writable.push(root);
      }
    }
    if (name === ":workspace" && ww.networkAccess !== undefined) {
      draft.network.enabled = ww.networkAccess;
      draft.sources["network.enabled"] = source;
    }
  }
}

/** Managed `allowed_permissions`: the profile in use must be one of them. */
function checkAllowedProfile(
  draft: Draft,
  managed: ManagedConfigFile,
  problems: ConfigProblem[],
): void {
  const allowed = managed.allowedPermissions;
  if (allowed === null) return;
  // Without a selected profile the sandbox's defaults apply, which are Codex's ":workspace".
  const name = draft.profileName ?? ":workspace";
  if (allowed.includes(name)) return;
  problems.push({
    file: managed.file,
    keyPath: "allowed_permissions",
    message: `Profile "${name}" is not allowed by the managed requirements: select one of ${
      allowed.map((n) => `"${n}"`).join(", ")
    } (default_permissions or --profile)`,
  });
}

function applyExecLayer(draft: Draft, file: UserConfigFile, source: RuleSource): void {
  for (const spec of file.execpolicy) {
    const at = draft.execRules.findIndex((r) =>
      !draft.managedRules.has(r) && r.pattern === spec.pattern
    );
    if (at !== -1) draft.execRules.splice(at, 1);
    draft.execRules.push({ ...spec, source });
  }
  if (file.execpolicyDefault !== null) {
    draft.execDefault = file.execpolicyDefault;
    draft.sources["execpolicy.default"] = source;
  }
}

/**
 * Codex `.rules` files (`rules = [...]` in a user file, relative to it, then
 * `--rules FILE`, relative to the cwd) as execpolicy rules after the tables'
 * own; `allow` takes the network posture as merged so far (flags included).
 */
async function applyRulesFiles(
  draft: Draft,
  layers: readonly { file: UserConfigFile; source: RuleSource }[],
  fromFlags: readonly string[],
  options: { cwd: string; problems: ConfigProblem[] },
): Promise<void> {
  const files: { path: string; from: string }[] = [];
  for (const { file, source } of layers) {
    if (source.startsWith("managed:")) continue;
    const dir = file.file.slice(0, file.file.lastIndexOf("/")) || "/";
    for (const f of file.rulesFiles ?? []) {
      files.push({ path: f.startsWith("/") ? f : `${dir}/${f}`, from: `${file.file}: key rules` });
    }
  }
  for (const f of fromFlags) {
    files.push({
      path: f.startsWith("/") ? f : `${options.cwd.replace(/\/$/, "")}/${f}`,
      from: "--rules",
    });
  }
  for (const { path, from } of files) {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      options.problems.push({
        file: path,
        keyPath: "",
        message: `Cannot read the rules file (from ${from}): ${
          error instanceof Error ? error.message : String(error)
        }`,
      });
      continue;
    }
    try {
      const parsed = parseCodexRules(text, path);
      draft.execRules.push(
        ...codexRulesToExecRules(parsed, { file: path, networkEnabled: draft.network.enabled }),
      );
    } catch (error) {
      if (!(error instanceof RulesFileError)) throw error;
      for (const p of error.problems) {
        options.problems.push({ file: path, line: p.line, keyPath: "", message: p.message });
      }
    }
  }
}

function applyFlags(draft: Draft, flags: ConfigFlags, problems: ConfigProblem[]): void {
  const net = draft.network;
  applySecretFlags(draft, flags, problems);
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
    draft.presetUses.push({ name, source: `preset:${name}`, managed: false });
    for (const pattern of PRESETS[name].allow) {
      addDomainRule(draft, { pattern, action: "allow", source: `preset:${name}` }, {
        managed: false,
      });
    }
    addPresetReadRules(draft, name, PRESETS[name].allow, `preset:${name}`);
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
      addDomainRule(draft, { pattern, action, source: `flag:--${flag}` }, { managed: false });
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
  if (flags.capture === false) {
    net.capture = false;
    draft.sources["network.capture"] = "flag:--no-capture";
  }
  if (flags.report === true) {
    net.enforcement = "report";
    draft.sources["network.enforcement"] = "flag:--report";
  }
  if (flags.mitm === true) {
    net.mitm = true;
    draft.sources["network.mitm"] = "flag:--mitm";
  }
  if (flags["allow-local-binding"] === true) {
    net.allowLocalBinding = true;
    draft.sources["network.allowLocalBinding"] = "flag:--allow-local-binding";
  }
  for (const path of flags.writable ?? []) {
    if (!path.startsWith("/") && path !== "~" && !path.startsWith("~/")) {
      problems.push({
        file: "--writable",
        keyPath: "",
        message: `Invalid path "${path}": expected an absolute or "~/" path`,
      });
    } else if (!draft.filesystem.writable.includes(path)) {
      draft.filesystem.writable.push(path);
    }
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
    addSocketRule(draft, { path, action: "allow", source: "flag:--allow-unix-socket" }, {
      managed: false,
    });
  }
}

/**
 * How strict a managed scalar is: `floor` keys may only get stricter than the
 * managed value (`rank` orders them, higher is stricter); `pinned` keys keep
 * the managed value whatever later layers say.
 */
const MANAGED_RULES: Readonly<
  Record<Scalar, { kind: "floor"; rank: (v: unknown) => number } | { kind: "pinned" }>
> = {
  enabled: { kind: "floor", rank: (v) => (v === false ? 1 : 0) },
  mode: { kind: "floor", rank: (v) => (v === "limited" ? 1 : 0) },
  allowLocalBinding: { kind: "floor", rank: (v) => (v === false ? 1 : 0) },
  dangerouslyAllowAllUnixSockets: { kind: "floor", rank: (v) => (v === false ? 1 : 0) },
  strictUnixSockets: { kind: "floor", rank: (v) => (v === true ? 1 : 0) },
  dangerouslyAllowNonLoopbackProxy: { kind: "floor", rank: (v) => (v === false ? 1 : 0) },
  enableSocks5: { kind: "floor", rank: (v) => (v === false ? 1 : 0) },
  ask: { kind: "floor", rank: (v) => (v === false ? 1 : 0) },
  capture: { kind: "floor", rank: (v) => (v === false ? 1 : 0) },
  enforcement: { kind: "floor", rank: (v) => (v === "enforce" ? 1 : 0) },
  mitm: { kind: "pinned" },
  mitmCa: { kind: "pinned" },
  proxyUrl: { kind: "pinned" },
  socksUrl: { kind: "pinned" },
};

const EXEC_RANK: Readonly<Record<ExecDecision, number>> = { "allow-network": 0, allow: 1, deny: 2 };

function enforceManaged(draft: Draft, managed: ManagedConfigFile): void {
  const source = `managed:${managed.file}`;
  const net = draft.network as Record<Scalar, unknown>;
  for (const key of SCALARS) {
    const pinned = managed.network[key];
    if (pinned === undefined) continue;
    const rule = MANAGED_RULES[key];
    const current = net[key];
    const looser = rule.kind === "pinned"
      ? JSON.stringify(current) !== JSON.stringify(pinned)
      : rule.rank(current) < rule.rank(pinned);
    if (looser) {
      draft.notices.push(
        `Ignored ${draft.sources[`network.${key}`]} setting network.${key} = ${
          JSON.stringify(current)
        }: ${
          rule.kind === "pinned" ? "the managed value" : "it is looser than the managed value"
        } ${JSON.stringify(pinned)} from ${managed.file} applies`,
      );
      net[key] = pinned;
      draft.sources[`network.${key}`] = source;
    }
  }
  if (managed.network.managedAllowedDomainsOnly === true) {
    const dropped = liveDomains(draft).filter((r) =>
      r.action === "allow" && !draft.managedRules.has(r)
    );
    if (dropped.length > 0) {
      const gone = new Set(dropped);
      draft.network.domains = draft.network.domains.filter((r) => !gone.has(r));
      const shown = dropped.slice(0, 5).map((r) => `"${r.pattern}" (${r.source})`).join(", ");
      draft.notices.push(
        `Ignored ${dropped.length} allow rule(s) from outside the managed file because ${managed.file} sets managed_allowed_domains_only = true: ${shown}${
          dropped.length > 5 ? ", …" : ""
        }`,
      );
    }
  }
  // A managed "none" for a socket cannot be undone by a later allow.
  const blocked = new Set(
    draft.network.unixSockets.filter((r) => draft.managedRules.has(r) && r.action === "none").map((
      r,
    ) => r.path),
  );
  const reopened = draft.network.unixSockets.filter(
    (r) => !draft.managedRules.has(r) && r.action === "allow" && blocked.has(r.path),
  );
  if (reopened.length > 0) {
    draft.network.unixSockets = draft.network.unixSockets.filter((r) => !reopened.includes(r));
    for (const r of reopened) {
      draft.notices.push(
        `Ignored ${r.source} allowing unix socket "${r.path}": ${managed.file} sets it to "none"`,
      );
    }
  }
  if (managed.execpolicyDefault !== null && draft.execDefault !== null) {
    if (EXEC_RANK[draft.execDefault] < EXEC_RANK[managed.execpolicyDefault]) {
      draft.notices.push(
        `Ignored ${
          draft.sources["execpolicy.default"]
        } setting execpolicy_default = "${draft.execDefault}": it is looser than "${managed.execpolicyDefault}" from ${managed.file}`,
      );
      draft.execDefault = managed.execpolicyDefault;
      draft.sources["execpolicy.default"] = source;
    }
  }
}

function expandHome(draft: Draft, env: Record<string, string>, problems: ConfigProblem[]): void {
  const home = env.HOME;
  const expand = (path: string, keyPath: string): string => {
    if (path !== "~" && !path.startsWith("~/")) return path;
    if (home === undefined || !home.startsWith("/")) {
      problems.push({
        file: "HOME",
        keyPath,
        message: `Cannot expand "${path}": HOME is not set to an absolute path`,
      });
      return path;
    }
    return path === "~" ? home : `${home.replace(/\/$/, "")}${path.slice(1)}`;
  };
  // Paths are compared as strings later ("is this under /tmp?"), so `/tmp/a/..` or `//run` must
  // be written in their one canonical spelling first, or a check could be sidestepped.
  draft.filesystem.writable = draft.filesystem.writable.map((p) =>
    normalizeAbsolutePath(expand(p, "filesystem.writable"))
  );
  draft.filesystem.denyRead = draft.filesystem.denyRead.map((p) =>
    normalizeAbsolutePath(expand(p, "filesystem.deny_read"))
  );
  draft.filesystem.denyGlobs = draft.filesystem.denyGlobs.map((p) =>
    normalizeAbsolutePath(expand(p, "filesystem.deny_read"))
  );
  draft.filesystem.readOnly = draft.filesystem.readOnly.map((p) =>
    normalizeAbsolutePath(expand(p, "filesystem"))
  );
  if (draft.filesystem.readRoots !== null) {
    draft.filesystem.readRoots = draft.filesystem.readRoots.map((p) =>
      normalizeAbsolutePath(expand(p, "filesystem"))
    );
  }
  draft.filesystem.workspace.roots = draft.filesystem.workspace.roots.map((p) =>
    normalizeAbsolutePath(expand(p, "workspace_roots"))
  );
  draft.network.unixSockets = draft.network.unixSockets.map((rule) =>
    rule.path.startsWith("/") ? { ...rule, path: normalizeAbsolutePath(rule.path) } : rule
  );
  const ca = draft.network.mitmCa;
  if (ca !== null) {
    draft.network.mitmCa = {
      cert: expand(ca.cert, "network.mitm_ca.cert"),
      key: expand(ca.key, "network.mitm_ca.key"),
    };
  }
}

/**
 * `path` with `.`, `..` and repeated or trailing slashes resolved lexically
 * (`/tmp/a/../b//c/` -> `/tmp/b/c`). Relative paths are returned unchanged
 * (validation reports them).
 */
export function normalizeAbsolutePath(path: string): string {
  if (!path.startsWith("/")) return path;
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}

function finish(draft: Draft): EffectiveConfig {
  const n = draft.network;
  const hasExec = draft.execRules.length > 0 || draft.execDefault !== null;
  return deepFreeze({
    profileName: draft.profileName,
    network: {
      enabled: n.enabled,
      mode: n.mode,
      allowLocalBinding: n.allowLocalBinding,
      mitm: n.mitm,
      mitmCa: n.mitmCa,
      dangerouslyAllowAllUnixSockets: n.dangerouslyAllowAllUnixSockets,
      strictUnixSockets: n.strictUnixSockets,
      dangerouslyAllowNonLoopbackProxy: n.dangerouslyAllowNonLoopbackProxy,
      proxyUrl: n.proxyUrl,
      socksUrl: n.socksUrl,
      enableSocks5: n.enableSocks5,
      // Frozen here, one by one (the draft's own rule objects, which nothing changes after the
      // merge): deepFreeze then skips the (possibly 100,000-rule) list.
      domains: Object.freeze(freezeEach(liveDomains(draft))),
      unixSockets: n.unixSockets.map((r) => ({ ...r })),
      managedAllowedDomainsOnly: n.managedAllowedDomainsOnly,
      ask: n.ask,
      capture: n.capture,
      enforcement: n.enforcement,
      ...(n.requestRules.length > 0
        ? {
          requestRules: n.requestRules.map((r) => ({
            ...r,
            methods: [...r.methods],
            paths: [...r.paths],
            stripHeaders: [...r.stripHeaders],
            injectHeaders: r.injectHeaders.map((i) => ({ ...i })),
          })),
        }
        : {}),
    },
    ...(draft.secrets.length > 0
      ? {
        secrets: draft.secrets.map(({ npmRegistry: _, ...s }) => ({ ...s, hosts: [...s.hosts] })),
      }
      : {}),
    filesystem: draft.filesystem,
    env: draft.env,
    execpolicy: hasExec
      ? {
        default: draft.execDefault ?? DEFAULTS.execpolicyDefault,
        rules: draft.execRules.map((r) => ({ ...r })),
      }
      : null,
    files: draft.files,
    sources: draft.sources,
    notices: draft.notices,
  });
}

/** Freezes every element of `list` (in place; returns the list). */
function freezeEach<T>(list: T[]): T[] {
  for (let i = 0; i < list.length; i++) Object.freeze(list[i]);
  return list;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/**
 * Profiles: TOML config files in the shape of Codex's permissions profiles,
 * managed requirements, presets and flags, merged into the one
 * {@linkcode EffectiveConfig} every command works from.
 *
 * @example
 * ```ts
 * import { loadEffectiveConfig } from "./mod.ts";
 * const config = await loadEffectiveConfig({ config: ["ci.toml"], profile: "ci" });
 * for (const rule of config.network.domains) console.log(rule.action, rule.pattern, rule.source);
 * ```
 *
 * @module
 */
export {
  type ConfigLocations,
  configLocations,
  loadEffectiveConfig,
  type LoadEffectiveConfigOptions,
  readConfigFile,
  type ReadConfigFileOptions,
  SYSTEM_MANAGED_CONFIG,
} from "./load.ts";
export {
  CODEX_IGNORED_KEYS,
  CODEX_IGNORED_REQUIREMENT_KEYS,
  type ConfigFile,
  type ConfigKind,
  detectConfigKind,
  type ExecRuleSpec,
  type ManagedConfigFile,
  type NetworkLayer,
  normalizePattern,
  type ProfileLayer,
  type UserConfigFile,
  validateConfig,
  type ValidateConfigOptions,
  validateConfigText,
  type ValidationResult,
} from "./validate.ts";
export {
  formatKeyPath,
  indexKeyLines,
  type KeyLines,
  type ParsedToml,
  parseTomlText,
} from "./toml.ts";
export { DEFAULTS, type Defaults, type NetworkDefaults } from "./defaults.ts";
export { isPresetName, type Preset, type PresetName, PRESETS } from "./presets.ts";
export type {
  DomainRule,
  EffectiveConfig,
  EnvConfig,
  ExecDecision,
  ExecPolicyConfig,
  ExecRule,
  FilesystemConfig,
  NetworkConfig,
  NetworkMode,
  RuleSource,
  UnixSocketRule,
} from "./types.ts";

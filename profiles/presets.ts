/**
 * Named allowlists (`--preset NAME`, or `presets = [...]` in a profile).
 * Kept as data: each entry is checked by the pattern compiler in
 * `presets_test.ts`. The host names are allowlist entries only; nothing in
 * this project connects to them.
 *
 * @module
 */

import type { PresetHostSource } from "./preset_hosts.ts";

/** The names of the built-in presets. */
export type PresetName = "common-dependencies" | "python-ml";

/**
 * One preset: a sentence saying what it is for, its allow patterns, and the
 * sources on this machine it also takes hosts from when used (see
 * `preset_hosts.ts`: the configured npm registry, APT's archives).
 */
export interface Preset {
  /** What the preset is for. */
  readonly description: string;
  /** Domain patterns that the preset allows. */
  readonly allow: readonly string[];
  /** Machine configuration the preset also takes hosts from, when it is used. */
  readonly discover: readonly PresetHostSource[];
}

const GITHUB: readonly string[] = [
  "github.com",
  "api.github.com",
  "codeload.github.com",
  "raw.githubusercontent.com",
  "objects.githubusercontent.com",
  "release-assets.githubusercontent.com",
  "ghcr.io",
  "pkg-containers.githubusercontent.com",
];

const PYPI: readonly string[] = ["pypi.org", "files.pythonhosted.org"];

/**
 * The built-in presets, frozen.
 *
 * @example
 * ```ts
 * import { PRESETS } from "./presets.ts";
 * PRESETS["python-ml"].allow.includes("huggingface.co"); // true
 * ```
 */
export const PRESETS: Readonly<Record<PresetName, Preset>> = Object.freeze({
  "common-dependencies": Object.freeze({
    description:
      "Package registries and source hosts a build needs: the npm registry your npm is configured for, Yarn, PyPI, crates.io, the Go module proxy, Maven Central and Gradle, RubyGems, GitHub, and the package archives of APT's sources",
    // The npm registry and the APT archives are read from this machine's configuration when the
    // preset is used (a company mirror is the registry a build must reach, not a fixed host).
    discover: Object.freeze(["npm-registry", "apt-sources"] as const),
    allow: Object.freeze([
      // Yarn
      "registry.yarnpkg.com",
      "repo.yarnpkg.com",
      // Python
      ...PYPI,
      // Rust
      "crates.io",
      "static.crates.io",
      "index.crates.io",
      // Go
      "proxy.golang.org",
      "sum.golang.org",
      // Java
      "repo.maven.apache.org",
      "repo1.maven.org",
      "plugins.gradle.org",
      "plugins-artifacts.gradle.org",
      "services.gradle.org",
      // Ruby
      "rubygems.org",
      "index.rubygems.org",
      // GitHub and its content hosts
      ...GITHUB,
    ]),
  }),
  "python-ml": Object.freeze({
    description:
      "Python machine-learning work: PyPI, GitHub, Hugging Face and its CDN, PyTorch downloads",
    discover: Object.freeze([]),
    allow: Object.freeze([
      ...PYPI,
      ...GITHUB,
      "huggingface.co",
      "**.huggingface.co",
      "hf.co",
      "**.hf.co",
      "download.pytorch.org",
    ]),
  }),
});

/** Whether `name` is a built-in preset. */
export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}

/**
 * Named allowlists (`--preset NAME`, or `presets = [...]` in a profile).
 * Kept as data: each entry is checked by the pattern compiler in
 * `presets_test.ts`. The host names are allowlist entries only; nothing in
 * this project connects to them.
 *
 * @module
 */

/** The names of the built-in presets. */
export type PresetName = "common-dependencies" | "python-ml";

/** One preset: a sentence saying what it is for, and its allow patterns. */
export interface Preset {
  /** What the preset is for. */
  readonly description: string;
  /** Domain patterns that the preset allows. */
  readonly allow: readonly string[];
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
      "Package registries and source hosts a build needs: npm, Yarn, PyPI, crates.io, the Go module proxy, Maven Central and Gradle, RubyGems, GitHub, Debian and Ubuntu archives",
    allow: Object.freeze([
      // npm and Yarn
      "registry.npmjs.org",
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
      // Debian and Ubuntu package archives
      "deb.debian.org",
      "security.debian.org",
      "archive.ubuntu.com",
      "security.ubuntu.com",
      "ports.ubuntu.com",
    ]),
  }),
  "python-ml": Object.freeze({
    description:
      "Python machine-learning work: PyPI, GitHub, Hugging Face and its CDN, PyTorch downloads",
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

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
export type PresetName =
  | "common-dependencies"
  | "python-ml"
  | "npm-read"
  | "pypi-read"
  | "github-api-read";

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
  /** `"read"`: every exact host it allows (and discovers) gets a GET/HEAD/OPTIONS request rule. */
  readonly requests?: "read";
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

const COMMON_DEPENDENCY_DOMAINS: readonly string[] = [
  "alpinelinux.org",
  "anaconda.com",
  "apache.org",
  "apt.llvm.org",
  "archlinux.org",
  "azure.com",
  "bitbucket.org",
  "bower.io",
  "centos.org",
  "cocoapods.org",
  "continuum.io",
  "cpan.org",
  "crates.io",
  "docker.com",
  "docker.io",
  "dot.net",
  "dotnet.microsoft.com",
  "eclipse.org",
  "fedoraproject.org",
  "gcr.io",
  "ghcr.io",
  "github.com",
  "githubusercontent.com",
  "gitlab.com",
  "golang.org",
  "google.com",
  "goproxy.io",
  "gradle.org",
  "hashicorp.com",
  "haskell.org",
  "hex.pm",
  "java.com",
  "java.net",
  "jcenter.bintray.com",
  "json-schema.org",
  "json.schemastore.org",
  "k8s.io",
  "launchpad.net",
  "maven.org",
  "mcr.microsoft.com",
  "metacpan.org",
  "microsoft.com",
  "nodejs.org",
  "nuget.org",
  "oracle.com",
  "packagecloud.io",
  "packages.microsoft.com",
  "packagist.org",
  "pkg.go.dev",
  "ppa.launchpad.net",
  "pub.dev",
  "pypa.io",
  "pypi.org",
  "pypi.python.org",
  "pythonhosted.org",
  "quay.io",
  "ruby-lang.org",
  "rubyforge.org",
  "rubygems.org",
  "rubyonrails.org",
  "rustup.rs",
  "rvm.io",
  "sourceforge.net",
  "spring.io",
  "swift.org",
  "ubuntu.com",
  "visualstudio.com",
  "yarnpkg.com",
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
      "Package registries, language toolchains, container registries and source hosts a build needs (the reference tool's \"Common dependencies\" list: GitHub, PyPI, crates.io, Go, Maven and Gradle, RubyGems, NuGet, Docker, the Linux distributions' archives, …; each domain with its subdomains), plus the npm registry your npm is configured for and the package archives of APT's sources",
    // The npm registry and the APT archives are read from this machine's configuration when the
    // preset is used (a company mirror is the registry a build must reach, not a fixed host).
    discover: Object.freeze(["npm-registry", "apt-sources"] as const),
    // The reference tool's list (testdata/conformance/preset_common_dependencies.json, pinned by
    // presets_test.ts): each entry covers the domain and every subdomain, hence "**.".
    allow: Object.freeze(COMMON_DEPENDENCY_DOMAINS.map((domain) => `**.${domain}`)),
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
  "npm-read": Object.freeze({
    description:
      "Read-only access to the npm registry your npm is configured for: GET, HEAD and OPTIONS only (installs work; publish, audit and login are refused)",
    discover: Object.freeze(["npm-registry"] as const),
    allow: Object.freeze([]),
    requests: "read",
  }),
  "pypi-read": Object.freeze({
    description: "Read-only PyPI: GET, HEAD and OPTIONS to pypi.org and files.pythonhosted.org",
    discover: Object.freeze([]),
    allow: Object.freeze([...PYPI]),
    requests: "read",
  }),
  "github-api-read": Object.freeze({
    description: "Read-only GitHub REST API: GET, HEAD and OPTIONS to api.github.com",
    discover: Object.freeze([]),
    allow: Object.freeze(["api.github.com"]),
    requests: "read",
  }),
});

/** Whether `name` is a built-in preset. */
export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}

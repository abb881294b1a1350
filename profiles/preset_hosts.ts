/**
 * Hosts a preset takes from the machine instead of from a list written here:
 * the npm registry the user's npm is configured for, and the package
 * archives in APT's sources. A build should reach the registry and mirrors
 * it is actually set up to use (a company mirror, a regional archive), and
 * naming one fixed public registry in the code would be wrong for everyone
 * who uses another.
 *
 * Only configuration outside the working directory is read: a project's
 * `.npmrc` is written by the very code the sandbox runs, so reading it
 * would let that code widen its own allowlist on the next run.
 *
 * @module
 */

/** Where a preset's machine-dependent hosts come from. */
export type PresetHostSource = "npm-registry" | "apt-sources";

/** Options for {@linkcode discoverPresetHosts}. */
export interface DiscoverPresetHostsOptions {
  /** The launcher's environment (`HOME`, `npm_config_registry`, `PATH`). */
  env: Readonly<Record<string, string>>;
  /** Root of APT's configuration (tests point it elsewhere). Default `/etc/apt`. */
  aptDir?: string;
  /** Ask `npm config get registry` when neither the environment nor `~/.npmrc` says. Default true. */
  askNpm?: boolean;
  /**
   * Directories a sandboxed command can write (the working dir, writable
   * paths): `npm` (and the `node` it starts) is never taken from a `PATH`
   * entry under one of them, nor from a relative entry, since the launcher
   * runs it outside the sandbox.
   */
  untrustedDirs?: readonly string[];
}

/** What discovery found: hosts per source, and notes on what it could not find. */
export interface DiscoveredPresetHosts {
  /** Host names per source, sorted, without duplicates. */
  readonly hosts: Readonly<Record<PresetHostSource, readonly string[]>>;
  /** Sentences for `config.notices` when a source gave nothing. */
  readonly notes: readonly string[];
}

/**
 * Finds the hosts of each requested source.
 *
 * @example
 * ```ts
 * const found = await discoverPresetHosts(["npm-registry"], { env: Deno.env.toObject() });
 * console.log(found.hosts["npm-registry"]);
 * ```
 */
export async function discoverPresetHosts(
  sources: readonly PresetHostSource[],
  options: DiscoverPresetHostsOptions,
): Promise<DiscoveredPresetHosts> {
  const hosts: Record<PresetHostSource, string[]> = { "npm-registry": [], "apt-sources": [] };
  const notes: string[] = [];
  if (sources.includes("npm-registry")) {
    const registry = await npmRegistryHost(options);
    if (registry === null) {
      notes.push(
        'The npm registry is unknown (no npm_config_registry, no "registry=" in ~/.npmrc, no npm on PATH): the preset does not include it; add it with --allow',
      );
    } else {
      hosts["npm-registry"].push(registry);
    }
  }
  if (sources.includes("apt-sources")) {
    hosts["apt-sources"].push(...aptSourceHosts(options.aptDir ?? "/etc/apt"));
  }
  for (const list of Object.values(hosts)) list.splice(0, list.length, ...new Set(list.sort()));
  return { hosts, notes };
}

/** The host of a registry URL, or null when `text` is not an http(s) URL. */
export function registryUrlHost(text: string): string | null {
  try {
    const url = new URL(text.trim());
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return url.hostname.replace(/^\[|\]$/g, "").toLowerCase() || null;
  } catch {
    return null;
  }
}

async function npmRegistryHost(options: DiscoverPresetHostsOptions): Promise<string | null> {
  const env = options.env;
  for (const name of ["npm_config_registry", "NPM_CONFIG_REGISTRY"]) {
    const value = env[name];
    if (value !== undefined && value !== "") return registryUrlHost(value);
  }
  const home = env.HOME;
  if (home !== undefined && home !== "") {
    const fromRc = registryFromNpmrc(readTextOrNull(`${home}/.npmrc`));
    if (fromRc !== null) return registryUrlHost(fromRc);
  }
  if (options.askNpm === false) return null;
  return await askNpmForRegistry(env, options.untrustedDirs ?? []);
}

/** The `registry=` value of an npmrc text (the unscoped one), or null. */
export function registryFromNpmrc(text: string | null): string | null {
  if (text === null) return null;
  let found: string | null = null;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith("#") || line.startsWith(";")) continue;
    const match = /^registry\s*=\s*(.+)$/.exec(line);
    if (match !== null) found = match[1].trim().replace(/^"(.*)"$/, "$1");
  }
  return found;
}

async function askNpmForRegistry(
  env: Readonly<Record<string, string>>,
  untrustedDirs: readonly string[],
): Promise<string | null> {
  // Run from HOME so that no project .npmrc (written by sandboxed code) is consulted.
  const cwd = env.HOME !== undefined && env.HOME !== "" ? env.HOME : "/";
  const path = trustedPath(env.PATH ?? "", untrustedDirs);
  const npm = path.map((dir) => `${dir}/npm`).find(isExecutableFile);
  if (npm === undefined) return null;
  try {
    const output = await new Deno.Command(npm, {
      args: ["config", "get", "registry"],
      cwd,
      env: { ...env, PATH: path.join(":") },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      signal: AbortSignal.timeout(10_000),
    }).output();
    if (!output.success) return null;
    return registryUrlHost(new TextDecoder().decode(output.stdout));
  } catch {
    return null;
  }
}

/**
 * The entries of `path` that a sandboxed command cannot have written to:
 * absolute, and outside every directory in `untrustedDirs`.
 *
 * @example
 * ```ts
 * trustedPath("node_modules/.bin:/w/bin:/usr/bin", ["/w"]); // ["/usr/bin"]
 * ```
 */
export function trustedPath(path: string, untrustedDirs: readonly string[]): string[] {
  return path.split(":").filter((entry) =>
    entry.startsWith("/") &&
    !untrustedDirs.some((dir) =>
      dir === "/" || entry === dir || entry.startsWith(dir.endsWith("/") ? dir : `${dir}/`)
    )
  );
}

function isExecutableFile(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * Host names of the enabled `deb` sources in `aptDir`: `sources.list`,
 * `sources.list.d/*.list` (one-line form) and `sources.list.d/*.sources`
 * (deb822 form, honouring `Enabled: no`).
 */
export function aptSourceHosts(aptDir: string): string[] {
  const hosts: string[] = [];
  const files = [`${aptDir}/sources.list`];
  try {
    for (const entry of Deno.readDirSync(`${aptDir}/sources.list.d`)) {
      if (entry.name.endsWith(".list") || entry.name.endsWith(".sources")) {
        files.push(`${aptDir}/sources.list.d/${entry.name}`);
      }
    }
  } catch {
    // No sources.list.d: not a Debian-like system, or an unusual one.
  }
  for (const file of files.sort()) {
    const text = readTextOrNull(file);
    if (text === null) continue;
    const uris = file.endsWith(".sources") ? deb822Uris(text) : oneLineUris(text);
    for (const uri of uris) {
      const host = registryUrlHost(uri);
      if (host !== null) hosts.push(host);
    }
  }
  return [...new Set(hosts)].sort();
}

function oneLineUris(text: string): string[] {
  const uris: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, "").trim();
    if (!/^deb(-src)?\s/.test(line)) continue;
    const rest = line.replace(/^deb(-src)?\s+/, "").replace(/^\[[^\]]*\]\s*/, "");
    const uri = rest.split(/\s+/)[0];
    if (uri !== undefined) uris.push(uri);
  }
  return uris;
}

function deb822Uris(text: string): string[] {
  const uris: string[] = [];
  for (const stanza of text.split(/\r?\n\s*\r?\n/)) {
    const fields = new Map<string, string>();
    for (const raw of stanza.split(/\r?\n/)) {
      if (raw.startsWith("#")) continue;
      const match = /^([A-Za-z-]+):\s*(.*)$/.exec(raw);
      if (match !== null) fields.set(match[1].toLowerCase(), match[2].trim());
    }
    if ((fields.get("enabled") ?? "yes").toLowerCase() === "no") continue;
    uris.push(...(fields.get("uris") ?? "").split(/\s+/).filter((uri) => uri !== ""));
  }
  return uris;
}

function readTextOrNull(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/**
 * Secrets that never enter the sandbox. For each bound secret the launcher
 * reads the real value (its own environment or a file), gives the command a
 * placeholder of the same shape (the same leading prefix such as `ghp_` or
 * `npm_`, the same length, each character replaced by a random one of its
 * class), different on every run, and hands the proxy the pair: the proxy
 * replaces the placeholder with the value only in request headers to the
 * bound hosts, and refuses it anywhere else (`secret_wrong_host`).
 *
 * The source variable (`from_env`) and every variable a request rule
 * injects from are removed from the command's environment.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { compileDomainPattern } from "../policy/pattern.ts";
import type { SecretBinding } from "../policy/decide_request.ts";
import type { EffectiveConfig } from "../profiles/types.ts";

/** What a run does with its secrets. */
export interface PreparedSecrets {
  /** The launcher's environment without the secrets' sources (what the sandbox is built from). */
  readonly env: Record<string, string>;
  /** Placeholders, added to the command's environment last. */
  readonly placeholders: Record<string, string>;
  /** For the proxy: bindings and real values. */
  readonly proxy: {
    readonly bindings: readonly SecretBinding[];
    readonly values: ReadonlyMap<string, string>;
  };
}

const LOWER = "abcdefghijklmnopqrstuvwxyz";
const UPPER = LOWER.toUpperCase();
const DIGIT = "0123456789";
const HEX_LOWER = "0123456789abcdef";

function randomFrom(alphabet: string): string {
  const byte = new Uint8Array(1);
  // Rejection sampling: no modulo bias.
  const limit = 256 - (256 % alphabet.length);
  do crypto.getRandomValues(byte); while (byte[0] >= limit);
  return alphabet[byte[0] % alphabet.length];
}

/**
 * A placeholder shaped like `value`: its prefix (letters and digits up to the
 * last `_` or `-` among the first 16 characters, when that leaves most of the
 * value: `ghp_`, `github_pat_`, `npm_`, `sk-ant-api03-`) kept, every other
 * letter or digit replaced by a random one of the same class (a lower-case
 * hex value stays hex), other characters kept. Never equal to `value`.
 */
export function makePlaceholder(value: string): string {
  const head = /^(?:[A-Za-z0-9]*[_-])+/.exec(value.slice(0, 16))?.[0] ?? "";
  const prefix = head.length * 2 <= value.length ? head : "";
  const rest = value.slice(prefix.length);
  const hex = /^[0-9a-f]+$/.test(rest);
  for (let attempt = 0; attempt < 8; attempt++) {
    let out = prefix;
    for (const c of rest) {
      if (hex) out += randomFrom(HEX_LOWER);
      else if (c >= "a" && c <= "z") out += randomFrom(LOWER);
      else if (c >= "A" && c <= "Z") out += randomFrom(UPPER);
      else if (c >= "0" && c <= "9") out += randomFrom(DIGIT);
      else out += c;
    }
    // A placeholder must not contain the value, nor the value the placeholder.
    if (out !== value && !out.includes(value) && !value.includes(out)) return out;
  }
  throw new UsageError(
    "Cannot make a placeholder for a secret: its value has too few letters or digits to disguise",
    { command: "run" },
  );
}

/** Reads the run's secrets and makes their placeholders. Throws UsageError (exit 2) for a missing value. */
export function prepareSecrets(
  config: EffectiveConfig,
  env: Readonly<Record<string, string>>,
): PreparedSecrets {
  const out: Record<string, string> = { ...env };
  const placeholders: Record<string, string> = {};
  const bindings: SecretBinding[] = [];
  const values = new Map<string, string>();
  for (const rule of config.network.requestRules ?? []) {
    for (const inject of rule.injectHeaders) {
      if (inject.fromEnv !== null) delete out[inject.fromEnv];
    }
  }
  for (const secret of config.secrets ?? []) {
    let value: string | undefined;
    if (secret.fromFile !== null) {
      try {
        value = Deno.readTextFileSync(secret.fromFile).trim();
      } catch (error) {
        throw new UsageError(
          `Cannot bind secret ${secret.name} (${secret.source}): cannot read from_file "${secret.fromFile}": ${
            error instanceof Error ? error.message : error
          }`,
          { command: "run" },
        );
      }
    } else value = env[secret.fromEnv ?? secret.name];
    if (value === undefined || value === "") {
      if (secret.optional) continue;
      throw new UsageError(
        `Cannot bind secret ${secret.name} (${secret.source}): the launcher's environment has no ${
          secret.fromEnv ?? secret.name
        }; export it before "sandbox run"`,
        { command: "run" },
      );
    }
    if (/[\r\n\0]/.test(value)) {
      throw new UsageError(
        `Cannot bind secret ${secret.name} (${secret.source}): its value contains a line break`,
        { command: "run" },
      );
    }
    const placeholder = makePlaceholder(value);
    delete out[secret.fromEnv ?? secret.name];
    placeholders[secret.name] = placeholder;
    bindings.push({
      name: secret.name,
      placeholder,
      hosts: secret.hosts.map((h) => compileDomainPattern(h, "allow")),
    });
    values.set(secret.name, value);
  }
  // A placeholder set last wins over the real value the variable held.
  return { env: out, placeholders, proxy: { bindings, values } };
}

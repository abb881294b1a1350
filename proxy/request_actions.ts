/**
 * What the proxy does to an allowed request's headers before forwarding it:
 * the matched request rule's actions (strip headers, then inject headers
 * from the launcher's environment or a file) and the run's secrets (a
 * placeholder in a header, also inside a Basic credential, replaced with
 * the real value — only for the secrets `decideRequest()` found bound to
 * the request's host). Never touches bodies or URLs.
 *
 * @module
 */
import { ConfigError, errorMessage } from "../errors.ts";
import type { InjectedHeader, RequestRule } from "../policy/types.ts";
import type { SecretBinding } from "../policy/decide_request.ts";
import type { HttpHeader } from "./http_parser.ts";

/** A run's secrets: the bindings the policy checks and the real values the proxy injects. */
export interface ProxySecrets {
  /** Placeholders and bound hosts (given to `decideRequest()`). */
  readonly bindings: readonly SecretBinding[];
  /** Real values by secret name. Never logged. */
  readonly values: ReadonlyMap<string, string>;
}

/** Reads the value an injected header takes (env var of the launcher, or a file, trimmed). */
export function injectedValue(inject: InjectedHeader, env: (name: string) => string | undefined) {
  if (inject.fromEnv !== null) {
    const value = env(inject.fromEnv);
    if (value === undefined) {
      throw new Error(`missing required environment variable ${inject.fromEnv}`);
    }
    return inject.prefix + value;
  }
  try {
    return inject.prefix + Deno.readTextFileSync(inject.fromFile!).trim();
  } catch (error) {
    throw new Error(`failed to read secret file ${inject.fromFile}: ${errorMessage(error)}`);
  }
}

/**
 * Resolves every injected header of `rules` once (at proxy start and on
 * reload) so a missing variable or file stops the start rather than a
 * request. Throws {@linkcode ConfigError}.
 */
export function resolveInjections(
  rules: readonly RequestRule[],
  env: (name: string) => string | undefined,
): Map<InjectedHeader, string> {
  const out = new Map<InjectedHeader, string>();
  const problems = [];
  for (const rule of rules) {
    for (const inject of rule.injectHeaders) {
      try {
        const value = injectedValue(inject, env);
        if (/[\r\n\0]/.test(value)) throw new Error("the value contains a line break or NUL");
        out.set(inject, value);
      } catch (error) {
        problems.push({
          file: rule.source,
          keyPath: `network.${rule.name}.actions.inject_request_headers`,
          message: `Cannot inject header "${inject.name}": ${errorMessage(error)}`,
        });
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}

/**
 * The headers to forward: the matched rule's strips and injections, then
 * each carried secret's placeholder replaced by its value.
 */
export function rewriteRequestHeaders(
  headers: readonly HttpHeader[],
  verdict: { readonly requestRule?: RequestRule | null; readonly secrets?: readonly string[] },
  injections: ReadonlyMap<InjectedHeader, string>,
  secrets: ProxySecrets | null,
): HttpHeader[] {
  let out = [...headers];
  const rule = verdict.requestRule ?? null;
  if (rule !== null) {
    const strip = new Set(rule.stripHeaders.map((n) => n.toLowerCase()));
    for (const inject of rule.injectHeaders) strip.add(inject.name.toLowerCase());
    if (strip.size > 0) out = out.filter((h) => !strip.has(h.name.toLowerCase()));
    for (const inject of rule.injectHeaders) {
      const value = injections.get(inject);
      if (value === undefined) throw new Error(`header "${inject.name}" was not resolved`);
      out.push({ name: inject.name, value });
    }
  }
  const carried = verdict.secrets ?? [];
  if (secrets !== null && carried.length > 0) {
    for (const name of carried) {
      const binding = secrets.bindings.find((b) => b.name === name);
      const value = secrets.values.get(name);
      if (binding === undefined || value === undefined) continue;
      out = out.map((h) => ({
        name: h.name,
        value: replaceIn(h.value, binding.placeholder, value),
      }));
    }
  }
  return out;
}

function replaceIn(headerValue: string, placeholder: string, value: string): string {
  if (headerValue.includes(placeholder)) return headerValue.replaceAll(placeholder, value);
  const basic = /^(\s*basic\s+)([A-Za-z0-9+/=]+)(\s*)$/i.exec(headerValue);
  if (basic === null) return headerValue;
  let decoded: string;
  try {
    decoded = atob(basic[2]);
  } catch {
    return headerValue;
  }
  if (!decoded.includes(placeholder)) return headerValue;
  const replaced = decoded.replaceAll(placeholder, value);
  const bytes = new TextEncoder().encode(replaced);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return `${basic[1]}${btoa(binary)}${basic[3]}`;
}

/**
 * Name resolution for the policy engine: the one place that asks the
 * system resolver (getaddrinfo, so `/etc/hosts` and nsswitch apply), with
 * `--resolve HOST=ADDR` overrides answered first, like curl's `--resolve`.
 *
 * @module
 */
import { lookup } from "node:dns/promises";
import { UsageError } from "../errors.ts";
import { parseIpLiteral } from "../policy/address.ts";
import { normalizeHost } from "../policy/host.ts";
import type { Resolver } from "../policy/types.ts";

export type { Resolver };

/** Options for {@linkcode createResolver}. */
export interface CreateResolverOptions {
  /** Names answered without asking the system, keyed by normalized host. */
  readonly overrides?: ReadonlyMap<string, readonly string[]>;
  /** Give up on a system lookup after this many milliseconds (default 10000). */
  readonly timeoutMs?: number;
}

/** A name that did not resolve. */
export class ResolveError extends Error {
  /** Always `"resolve"`. */
  readonly code = "resolve" as const;
  /** The name that was looked up. */
  readonly host: string;
  constructor(host: string, message: string, options?: { cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = "ResolveError";
    this.host = host;
  }
}

async function systemLookup(host: string, timeoutMs: number): Promise<string[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new ResolveError(host, `Cannot resolve "${host}": no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    const answers = await Promise.race([lookup(host, { all: true, verbatim: true }), timeout]);
    return answers.map((answer) => answer.address);
  } catch (error) {
    if (error instanceof ResolveError) throw error;
    const code = (error as { code?: unknown })?.code;
    const why = typeof code === "string"
      ? code
      : error instanceof Error
      ? error.message
      : String(error);
    throw new ResolveError(host, `Cannot resolve "${host}": ${why}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Creates a resolver: overrides first (exact normalized name), then the
 * system resolver via `node:dns` `lookup` with `all: true`. An IP literal
 * resolves to itself without any lookup. Every answer is returned in
 * canonical form; an answer that is not an IP address, or an empty answer,
 * is an error.
 *
 * @example
 * ```ts
 * const resolve = createResolver({ overrides: parseResolveFlags(["allowed.test=127.0.0.1"]) });
 * await resolve("allowed.test"); // ["127.0.0.1"]
 * ```
 */
export function createResolver(options: CreateResolverOptions = {}): Resolver {
  const overrides = new Map<string, readonly string[]>();
  for (const [host, addresses] of options.overrides ?? []) {
    overrides.set(normalizeHost(host), [...addresses]);
  }
  const timeoutMs = options.timeoutMs ?? 10_000;
  return async (host: string): Promise<string[]> => {
    const name = normalizeHost(host);
    const literal = parseIpLiteral(name);
    if (literal !== null) return [literal.canonical];
    const raw = overrides.get(name) ?? await systemLookup(name, timeoutMs);
    if (raw.length === 0) throw new ResolveError(name, `Cannot resolve "${name}": no addresses`);
    return raw.map((address) => {
      const parsed = parseIpLiteral(address);
      if (parsed === null) {
        throw new ResolveError(name, `Cannot resolve "${name}": "${address}" is not an IP address`);
      }
      return parsed.canonical;
    });
  };
}

/**
 * Parses `--resolve HOST=ADDR` values into resolver overrides. ADDR may be
 * a comma-separated list; repeating a HOST adds addresses. Throws
 * {@linkcode UsageError} on a value that is not `NAME=IP[,IP…]`.
 *
 * @example
 * ```ts
 * parseResolveFlags(["a.test=127.0.0.1", "a.test=[::1]"]);
 * // Map { "a.test" => ["127.0.0.1", "::1"] }
 * ```
 */
export function parseResolveFlags(values: readonly string[] | undefined): Map<string, string[]> {
  const result = new Map<string, string[]>();
  for (const value of values ?? []) {
    const equals = value.indexOf("=");
    const example = 'expected HOST=ADDR, e.g. "allowed.test=127.0.0.1"';
    if (equals === -1) {
      throw new UsageError(`Invalid --resolve "${value}": ${example}`);
    }
    const host = normalizeHost(value.slice(0, equals));
    if (host === "" || !/^[a-z0-9_.-]+$/.test(host) || host.includes("..")) {
      throw new UsageError(
        `Invalid --resolve "${value}": "${host}" is not a host name; ${example}`,
      );
    }
    if (parseIpLiteral(host) !== null) {
      throw new UsageError(
        `Invalid --resolve "${value}": "${host}" is already an address; HOST must be a name`,
      );
    }
    const addresses = value.slice(equals + 1).split(",").map((part) => part.trim());
    const list = result.get(host) ?? [];
    for (const address of addresses) {
      const parsed = parseIpLiteral(address);
      if (parsed === null) {
        throw new UsageError(
          `Invalid --resolve "${value}": "${address}" is not an IP address; ${example}`,
        );
      }
      if (!list.includes(parsed.canonical)) list.push(parsed.canonical);
    }
    result.set(host, list);
  }
  return result;
}

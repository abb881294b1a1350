/**
 * Name resolution for the policy engine: the one place that asks the
 * system resolver (getaddrinfo, so `/etc/hosts` and nsswitch apply), with
 * `--resolve HOST=ADDR` overrides answered first, like curl's `--resolve`.
 *
 * @module
 */
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
  /**
   * How long a system answer is reused, in milliseconds (default 10000; 0
   * turns the cache off). getaddrinfo does not tell the record's TTL, so
   * the bound is short: long enough for a burst of requests to one
   * registry, short enough that a moved name is followed soon.
   */
  readonly cacheTtlMs?: number;
  /** Most names kept in the cache (default 4096); the oldest entry goes first. */
  readonly cacheMaxEntries?: number;
  /** The system lookup (default: `node:dns` `lookup` with `all: true`); tests count calls with it. */
  readonly lookup?: (host: string) => Promise<readonly string[]>;
  /** The clock for cache expiry (default `Date.now`). */
  readonly now?: () => number;
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

// node:dns brings Node's compatibility layer (~8 ms of start-up): it loads at the first lookup,
// not when the proxy starts (most runs start a proxy; many never look a name up).
let nodeDns: Promise<typeof import("node:dns/promises")> | null = null;

async function nodeLookup(host: string): Promise<string[]> {
  nodeDns ??= import("node:dns/promises");
  const { lookup } = await nodeDns;
  const answers = await lookup(host, { all: true, verbatim: true });
  return answers.map((answer) => answer.address);
}

async function systemLookup(
  host: string,
  timeoutMs: number,
  ask: (host: string) => Promise<readonly string[]>,
): Promise<readonly string[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new ResolveError(host, `Cannot resolve "${host}": no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([ask(host), timeout]);
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

/** The canonical addresses of an answer; throws when it is empty or not addresses. */
function canonicalAnswer(name: string, raw: readonly string[]): string[] {
  if (raw.length === 0) throw new ResolveError(name, `Cannot resolve "${name}": no addresses`);
  return raw.map((address) => {
    const parsed = parseIpLiteral(address);
    if (parsed === null) {
      throw new ResolveError(name, `Cannot resolve "${name}": "${address}" is not an IP address`);
    }
    return parsed.canonical;
  });
}

/**
 * Creates a resolver: overrides first (exact normalized name), then the
 * system resolver via `node:dns` `lookup` with `all: true`. An IP literal
 * resolves to itself without any lookup. Every answer is returned in
 * canonical form; an answer that is not an IP address, or an empty answer,
 * is an error.
 *
 * System answers are cached per name for `cacheTtlMs` (a fresh copy is
 * handed out each time, in the same order, so a keep-alive upstream keyed
 * by its addresses is reused), and concurrent lookups of one name share one
 * system call and one timeout timer; a cache hit arms no timer at all.
 * Failures are not cached. The resolver is only ever asked for a name an
 * allow rule matched (policy/policy.ts), so a refused name is never looked
 * up, cached or not; and the caller connects to the addresses it checked,
 * never to a second answer.
 *
 * @example
 * ```ts
 * const resolve = createResolver({ overrides: parseResolveFlags(["allowed.test=127.0.0.1"]) });
 * await resolve("allowed.test"); // ["127.0.0.1"]
 * ```
 */
export function createResolver(options: CreateResolverOptions = {}): Resolver {
  // Overrides are put in canonical form once, not per request (a bad list fails when asked).
  const overrides = new Map<string, readonly string[] | ResolveError>();
  for (const [host, addresses] of options.overrides ?? []) {
    const name = normalizeHost(host);
    try {
      overrides.set(name, canonicalAnswer(name, addresses));
    } catch (error) {
      overrides.set(name, error as ResolveError);
    }
  }
  const timeoutMs = options.timeoutMs ?? 10_000;
  const ttlMs = options.cacheTtlMs ?? 10_000;
  const maxEntries = Math.max(1, options.cacheMaxEntries ?? 4096);
  const ask = options.lookup ?? nodeLookup;
  const now = options.now ?? Date.now;
  const cache = new Map<
    string,
    { readonly addresses: readonly string[]; readonly until: number }
  >();
  const inFlight = new Map<string, Promise<readonly string[]>>();

  const lookupCached = (name: string): Promise<readonly string[]> => {
    const hit = cache.get(name);
    if (hit !== undefined) {
      if (now() < hit.until) return Promise.resolve(hit.addresses);
      cache.delete(name);
    }
    const pending = inFlight.get(name);
    if (pending !== undefined) return pending;
    const started = (async () => {
      try {
        const addresses = canonicalAnswer(name, await systemLookup(name, timeoutMs, ask));
        if (ttlMs > 0) {
          if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
          cache.set(name, { addresses, until: now() + ttlMs });
        }
        return addresses;
      } finally {
        inFlight.delete(name);
      }
    })();
    inFlight.set(name, started);
    return started;
  };

  return async (host: string): Promise<string[]> => {
    const name = normalizeHost(host);
    const literal = parseIpLiteral(name);
    if (literal !== null) return [literal.canonical];
    const override = overrides.get(name);
    if (override instanceof ResolveError) throw override;
    if (override !== undefined) return [...override];
    return [...await lookupCached(name)];
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

/**
 * Per-host request rules: the reference design's `mitm_hooks` shape. A rule
 * names one exact host, what a request must look like (methods, paths,
 * query values, header values) and what to do with a matching request
 * (strip request headers, inject a header from an env var or a file). For a
 * host with rules, the first rule that matches decides; a request that
 * matches none is refused (`request_rule_no_match`). Hosts without rules are
 * untouched.
 *
 * Matchers follow the reference: a path entry is a prefix, or a glob after
 * `pattern:` (`*` and `?` stay inside one path segment, `**` crosses them);
 * a query or header value is an exact value, or a glob after `pattern:`
 * (`*` crosses `/`); `literal:` forces an exact value that starts with
 * `pattern:`. Query keys and values are compared form-decoded.
 *
 * Pure: the injected values are resolved by the proxy, not here.
 *
 * @module
 */
import { normalizeHost } from "./host.ts";
import type { RequestRule } from "./types.ts";

/** A path matcher: a literal prefix or a glob. */
type PathMatcher = { readonly prefix: string } | { readonly glob: RegExp };
/** A value matcher: an exact value or a glob. */
type ValueMatcher = { readonly exact: string } | { readonly glob: RegExp };

/** One compiled rule. */
export interface CompiledRequestRule {
  /** The rule as configured. */
  readonly rule: RequestRule;
  readonly methods: ReadonlySet<string>;
  readonly paths: readonly PathMatcher[];
  readonly query: readonly { readonly name: string; readonly values: readonly ValueMatcher[] }[];
  readonly headers: readonly { readonly name: string; readonly values: readonly ValueMatcher[] }[];
}

/** Compiled rules by exact normalized host, in configuration order. */
export type RequestRulesByHost = ReadonlyMap<string, readonly CompiledRequestRule[]>;

/** What the rules say about one request. */
export type RuleEvaluation =
  | { readonly kind: "no_rules" }
  | { readonly kind: "matched"; readonly rule: RequestRule }
  | { readonly kind: "no_match"; readonly rules: number };

/** One request as the rules see it. */
export interface RuleRequest {
  /** The method (any case). */
  readonly method: string;
  /** The origin-form target: path and query (`/a/b?x=1`). */
  readonly target: string;
  /** The request's headers, names in any case. */
  readonly headers: readonly { readonly name: string; readonly value: string }[];
}

/** A rule that cannot be compiled. */
export class RequestRuleError extends Error {
  /** The key path inside the rule (`match.path_prefixes`). */
  readonly key: string;
  constructor(key: string, message: string) {
    super(message);
    this.name = "RequestRuleError";
    this.key = key;
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The methods `allow = "read"` stands for. */
export const READ_METHODS: readonly string[] = Object.freeze(["GET", "HEAD", "OPTIONS"]);

/** Checks a header name (an HTTP token). */
export function checkHeaderName(name: string): string | null {
  return TOKEN.test(name) ? null : `invalid header name ${JSON.stringify(name)}`;
}

/** Normalizes a rule host: exact, no wildcard. Throws RequestRuleError. */
export function ruleHost(host: string): string {
  const normalized = normalizeHost(host);
  if (normalized === "") throw new RequestRuleError("host", "host must not be empty");
  if (normalized.includes("*")) {
    throw new RequestRuleError(
      "host",
      "request rule hosts must be exact hosts and cannot contain wildcards",
    );
  }
  return normalized;
}

/**
 * Compiles rules into a per-host table (configuration order kept). Throws
 * {@linkcode RequestRuleError} for the first rule that does not compile.
 */
export function compileRequestRules(rules: readonly RequestRule[]): RequestRulesByHost {
  const out = new Map<string, CompiledRequestRule[]>();
  for (const rule of rules) {
    const compiled = compileRequestRule(rule);
    const host = ruleHost(rule.host);
    const list = out.get(host);
    if (list === undefined) out.set(host, [compiled]);
    else list.push(compiled);
  }
  return out;
}

/** Compiles one rule. Throws {@linkcode RequestRuleError}. */
export function compileRequestRule(rule: RequestRule): CompiledRequestRule {
  ruleHost(rule.host);
  const methods = rule.methods.map((m) => m.trim().toUpperCase());
  if (methods.length === 0) {
    throw new RequestRuleError("match.methods", "methods must not be empty");
  }
  if (methods.some((m) => m === "")) {
    throw new RequestRuleError("match.methods", "methods must not contain empty entries");
  }
  if (rule.paths.length === 0) {
    throw new RequestRuleError("match.path_prefixes", "path_prefixes must not be empty");
  }
  const paths = rule.paths.map((p): PathMatcher => {
    const parsed = splitPattern(p, "match.path_prefixes");
    if ("literal" in parsed) {
      if (parsed.literal === "") {
        throw new RequestRuleError(
          "match.path_prefixes",
          "path_prefixes must not contain empty entries",
        );
      }
      return { prefix: parsed.literal };
    }
    return { glob: globToRegExp(parsed.glob, true, "match.path_prefixes") };
  });
  const values = (key: string, list: readonly string[]) =>
    list.map((v): ValueMatcher => {
      const parsed = splitPattern(v, key);
      return "literal" in parsed
        ? { exact: parsed.literal }
        : { glob: globToRegExp(parsed.glob, false, key) };
    });
  const query = Object.entries(rule.query).map(([name, list]) => {
    if (name === "") throw new RequestRuleError("match.query", "query keys must not be empty");
    if (list.length === 0) {
      throw new RequestRuleError(
        "match.query",
        `query key ${JSON.stringify(name)} must list at least one allowed value`,
      );
    }
    return { name, values: values("match.query", list) };
  });
  const headers = Object.entries(rule.headers).map(([name, list]) => {
    const bad = checkHeaderName(name);
    if (bad !== null) throw new RequestRuleError("match.headers", bad);
    return { name: name.toLowerCase(), values: values("match.headers", list) };
  });
  for (const name of rule.stripHeaders) {
    const bad = checkHeaderName(name);
    if (bad !== null) throw new RequestRuleError("actions.strip_request_headers", bad);
  }
  for (const inject of rule.injectHeaders) {
    const bad = checkHeaderName(inject.name);
    if (bad !== null) throw new RequestRuleError("actions.inject_request_headers", bad);
    if ((inject.fromEnv === null) === (inject.fromFile === null)) {
      throw new RequestRuleError(
        "actions.inject_request_headers",
        "expected exactly one of secret_env_var or secret_file",
      );
    }
    if (inject.fromEnv !== null && inject.fromEnv.trim() === "") {
      throw new RequestRuleError(
        "actions.inject_request_headers",
        "secret_env_var must not be empty",
      );
    }
    if (inject.fromFile !== null && !inject.fromFile.startsWith("/")) {
      throw new RequestRuleError(
        "actions.inject_request_headers",
        `secret_file must be an absolute path: ${JSON.stringify(inject.fromFile)}`,
      );
    }
  }
  return { rule, methods: new Set(methods), paths, query, headers };
}

/**
 * Evaluates the rules for `host` against one request: `no_rules` when the
 * host has none, the first matching rule, or `no_match`.
 */
export function evaluateRequestRules(
  rules: RequestRulesByHost,
  host: string,
  request: RuleRequest,
): RuleEvaluation {
  if (rules.size === 0) return { kind: "no_rules" };
  const list = rules.get(normalizeHost(host));
  if (list === undefined) return { kind: "no_rules" };
  const method = request.method.toUpperCase();
  const q = request.target.indexOf("?");
  const path = q < 0 ? request.target : request.target.slice(0, q);
  let query: Map<string, string[]> | null = null;
  for (const compiled of list) {
    if (!compiled.methods.has(method) && !compiled.methods.has("*")) continue;
    if (
      !compiled.paths.some((m) => "prefix" in m ? path.startsWith(m.prefix) : m.glob.test(path))
    ) {
      continue;
    }
    if (compiled.query.length > 0) {
      query ??= parseQuery(q < 0 ? "" : request.target.slice(q + 1));
      const ok = compiled.query.every((c) =>
        (query!.get(c.name) ?? []).some((v) => c.values.some((m) => valueMatches(m, v)))
      );
      if (!ok) continue;
    }
    const headersOk = compiled.headers.every((c) => {
      const actual = request.headers.filter((h) => h.name.toLowerCase() === c.name);
      if (actual.length === 0) return false;
      if (c.values.length === 0) return true;
      return actual.some((h) => c.values.some((m) => valueMatches(m, h.value)));
    });
    if (!headersOk) continue;
    return { kind: "matched", rule: compiled.rule };
  }
  return { kind: "no_match", rules: list.length };
}

function valueMatches(matcher: ValueMatcher, value: string): boolean {
  return "exact" in matcher ? matcher.exact === value : matcher.glob.test(value);
}

/** `application/x-www-form-urlencoded` parsing, lenient as browsers are. */
export function parseQuery(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (text === "") return out;
  for (const part of text.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const name = formDecode(eq < 0 ? part : part.slice(0, eq));
    const value = formDecode(eq < 0 ? "" : part.slice(eq + 1));
    const list = out.get(name);
    if (list === undefined) out.set(name, [value]);
    else list.push(value);
  }
  return out;
}

function formDecode(text: string): string {
  const plus = text.replaceAll("+", " ");
  try {
    return decodeURIComponent(plus);
  } catch {
    // Invalid escapes are kept as written, byte by byte where they are valid.
    return plus.replace(/%[0-9A-Fa-f]{2}/g, (m) => {
      try {
        return decodeURIComponent(m);
      } catch {
        return m;
      }
    });
  }
}

function splitPattern(
  text: string,
  key: string,
): { readonly literal: string } | { readonly glob: string } {
  if (text.startsWith("literal:")) return { literal: text.slice("literal:".length) };
  if (!text.startsWith("pattern:")) return { literal: text };
  const glob = text.slice("pattern:".length);
  if (glob === "") throw new RequestRuleError(key, "glob pattern must not be empty");
  return { glob };
}

/**
 * A glob as a whole-string regular expression: `*`, `?`, `[...]` (`[!...]`
 * negated), `{a,b}`, `\` escapes; with `separator`, `*`, `?` and classes do
 * not match `/` and `**` does.
 */
export function globToRegExp(glob: string, separator: boolean, key = "pattern"): RegExp {
  const invalid = (why: string) =>
    new RequestRuleError(key, `invalid glob pattern ${JSON.stringify(glob)}: ${why}`);
  const one = separator ? "[^/]" : "[\\s\\S]";
  let out = "";
  let depth = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "\\") {
      if (i + 1 >= glob.length) throw invalid("dangling escape");
      out += escapeRe(glob[++i]);
    } else if (c === "*") {
      if (glob[i + 1] === "*") {
        i++;
        if (separator && glob[i + 1] === "/") {
          // `**/` matches zero or more whole segments.
          i++;
          out += "(?:[\\s\\S]*/)?";
        } else out += "[\\s\\S]*";
      } else out += `${one}*`;
    } else if (c === "?") {
      out += one;
    } else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) throw invalid("unclosed character class");
      let body = glob.slice(i + 1, end);
      let negate = false;
      if (body.startsWith("!") || body.startsWith("^")) {
        negate = true;
        body = body.slice(1);
      }
      const cls = body.replace(/[\\\]^]/g, (m) => `\\${m}`);
      out += negate ? `(?:(?!${separator ? "/" : "$^"})[^${cls}])` : `[${cls}]`;
      i = end;
    } else if (c === "{") {
      depth++;
      out += "(?:";
    } else if (c === "}" && depth > 0) {
      depth--;
      out += ")";
    } else if (c === "," && depth > 0) {
      out += "|";
    } else out += escapeRe(c);
  }
  if (depth > 0) throw invalid("unclosed alternation");
  return new RegExp(`^${out}$`, "u");
}

function escapeRe(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}

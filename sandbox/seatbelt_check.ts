/**
 * A strict checker for the Seatbelt profiles this program generates. It
 * cannot run `sandbox-exec` (nothing here is a Mac), so it holds every
 * profile to a deliberately narrow subset of SBPL and to this project's
 * rules:
 *
 * - syntax: balanced parentheses; strings of printable ASCII with only `\\`
 *   and `\"` escapes; regex literals `#"…"`; `;` comments; nothing else;
 * - structure: the first form is `(version 1)`; top-level forms are only
 *   `version`, `allow`, `deny`, `debug`, `import` and `define`; every rule
 *   names known operations, then known filters with arguments of the right
 *   shape (`(remote ip "localhost:PORT")`, `(remote unix-socket (path-literal
 *   …))`, `(subpath (param "NAME"))`, …);
 * - parameters: every `(param "NAME")` is supplied, every supplied parameter
 *   is used, names are `[A-Z][A-Z0-9_]*`;
 * - no pasted paths: an absolute path written as a string must be one of the
 *   fixed system literals, and no parameter value appears anywhere in the
 *   text (comments included);
 * - network posture: no unfiltered `allow` of a network operation, and TCP/UDP
 *   only to `localhost` on a numbered port (no `"*:*"`, no remote hosts).
 *
 * @module
 */
import { SandboxError } from "../errors.ts";
import { SEATBELT_SYSTEM_LITERALS, SEATBELT_SYSTEM_REGEXES } from "./seatbelt.ts";

/** One problem found in a profile. */
export interface SeatbeltProblem {
  /** 1-based line of the profile. */
  readonly line: number;
  /** 1-based column. */
  readonly column: number;
  /** What is wrong. */
  readonly message: string;
}

/** Options for {@linkcode checkSeatbeltProfile}. */
export interface CheckSeatbeltOptions {
  /**
   * Absolute-path string literals allowed besides the built-in system list.
   * Defaults to none: generated profiles carry every other path as a parameter.
   */
  extraLiterals?: readonly string[];
}

/** The operations a rule may name. */
const OPERATIONS: ReadonlySet<string> = new Set([
  "default",
  "file*",
  "file-read*",
  "file-read-data",
  "file-read-metadata",
  "file-read-xattr",
  "file-test-existence",
  "file-write*",
  "file-write-data",
  "file-write-create",
  "file-write-unlink",
  "file-write-mode",
  "file-write-owner",
  "file-write-times",
  "file-write-flags",
  "file-write-xattr",
  "file-write-setugid",
  "file-ioctl",
  "file-link",
  "file-clone",
  "file-revoke",
  "file-map-executable",
  "file-issue-extension",
  "process*",
  "process-exec",
  "process-exec*",
  "process-fork",
  "process-info*",
  "process-info-pidinfo",
  "process-info-listpids",
  "process-info-setcontrol",
  "signal",
  "sysctl*",
  "sysctl-read",
  "sysctl-write",
  "mach*",
  "mach-lookup",
  "mach-register",
  "mach-host*",
  "mach-priv-task-port",
  "mach-task-name",
  "network*",
  "network-outbound",
  "network-inbound",
  "network-bind",
  "system-socket",
  "ipc-posix-sem",
  "ipc-posix-shm",
  "pseudo-tty",
  "user-preference-read",
  "iokit-open",
  "iokit-get-properties",
]);

/** Network operations that must never be allowed without a filter. */
const NETWORK_OPERATIONS: ReadonlySet<string> = new Set([
  "network*",
  "network-outbound",
  "network-inbound",
  "network-bind",
]);

/** Filters that take one path argument. */
const PATH_FILTERS: ReadonlySet<string> = new Set([
  "literal",
  "subpath",
  "prefix",
  "path",
  "path-literal",
  "path-prefix",
]);
/** Filters that take one regex argument. */
const REGEX_FILTERS: ReadonlySet<string> = new Set(["regex", "path-regex"]);
/** Filters that take one name string. */
const NAME_FILTERS: ReadonlySet<string> = new Set([
  "global-name",
  "global-name-prefix",
  "sysctl-name",
  "sysctl-name-prefix",
  "extension",
  "iokit-registry-entry-class",
  "iokit-user-client-class",
]);
const TARGETS: ReadonlySet<string> = new Set([
  "self",
  "same-sandbox",
  "children",
  "pgrp",
  "others",
]);
const VNODE_TYPES: ReadonlySet<string> = new Set([
  "REGULAR-FILE",
  "DIRECTORY",
  "SYMLINK",
  "CHARACTER-DEVICE",
  "BLOCK-DEVICE",
  "FIFO",
  "SOCKET",
]);
const SOCKET_DOMAINS: ReadonlySet<string> = new Set([
  "AF_UNIX",
  "AF_INET",
  "AF_INET6",
  "AF_SYSTEM",
]);
const IP_PROTOCOLS: ReadonlySet<string> = new Set([
  "ip",
  "ip4",
  "ip6",
  "tcp",
  "tcp4",
  "tcp6",
  "udp",
]);
const PARAM_NAME = /^[A-Z][A-Z0-9_]*$/;
const HOST_PORT = /^(localhost|\*):(\*|[0-9]{1,5})$/;

type Node =
  | { kind: "list"; items: Node[]; line: number; column: number }
  | { kind: "symbol"; text: string; line: number; column: number }
  | { kind: "number"; value: number; line: number; column: number }
  | { kind: "string"; text: string; line: number; column: number }
  | { kind: "regex"; text: string; line: number; column: number };

interface Comment {
  text: string;
  line: number;
  column: number;
}

/**
 * Checks `profile` against the rules above, given the parameters it will be
 * run with. Returns every problem found (empty when the profile passes).
 *
 * @example
 * ```ts
 * const { profile, params } = renderSeatbeltProfile(plan);
 * const problems = checkSeatbeltProfile(profile, params);
 * if (problems.length > 0) throw new Error(problems[0].message);
 * ```
 */
export function checkSeatbeltProfile(
  profile: string,
  params: Readonly<Record<string, string>>,
  options: CheckSeatbeltOptions = {},
): SeatbeltProblem[] {
  const problems: SeatbeltProblem[] = [];
  const parsed = parse(profile, problems);
  if (parsed === null) return problems;
  const literals = new Set([...SEATBELT_SYSTEM_LITERALS, ...(options.extraLiterals ?? [])]);
  const checker = new Checker(problems, params, literals);
  checker.checkProgram(parsed.forms);
  checker.checkParamsUsed();
  checker.checkNoPastedValues(parsed.forms, parsed.comments);
  return problems.sort((a, b) => a.line - b.line || a.column - b.column);
}

/**
 * Like {@linkcode checkSeatbeltProfile}, but throws a {@linkcode SandboxError}
 * (`sandbox_failed`) listing the problems; used before anything is run, so a
 * malformed profile never reaches `sandbox-exec` (fail closed).
 */
export function assertSeatbeltProfile(
  profile: string,
  params: Readonly<Record<string, string>>,
  options: CheckSeatbeltOptions = {},
): void {
  const problems = checkSeatbeltProfile(profile, params, options);
  if (problems.length === 0) return;
  throw new SandboxError(
    "sandbox_failed",
    `Refusing a Seatbelt profile with ${problems.length} problem(s): ` +
      problems.map((p) => `line ${p.line}:${p.column}: ${p.message}`).join("; "),
  );
}

/** Tokenizes and parses; returns null (with problems) when the syntax is broken. */
function parse(
  text: string,
  problems: SeatbeltProblem[],
): { forms: Node[]; comments: Comment[] } | null {
  const comments: Comment[] = [];
  const stack: { items: Node[]; line: number; column: number }[] = [];
  const top: Node[] = [];
  let i = 0;
  let line = 1;
  let column = 1;
  const fail = (message: string, l = line, c = column) => {
    problems.push({ line: l, column: c, message });
    return null;
  };
  const advance = (n: number) => {
    for (let k = 0; k < n; k++) {
      if (text[i] === "\n") {
        line++;
        column = 1;
      } else {
        column++;
      }
      i++;
    }
  };
  const push = (node: Node) => (stack.length > 0 ? stack[stack.length - 1].items : top).push(node);

  while (i < text.length) {
    const ch = text[i];
    if (ch === " " || ch === "\n" || ch === "\t" || ch === "\r") {
      advance(1);
    } else if (ch === ";") {
      const end = text.indexOf("\n", i);
      const stop = end === -1 ? text.length : end;
      comments.push({ text: text.slice(i, stop), line, column });
      advance(stop - i);
    } else if (ch === "(") {
      stack.push({ items: [], line, column });
      advance(1);
    } else if (ch === ")") {
      const open = stack.pop();
      if (open === undefined) return fail('Unbalanced ")": nothing is open here');
      push({ kind: "list", items: open.items, line: open.line, column: open.column });
      advance(1);
    } else if (ch === '"' || (ch === "#" && text[i + 1] === '"')) {
      const isRegex = ch === "#";
      const l = line;
      const c = column;
      advance(isRegex ? 2 : 1);
      let value = "";
      for (;;) {
        if (i >= text.length) return fail("Unterminated string", l, c);
        const s = text[i];
        if (s === '"') {
          advance(1);
          break;
        }
        const code = s.charCodeAt(0);
        if (code < 0x20 || code > 0x7e) {
          return fail(
            `String holds ${JSON.stringify(s)}: only printable ASCII is allowed in a profile`,
          );
        }
        if (s === "\\") {
          const next = text[i + 1];
          if (isRegex) {
            if (next === undefined || next.charCodeAt(0) < 0x20 || next.charCodeAt(0) > 0x7e) {
              return fail("Bad escape in regex literal");
            }
            value += s + next;
          } else {
            if (next !== "\\" && next !== '"') {
              return fail(`Unknown string escape "\\${next ?? ""}": only \\\\ and \\" are allowed`);
            }
            value += next;
          }
          advance(2);
          continue;
        }
        value += s;
        advance(1);
      }
      push({ kind: isRegex ? "regex" : "string", text: value, line: l, column: c });
    } else {
      const l = line;
      const c = column;
      let end = i;
      while (end < text.length && !/[\s();"]/.test(text[end])) end++;
      const token = text.slice(i, end);
      if (/^[0-9]+$/.test(token)) {
        push({ kind: "number", value: Number(token), line: l, column: c });
      } else if (/^[A-Za-z*][A-Za-z0-9*_.-]*$/.test(token)) {
        push({ kind: "symbol", text: token, line: l, column: c });
      } else {
        return fail(`Unexpected token ${JSON.stringify(token)}`);
      }
      advance(end - i);
    }
  }
  if (stack.length > 0) {
    const open = stack[stack.length - 1];
    return fail(`Unbalanced "(": ${stack.length} list(s) left open`, open.line, open.column);
  }
  return { forms: top, comments };
}

class Checker {
  readonly #problems: SeatbeltProblem[];
  readonly #params: Readonly<Record<string, string>>;
  readonly #literals: ReadonlySet<string>;
  readonly #used = new Set<string>();
  readonly #defined = new Set<string>();

  constructor(
    problems: SeatbeltProblem[],
    params: Readonly<Record<string, string>>,
    literals: ReadonlySet<string>,
  ) {
    this.#problems = problems;
    this.#params = params;
    this.#literals = literals;
  }

  #problem(node: { line: number; column: number }, message: string): void {
    this.#problems.push({ line: node.line, column: node.column, message });
  }

  checkProgram(forms: Node[]): void {
    if (forms.length === 0) {
      this.#problems.push({ line: 1, column: 1, message: "Empty profile" });
      return;
    }
    const first = forms[0];
    if (
      first.kind !== "list" || head(first) !== "version" || first.items.length !== 2 ||
      first.items[1].kind !== "number" || first.items[1].value !== 1
    ) {
      this.#problem(first, "The profile must start with (version 1)");
    }
    forms.forEach((form, index) => {
      if (form.kind !== "list") {
        this.#problem(form, "Top level holds a bare atom: expected a (form …)");
        return;
      }
      const name = head(form);
      switch (name) {
        case "version":
          if (index !== 0) this.#problem(form, "(version …) may appear only first");
          break;
        case "allow":
        case "deny":
          this.#checkRule(form, name);
          break;
        case "debug":
          if (
            form.items.length !== 2 || form.items[1].kind !== "symbol" ||
            !["deny", "all"].includes(form.items[1].text)
          ) {
            this.#problem(form, "(debug …) takes deny or all");
          }
          break;
        case "import":
          if (
            form.items.length !== 2 || form.items[1].kind !== "string" ||
            !/^[a-z]+\.sb$/.test(form.items[1].text)
          ) {
            this.#problem(form, '(import …) takes one system profile name such as "bsd.sb"');
          }
          break;
        case "define":
          if (form.items.length !== 3 || form.items[1].kind !== "symbol") {
            this.#problem(form, "(define NAME FILTER) takes a name and one filter");
          } else {
            this.#checkFilter(form.items[2]);
            this.#defined.add(form.items[1].text);
          }
          break;
        default:
          this.#problem(form, `Unknown top-level form ${JSON.stringify(name ?? "")}`);
      }
    });
  }

  #checkRule(form: Extract<Node, { kind: "list" }>, action: "allow" | "deny"): void {
    const ops: string[] = [];
    let k = 1;
    for (; k < form.items.length; k++) {
      const item = form.items[k];
      if (item.kind !== "symbol") break;
      if (!OPERATIONS.has(item.text)) {
        this.#problem(item, `Unknown operation ${JSON.stringify(item.text)}`);
      }
      ops.push(item.text);
    }
    if (ops.length === 0) {
      this.#problem(form, `(${action} …) names no operation`);
      return;
    }
    const filters = form.items.slice(k);
    if (ops.includes("default") && (ops.length > 1 || action === "allow")) {
      this.#problem(form, "default may only appear alone, as (deny default)");
    }
    if (ops.includes("default")) {
      for (const f of filters) this.#checkModifier(f);
      return;
    }
    if (action === "allow" && filters.length === 0) {
      const net = ops.find((op) => NETWORK_OPERATIONS.has(op));
      if (net !== undefined) {
        this.#problem(form, `(allow ${net}) without a filter opens the whole network`);
      }
    }
    for (const f of filters) this.#checkFilter(f);
  }

  /** `(with message "…")` and friends, on `(deny default …)`. */
  #checkModifier(node: Node): void {
    if (
      node.kind === "list" && head(node) === "with" && node.items.length === 3 &&
      node.items[1].kind === "symbol" && node.items[1].text === "message" &&
      node.items[2].kind === "string"
    ) {
      return;
    }
    if (
      node.kind === "list" && head(node) === "with" && node.items.length === 2 &&
      node.items[1].kind === "symbol" && ["report", "no-report"].includes(node.items[1].text)
    ) {
      return;
    }
    this.#problem(node, '(deny default) takes only (with message "…") or (with report)');
  }

  #checkFilter(node: Node): void {
    if (node.kind === "symbol" && this.#defined.has(node.text)) return;
    if (node.kind !== "list") {
      this.#problem(node, "Expected a filter (a list), found an atom");
      return;
    }
    const name = head(node);
    const args = node.items.slice(1);
    if (name === undefined) {
      this.#problem(node, "Empty filter");
      return;
    }
    if (PATH_FILTERS.has(name)) {
      if (args.length !== 1) this.#problem(node, `(${name} …) takes one path`);
      else this.#checkPathValue(args[0]);
    } else if (REGEX_FILTERS.has(name)) {
      if (args.length !== 1 || (args[0].kind !== "regex" && args[0].kind !== "string")) {
        this.#problem(node, `(${name} …) takes one regex`);
      } else if (args[0].text.startsWith("^/") && !SEATBELT_SYSTEM_REGEXES.includes(args[0].text)) {
        this.#problem(
          args[0],
          `Regex ${JSON.stringify(args[0].text)} names a path: use a parameter`,
        );
      } else {
        try {
          new RegExp(args[0].text);
        } catch {
          this.#problem(args[0], `Invalid regex ${JSON.stringify(args[0].text)}`);
        }
      }
    } else if (NAME_FILTERS.has(name)) {
      if (args.length !== 1 || args[0].kind !== "string" || args[0].text === "") {
        this.#problem(node, `(${name} …) takes one non-empty string`);
      }
    } else if (name === "require-all" || name === "require-any" || name === "require-not") {
      if (args.length === 0 || (name === "require-not" && args.length !== 1)) {
        this.#problem(node, `(${name} …) has the wrong number of filters`);
      }
      for (const a of args) this.#checkFilter(a);
    } else if (name === "target") {
      if (args.length !== 1 || args[0].kind !== "symbol" || !TARGETS.has(args[0].text)) {
        this.#problem(node, "(target …) takes self, same-sandbox, children, pgrp or others");
      }
    } else if (name === "vnode-type") {
      if (args.length !== 1 || args[0].kind !== "symbol" || !VNODE_TYPES.has(args[0].text)) {
        this.#problem(node, "(vnode-type …) takes a vnode type such as CHARACTER-DEVICE");
      }
    } else if (name === "socket-domain") {
      if (args.length !== 1 || args[0].kind !== "symbol" || !SOCKET_DOMAINS.has(args[0].text)) {
        this.#problem(node, "(socket-domain …) takes AF_UNIX, AF_INET, AF_INET6 or AF_SYSTEM");
      }
    } else if (name === "socket-protocol") {
      if (args.length !== 1 || args[0].kind !== "number") {
        this.#problem(node, "(socket-protocol …) takes a number");
      }
    } else if (name === "remote" || name === "local") {
      this.#checkAddress(node, name, args);
    } else {
      this.#problem(node, `Unknown filter ${JSON.stringify(name)}`);
    }
  }

  #checkAddress(node: Node, name: "remote" | "local", args: Node[]): void {
    const kind = args[0];
    if (kind === undefined || kind.kind !== "symbol") {
      this.#problem(node, `(${name} …) takes ip, tcp, udp or unix-socket first`);
      return;
    }
    if (kind.text === "unix-socket") {
      if (args.length !== 2) {
        this.#problem(node, `(${name} unix-socket …) takes exactly one path filter`);
        return;
      }
      const inner = args[1];
      const innerName = inner.kind === "list" ? head(inner) : undefined;
      if (
        innerName === undefined ||
        !(PATH_FILTERS.has(innerName) || REGEX_FILTERS.has(innerName))
      ) {
        this.#problem(inner, `(${name} unix-socket …) takes a path-literal, subpath or regex`);
        return;
      }
      this.#checkFilter(inner);
      return;
    }
    if (!IP_PROTOCOLS.has(kind.text)) {
      this.#problem(kind, `Unknown address kind ${JSON.stringify(kind.text)}`);
      return;
    }
    const address = args[1];
    if (args.length !== 2 || address.kind !== "string") {
      this.#problem(node, `(${name} ${kind.text} "HOST:PORT") takes one address string`);
      return;
    }
    const match = HOST_PORT.exec(address.text);
    if (match === null) {
      this.#problem(address, `Address ${JSON.stringify(address.text)} is not "localhost:PORT"`);
      return;
    }
    if (name === "remote" && match[1] !== "localhost") {
      this.#problem(address, `Remote address ${JSON.stringify(address.text)} leaves the machine`);
    }
    if (match[2] === "*") {
      if (name === "remote") {
        this.#problem(address, `Remote address ${JSON.stringify(address.text)} allows every port`);
      }
    } else {
      const port = Number(match[2]);
      if (port < 1 || port > 65535) {
        this.#problem(address, `Port ${match[2]} is not from 1 to 65535`);
      }
    }
  }

  /** A path argument: a parameter, a fixed system literal, or string-append of those. */
  #checkPathValue(node: Node): void {
    if (node.kind === "string") {
      if (!this.#literals.has(node.text)) {
        this.#problem(
          node,
          `Path ${JSON.stringify(node.text)} is written into the profile: pass it as a parameter`,
        );
      }
      return;
    }
    if (node.kind === "list" && head(node) === "param") {
      const arg = node.items[1];
      if (node.items.length !== 2 || arg.kind !== "string") {
        this.#problem(node, '(param …) takes one name string: (param "NAME")');
        return;
      }
      if (!PARAM_NAME.test(arg.text)) {
        this.#problem(arg, `Parameter name ${JSON.stringify(arg.text)} is not [A-Z][A-Z0-9_]*`);
      } else if (!Object.hasOwn(this.#params, arg.text)) {
        this.#problem(arg, `Parameter ${JSON.stringify(arg.text)} is not supplied`);
      }
      this.#used.add(arg.text);
      return;
    }
    if (node.kind === "list" && head(node) === "string-append") {
      const parts = node.items.slice(1);
      if (parts.length === 0 || !parts.some((p) => p.kind === "list")) {
        this.#problem(node, "(string-append …) must join a parameter with fixed text");
      }
      for (const part of parts) {
        if (part.kind === "string") {
          if (
            part.text.startsWith("/") && part.text.length > 1 &&
            !/^\/[A-Za-z0-9._-]+$/.test(part.text)
          ) {
            this.#problem(part, `Path text ${JSON.stringify(part.text)} in string-append`);
          }
        } else {
          this.#checkPathValue(part);
        }
      }
      return;
    }
    this.#problem(node, 'Expected (param "NAME") or a system path');
  }

  checkParamsUsed(): void {
    for (const name of Object.keys(this.#params)) {
      if (!PARAM_NAME.test(name)) {
        this.#problems.push({
          line: 1,
          column: 1,
          message: `Supplied parameter name ${JSON.stringify(name)} is not [A-Z][A-Z0-9_]*`,
        });
      } else if (!this.#used.has(name)) {
        this.#problems.push({
          line: 1,
          column: 1,
          message: `Parameter ${JSON.stringify(name)} is supplied but never used`,
        });
      }
    }
  }

  /** No parameter value may appear in a string or comment: it would be a pasted path. */
  checkNoPastedValues(forms: Node[], comments: Comment[]): void {
    const values = [...new Set(Object.values(this.#params))].filter((v) =>
      v.length > 1 && !this.#literals.has(v)
    );
    if (values.length === 0) return;
    const visit = (node: Node) => {
      if (node.kind === "list") {
        node.items.forEach(visit);
      } else if ((node.kind === "string" || node.kind === "regex") && values.includes(node.text)) {
        this.#problem(node, `Parameter value ${JSON.stringify(node.text)} is pasted into the text`);
      }
    };
    forms.forEach(visit);
    for (const comment of comments) {
      const hit = values.find((v) => comment.text.includes(v));
      if (hit !== undefined) {
        this.#problem(comment, `Parameter value ${JSON.stringify(hit)} is pasted into a comment`);
      }
    }
  }
}

function head(node: Extract<Node, { kind: "list" }>): string | undefined {
  const first = node.items[0];
  return first !== undefined && first.kind === "symbol" ? first.text : undefined;
}

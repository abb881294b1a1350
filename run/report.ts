/**
 * The end of a run: what the proxy blocked, said where people look.
 *
 * - stderr: one summary of the blocked hosts (host, port, reason, count),
 *   nothing at all when nothing was blocked;
 * - GitHub Actions (`GITHUB_ACTIONS=true`): a `::warning` annotation per
 *   blocked host on stderr (at most ten) and a markdown table with the TOML
 *   that would admit them appended to `$GITHUB_STEP_SUMMARY`;
 * - `--json`: one final JSON line on stdout (command, decision, exit code,
 *   duration, blocked and allowed hosts with counts);
 * - `--fail-on-block`: a zero exit becomes {@linkcode FAIL_ON_BLOCK_EXIT_CODE}
 *   when anything was blocked.
 *
 * `cli/run.ts` calls {@linkcode reportRun} with the result of `runSandboxed()`.
 *
 * @module
 */
import { writeTextNoFollow } from "../safe_file.ts";
import { errorMessage } from "../errors.ts";
import type { AllowedHost } from "../profiles/learn_profile.ts";
import { DENY_REASONS } from "../policy/reasons.ts";
import { formatSpinLine, type SpinningHost } from "./block_watch.ts";

/**
 * Exit code of a run whose command exited 0 but during which the proxy
 * blocked at least one connection, under `--fail-on-block`. Not 1 (the
 * usual code of a failing command), not 2 (usage and config errors), not
 * 126/127/128+N (launcher failures and signals), so a CI log reader can tell
 * "the command passed, the policy did not" from "the command failed".
 */
export const FAIL_ON_BLOCK_EXIT_CODE = 3;

/** The fields of a proxy decision (`DecisionEvent`) the report uses. */
export interface ReportDecision {
  /** The host as the client asked for it (normalized by the proxy). */
  readonly host: string;
  /** The destination port. */
  readonly port: number;
  /** `http`, `https-connect` or `socks5`. */
  readonly protocol: string;
  /** What the proxy decided (`would_block`: let through in report mode). */
  readonly decision: "allow" | "deny" | "would_block";
  /** `allowed` or a deny reason of policy/reasons.ts. */
  readonly reason: string;
  /** Captured connections: the program that connected directly, or null when unknown. */
  readonly program?: string | null;
}

/** The fields of `RunResult` (run/run.ts) the report uses. */
export interface ReportableRun {
  /** The command's exit code (128+N when killed by signal N). */
  readonly exitCode: number;
  /** The signal that ended the command, if any. */
  readonly signal: string | null;
  /** Wall time of the run in milliseconds. */
  readonly durationMs: number;
  /** Every decision the proxy made during the run, in order. */
  readonly decisions: readonly ReportDecision[];
  /** The execpolicy verdict; its `decision` is reported. */
  readonly verdict?: { readonly decision: string } | null;
}

/** One blocked host, grouped by host and reason. */
export interface BlockedHost {
  /** The host. */
  readonly host: string;
  /** The deny reason. */
  readonly reason: string;
  /** Ports asked for, sorted. */
  readonly ports: readonly number[];
  /** How many connections or requests were refused. */
  readonly count: number;
}

export type { AllowedHost };

/** Decisions grouped per host: what {@linkcode summarizeDecisions} returns. */
export interface DecisionSummary {
  /** Blocked hosts, sorted by host then reason. */
  readonly blocked: readonly BlockedHost[];
  /** Allowed hosts, sorted by host (report mode's would-block ones included: they got through). */
  readonly allowed: readonly AllowedHost[];
  /** Report mode: hosts let through that the rules would refuse, sorted by host then reason. */
  readonly wouldBlock: readonly BlockedHost[];
}

/**
 * Groups decisions per host (and per reason for blocks). Pure.
 *
 * @example
 * ```ts
 * const { blocked } = summarizeDecisions([
 *   { host: "b.test", port: 80, protocol: "http", decision: "deny", reason: "not_allowed" },
 * ]);
 * // blocked = [{ host: "b.test", reason: "not_allowed", ports: [80], count: 1 }]
 * ```
 */
export function summarizeDecisions(decisions: readonly ReportDecision[]): DecisionSummary {
  const blocked = new Map<
    string,
    { host: string; reason: string; ports: Set<number>; count: number }
  >();
  const wouldBlock = new Map<
    string,
    { host: string; reason: string; ports: Set<number>; count: number }
  >();
  const allowed = new Map<
    string,
    { host: string; ports: Set<number>; protocols: Set<string>; count: number }
  >();
  const group = (into: typeof blocked, event: ReportDecision) => {
    const key = `${event.host}\u0000${event.reason}`;
    const entry = into.get(key) ??
      { host: event.host, reason: event.reason, ports: new Set<number>(), count: 0 };
    entry.ports.add(event.port);
    entry.count++;
    into.set(key, entry);
  };
  for (const event of decisions) {
    if (event.decision === "deny") {
      group(blocked, event);
    } else {
      if (event.decision === "would_block") group(wouldBlock, event);
      const entry = allowed.get(event.host) ??
        { host: event.host, ports: new Set<number>(), protocols: new Set<string>(), count: 0 };
      entry.ports.add(event.port);
      entry.protocols.add(event.protocol);
      entry.count++;
      allowed.set(event.host, entry);
    }
  }
  const byNumber = (a: number, b: number) => a - b;
  const hosts = (from: typeof blocked): BlockedHost[] =>
    [...from.values()]
      .map((b) => ({
        host: b.host,
        reason: b.reason,
        ports: [...b.ports].sort(byNumber),
        count: b.count,
      }))
      .sort((a, b) => compareText(a.host, b.host) || compareText(a.reason, b.reason));
  return {
    blocked: hosts(blocked),
    wouldBlock: hosts(wouldBlock),
    allowed: [...allowed.values()]
      .map((a) => ({
        host: a.host,
        ports: [...a.ports].sort(byNumber),
        protocols: [...a.protocols].sort(),
        count: a.count,
      }))
      .sort((a, b) => compareText(a.host, b.host)),
  };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The human sentence of a deny reason (falls back to the reason itself). */
export function reasonMessage(reason: string): string {
  return (DENY_REASONS as Record<string, { message: string } | undefined>)[reason]?.message ??
    reason;
}

function describeCount(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** Options for {@linkcode renderBlockedSummary}. */
export interface RenderBlockedSummaryOptions {
  /** Prefix of the first line; `sandbox` unless set. */
  readonly prefix?: string;
}

/**
 * The stderr summary of blocked hosts, or `""` when nothing was blocked.
 *
 * @example
 * ```ts
 * renderBlockedSummary(summarizeDecisions(decisions).blocked);
 * // sandbox: blocked 2 connections to 1 host:
 * //   b.test:80  not_allowed: Domain not in allowlist  (2 times)
 * // sandbox: to allow a host, add --allow HOST or "HOST" = "allow" under [permissions.NAME.network.domains]
 * ```
 */
export function renderBlockedSummary(
  blocked: readonly BlockedHost[],
  options: RenderBlockedSummaryOptions = {},
): string {
  if (blocked.length === 0) return "";
  const prefix = options.prefix ?? "sandbox";
  const total = blocked.reduce((sum, b) => sum + b.count, 0);
  const hosts = new Set(blocked.map((b) => b.host)).size;
  const rows = blocked.map((b) => [
    `${displayHost(b.host)}:${b.ports.join(",")}`,
    `${b.reason}: ${reasonMessage(b.reason)}`,
    b.count === 1 ? "(once)" : `(${b.count} times)`,
  ]);
  const width0 = Math.max(...rows.map((r) => r[0].length));
  const width1 = Math.max(...rows.map((r) => r[1].length));
  const lines = rows.map((r) => `  ${r[0].padEnd(width0)}  ${r[1].padEnd(width1)}  ${r[2]}`);
  const hint = blocked.some((b) => b.reason === "not_allowed")
    ? `\n${prefix}: to allow a host, add --allow HOST or "HOST" = "allow" under [permissions.NAME.network.domains]`
    : "";
  return `${prefix}: blocked ${describeCount(total, "connection")} to ${
    describeCount(hosts, "host")
  }:\n${lines.join("\n")}${hint}\n`;
}

/**
 * Report mode's stderr summary: the hosts let through that the rules would
 * refuse, and the TOML lines that would admit them. `""` when there are none.
 */
export function renderWouldBlockSummary(
  wouldBlock: readonly BlockedHost[],
  options: RenderBlockedSummaryOptions & { readonly profile?: string | null } = {},
): string {
  if (wouldBlock.length === 0) return "";
  const prefix = options.prefix ?? "sandbox";
  const hosts = new Set(wouldBlock.map((b) => b.host)).size;
  const rows = wouldBlock.map((b) =>
    `  ${displayHost(b.host)}:${b.ports.join(",")}  ${b.reason}: ${reasonMessage(b.reason)}  (${
      b.count === 1 ? "once" : `${b.count} times`
    })`
  );
  const snippet = renderAllowSnippet(wouldBlock, options.profile ?? null);
  const others = wouldBlock.filter((b) => b.reason !== "not_allowed");
  return `${prefix}: report mode: ${describeCount(hosts, "host")} would have been blocked ` +
    `(let through, logged as would_block):\n${rows.join("\n")}\n` +
    (snippet === ""
      ? ""
      : `${prefix}: to admit them, add to your profile (or run again with --merge FILE):\n${snippet}`) +
    (others.length === 0
      ? ""
      : `${prefix}: ${
        others.map((b) => `${b.host} (${b.reason})`).join(", ")
      } would need a rule or mode change, not an allow line\n`);
}

function displayHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * One line per program, host and port that connected directly (not through
 * the proxy variables) and was captured, or `""` when none did.
 *
 * @example
 * ```ts
 * renderCapturedSummary(decisions);
 * // sandbox: /usr/bin/java connected to repo.example:443 directly (captured; allowed)
 * ```
 */
export function renderCapturedSummary(
  decisions: readonly ReportDecision[],
  options: RenderBlockedSummaryOptions = {},
): string {
  const prefix = options.prefix ?? "sandbox";
  const seen = new Map<string, number>();
  for (const event of decisions) {
    if (!event.protocol.startsWith("captured-")) continue;
    const who = event.program ?? "a program";
    const verdict = event.decision === "allow" ? "allowed" : `blocked: ${event.reason}`;
    const line = `${prefix}: ${who} connected to ${displayHost(event.host)}:${event.port} ` +
      `directly (captured; ${verdict})`;
    seen.set(line, (seen.get(line) ?? 0) + 1);
  }
  return [...seen].map(([line, count]) => `${line}${count === 1 ? "" : `, ${count} times`}\n`)
    .join("");
}

/** Escapes the message part of a GitHub workflow command. */
export function escapeWorkflowData(text: string): string {
  return text.replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}

/** Escapes a property value (`title=…`) of a GitHub workflow command. */
export function escapeWorkflowProperty(text: string): string {
  return escapeWorkflowData(text).replaceAll(":", "%3A").replaceAll(",", "%2C");
}

/** At most this many annotations of one kind per run: GitHub shows no more than 10 per step. */
export const MAX_ANNOTATIONS = 10;

/**
 * One `::warning` workflow command per blocked host and reason, at most
 * {@linkcode MAX_ANNOTATIONS}: past that, the last one rolls up the rest.
 * Written to stderr, never to the command's stdout.
 *
 * @example
 * ```ts
 * renderGithubAnnotations(summary.blocked);
 * // ::warning title=sandbox blocked b.test::Blocked b.test port 80 (not_allowed: Domain not in allowlist), 2 times
 * ```
 */
export function renderGithubAnnotations(blocked: readonly BlockedHost[]): string {
  const shown = blocked.length > MAX_ANNOTATIONS ? blocked.slice(0, MAX_ANNOTATIONS - 1) : blocked;
  const lines = shown.map((b) =>
    `::warning title=${escapeWorkflowProperty(`sandbox blocked ${b.host}`)}::${
      escapeWorkflowData(
        `Blocked ${b.host} port ${b.ports.join(",")} (${b.reason}: ${reasonMessage(b.reason)}), ${
          b.count === 1 ? "once" : `${b.count} times`
        }`,
      )
    }\n`
  );
  const rest = blocked.slice(shown.length);
  if (rest.length > 0) {
    const hosts = [...new Set(rest.map((b) => b.host))];
    lines.push(
      `::warning title=${escapeWorkflowProperty("sandbox blocked more hosts")}::${
        escapeWorkflowData(
          `Blocked ${describeCount(hosts.length, "more host")} (${hosts.slice(0, 5).join(", ")}${
            hosts.length > 5 ? ", …" : ""
          }): see the step summary`,
        )
      }\n`,
    );
  }
  return lines.join("");
}

/**
 * The TOML lines that would admit the hosts refused for lack of an allow
 * rule, ready to paste under a profile (or merge with `learn --merge`).
 * Hosts refused for other reasons (a deny rule, a local address) are left
 * out: an allow line would not change those.
 */
export function renderAllowSnippet(
  blocked: readonly BlockedHost[],
  profile: string | null,
): string {
  const hosts = [...new Set(blocked.filter((b) => b.reason === "not_allowed").map((b) => b.host))]
    .sort();
  if (hosts.length === 0) return "";
  const table = `[permissions.${tomlKeyPart(profile ?? "NAME")}.network.domains]`;
  return `${table}\n${hosts.map((h) => `${JSON.stringify(h)} = "allow"`).join("\n")}\n`;
}

function tomlKeyPart(name: string): string {
  return /^[A-Za-z0-9_-]+$/.test(name) ? name : JSON.stringify(name);
}

function markdownCell(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("|", "\\|").replaceAll("`", "'").replace(
    /[\r\n]+/g,
    " ",
  );
}

/** Options for {@linkcode renderStepSummary}. */
export interface RenderStepSummaryOptions {
  /** The command that ran. */
  readonly command: readonly string[];
  /** The final exit code (after `--fail-on-block`). */
  readonly exitCode: number;
  /** Wall time of the run in milliseconds. */
  readonly durationMs: number;
  /** The profile in use, for the table name of the TOML snippet. */
  readonly profile?: string | null;
}

/**
 * The markdown appended to `$GITHUB_STEP_SUMMARY`: a heading, one line of
 * totals, a table of blocked hosts (host, ports, reason, count) and the
 * TOML lines that would admit the hosts no rule allowed.
 */
export function renderStepSummary(
  summary: DecisionSummary,
  options: RenderStepSummaryOptions,
): string {
  const allowedCount = summary.allowed.reduce((sum, a) => sum + a.count, 0);
  const blockedCount = summary.blocked.reduce((sum, b) => sum + b.count, 0);
  const head = `### sandbox: \`${markdownCell(options.command.join(" "))}\`\n\n` +
    `Exit code ${options.exitCode}, ${(options.durationMs / 1000).toFixed(1)} s; ` +
    `${describeCount(allowedCount, "connection")} allowed to ${
      describeCount(summary.allowed.length, "host")
    }, ${describeCount(blockedCount, "connection")} blocked.\n\n`;
  const reported = summary.wouldBlock.length === 0
    ? ""
    : `Report mode: ${
      describeCount(new Set(summary.wouldBlock.map((b) => b.host)).size, "host")
    } would have been blocked: ${
      summary.wouldBlock.map((b) => `\`${markdownCell(b.host)}\` (${b.reason})`).join(", ")
    }.\n\n` + (renderAllowSnippet(summary.wouldBlock, options.profile ?? null) === ""
      ? ""
      : `To enforce without breaking the job, add:\n\n\`\`\`toml\n${
        renderAllowSnippet(summary.wouldBlock, options.profile ?? null)
      }\`\`\`\n\n`);
  if (summary.blocked.length === 0) {
    return `${head}${reported}No connections were blocked.\n\n`;
  }
  const rows = summary.blocked.map((b) =>
    `| \`${markdownCell(b.host)}\` | ${b.ports.join(", ")} | ${b.reason}: ${
      markdownCell(reasonMessage(b.reason))
    } | ${b.count} |`
  );
  const snippet = renderAllowSnippet(summary.blocked, options.profile ?? null);
  const toml = snippet === ""
    ? ""
    : `To allow them, add to your profile:\n\n\`\`\`toml\n${snippet}\`\`\`\n\n`;
  return `${head}${reported}| Blocked host | Port | Reason | Count |\n| --- | --- | --- | ---: |\n${
    rows.join("\n")
  }\n\n${toml}`;
}

/** The `--json` final run report. */
export interface RunReport {
  /** The command that ran. */
  readonly command: readonly string[];
  /** The execpolicy decision (`allow`, `allow-network`, `deny`), or null when unknown. */
  readonly decision: string | null;
  /** The final exit code of `sandbox` (after `--fail-on-block`). */
  readonly exitCode: number;
  /** The command's own exit code. */
  readonly commandExitCode: number;
  /** The signal that ended the command, or null. */
  readonly signal: string | null;
  /** Wall time in milliseconds. */
  readonly durationMs: number;
  /** Whether `--fail-on-block` changed the exit code. */
  readonly failedOnBlock: boolean;
  /** Blocked hosts with counts. */
  readonly blocked: readonly BlockedHost[];
  /** Allowed hosts with counts. */
  readonly allowed: readonly AllowedHost[];
  /** Report mode: hosts let through that the rules would refuse. */
  readonly wouldBlock: readonly BlockedHost[];
}

/** Options for {@linkcode reportRun}. */
export interface ReportRunOptions {
  /** The command that ran (CMD and its arguments). */
  readonly command: readonly string[];
  /** `--json`: print the {@linkcode RunReport} as the last line of stdout. */
  readonly json?: boolean;
  /** `--fail-on-block`: any block turns a zero exit into {@linkcode FAIL_ON_BLOCK_EXIT_CODE}. */
  readonly failOnBlock?: boolean;
  /** Environment to read `GITHUB_ACTIONS` and `GITHUB_STEP_SUMMARY` from; `Deno.env` unless set. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Receives stdout text; writes to `Deno.stdout` unless set. */
  readonly stdout?: (text: string) => void;
  /** Receives stderr text; writes to `Deno.stderr` unless set. */
  readonly stderr?: (text: string) => void;
  /** Prefix of stderr lines; `sandbox` unless set (learn uses `sandbox learn`). */
  readonly prefix?: string;
  /** `--fail-fast` ended the run at a block: exit {@linkcode FAIL_ON_BLOCK_EXIT_CODE}. */
  readonly endedByFailFast?: boolean;
  /** Written before the `--json` line (`"\n"` when stdout may end mid-line); `""` unless set. */
  readonly jsonPrefix?: string;
  /** Hosts the command kept retrying with nothing else getting through (from `run/block_watch.ts`). */
  readonly spinning?: readonly SpinningHost[];
  /** The profile in use, named in the step summary's TOML snippet. */
  readonly profile?: string | null;
}

const encoder = new TextEncoder();

/**
 * Reports a finished run and returns the exit code `sandbox` should exit
 * with: the command's own code, or {@linkcode FAIL_ON_BLOCK_EXIT_CODE} when
 * `failOnBlock` is set, the command exited 0 and something was blocked.
 * A step summary that cannot be written is said on stderr and does not
 * change the exit code.
 *
 * @example
 * ```ts
 * const result = await runSandboxed(config, argv, runOptions);
 * return await reportRun(result, { command: argv, json: values.json, failOnBlock: values["fail-on-block"] });
 * ```
 */
export function reportRun(result: ReportableRun, options: ReportRunOptions): Promise<number> {
  const env = options.env ?? Deno.env.toObject();
  const stdout = options.stdout ?? ((text: string) => void writeAll(Deno.stdout, text));
  const stderr = options.stderr ?? ((text: string) => void writeAll(Deno.stderr, text));
  const prefix = options.prefix ?? "sandbox";
  const summary = summarizeDecisions(result.decisions);
  const failedOnBlock = (options.failOnBlock === true && result.exitCode === 0 &&
    summary.blocked.length > 0) || options.endedByFailFast === true;
  const exitCode = failedOnBlock ? FAIL_ON_BLOCK_EXIT_CODE : result.exitCode;

  stderr(renderCapturedSummary(result.decisions, { prefix }));
  stderr(renderBlockedSummary(summary.blocked, { prefix }));
  if (
    result.verdict?.decision === "allow-network" && result.decisions.length === 0 &&
    result.exitCode !== 0 && result.signal === null && options.endedByFailFast !== true
  ) {
    stderr(`${prefix}: ${noProxyTrafficHint(result.exitCode)}\n`);
  }
  stderr(renderWouldBlockSummary(summary.wouldBlock, { prefix, profile: options.profile ?? null }));
  for (const host of options.spinning ?? []) stderr(`${prefix}: ${formatSpinLine(host)}\n`);
  if (options.endedByFailFast === true) {
    stderr(
      `${prefix}: exit code ${FAIL_ON_BLOCK_EXIT_CODE}: --fail-fast ended the run at the first blocked connection\n`,
    );
  }
  if (failedOnBlock && options.endedByFailFast !== true) {
    stderr(
      `${prefix}: exit code ${FAIL_ON_BLOCK_EXIT_CODE} instead of 0: --fail-on-block is set and the proxy blocked ${
        describeCount(summary.blocked.reduce((sum, b) => sum + b.count, 0), "connection")
      }\n`,
    );
  }
  if (env.GITHUB_ACTIONS === "true") {
    // stderr: `sandbox run -- cmd > artifact.json` must get the command's bytes only.
    stderr(renderGithubAnnotations(summary.blocked));
    const file = env.GITHUB_STEP_SUMMARY;
    if (file !== undefined && file !== "") {
      try {
        // Never through a symlink: a command may have planted one where the runner's file was.
        writeTextNoFollow(
          file,
          renderStepSummary(summary, {
            command: options.command,
            exitCode,
            durationMs: result.durationMs,
            profile: options.profile ?? null,
          }),
          { append: true, what: "step summary" },
        );
      } catch (error) {
        const message = errorMessage(error);
        stderr(`${prefix}: Cannot append to GITHUB_STEP_SUMMARY "${file}": ${message}\n`);
      }
    }
  }
  if (options.json === true) {
    const report: RunReport = {
      command: options.command,
      decision: result.verdict?.decision ?? null,
      exitCode,
      commandExitCode: result.exitCode,
      signal: result.signal,
      durationMs: Math.round(result.durationMs),
      failedOnBlock,
      blocked: summary.blocked,
      allowed: summary.allowed,
      wouldBlock: summary.wouldBlock,
    };
    stdout((options.jsonPrefix ?? "") + JSON.stringify(report) + "\n");
  }
  return Promise.resolve(exitCode);
}

/**
 * Said when a command with network failed without a single connection
 * through the proxy: the usual cause is a program that resolves names itself
 * or connects directly, which fails inside (no DNS, no route: Node 20's
 * `fetch` reports `EAI_AGAIN`).
 */
export function noProxyTrafficHint(exitCode: number): string {
  return `the command exited ${exitCode} and made no connection through the proxy: if it ` +
    "needed the network, a program resolved a name itself or connected directly, bypassing " +
    "the proxy (Node 20's fetch fails so with EAI_AGAIN, Go and Python sockets with a name " +
    "resolution error); such programs need a client that honours HTTPS_PROXY";
}

function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
}

/**
 * `sandbox run [OPTIONS] -- CMD [ARGS…]`: parses the flags, loads the
 * effective config, runs the command with {@linkcode runSandboxed} and
 * reports what the proxy blocked with `reportRun`.
 *
 * @module
 */
import { loadEffectiveConfig } from "../profiles/load.ts";
import { runSandboxed } from "../run/run.ts";
import { parseCommandArgs, SHARED_OPTIONS, type SharedValues } from "./args.ts";
import { UsageError } from "../errors.ts";
import { type ReportDecision, reportRun, summarizeDecisions } from "../run/report.ts";
import type { EffectiveConfig } from "../profiles/types.ts";
import type { DecisionEvent } from "../proxy/decision_log.ts";
import { createBlockWatch } from "../run/block_watch.ts";
import { absoluteWritable, checkLogFile, stdoutLinePrefix } from "./run_checks.ts";
import { openWorkflowFence } from "../run/workflow_fence.ts";

/** Help text for `sandbox help run`. */
export const RUN_HELP = `Usage: sandbox run [OPTIONS] -- CMD [ARGS…]

Runs CMD under Bubblewrap (Linux): its own user, pid, ipc and network
namespaces, a read-only root, the working directory writable, empty /tmp and
/run. Its only way out is the proxy, through HTTP_PROXY / HTTPS_PROXY /
ALL_PROXY on 127.0.0.1 inside the sandbox; only allowlisted unix sockets are
reachable. Execpolicy decides first: deny (nothing runs, exit 126), allow (no
network at all) or allow-network (through the proxy).

Options:
  --config FILE            A TOML config file (repeatable)
  --profile NAME           The permissions profile to use
  --allow PATTERN          Allow a host, HOST:PORT or tls://HOST:PORT (repeatable)
  --deny PATTERN           Deny a domain (repeatable)
  --preset NAME            Add a named allowlist (repeatable)
  --mode full|limited      Method policy (limited: GET, HEAD, OPTIONS only)
  --mitm                   Terminate TLS in limited mode to check methods
  --allow-local-binding    Let the proxy reach loopback and private addresses
  --allow-unix-socket PATH Make one unix socket reachable (repeatable)
  --resolve HOST=ADDR      Resolve HOST to ADDR instead of asking DNS (repeatable)
  --rules FILE             A Codex execpolicy .rules file (repeatable)
  --log FILE               Append every proxy decision as a JSON line
  --ca-dir DIR             Where the MITM CA lives
  --dry-run                Print the plan (bwrap argv, mounts, env) and exit
  --platform linux|macos   Which platform's plan --dry-run prints
  --writable PATH          Make PATH writable inside (repeatable); created when missing
  --fail-on-block          Exit 3 instead of 0 when the proxy blocked anything
  --fail-fast              End the run at the first blocked connection (exit 3)
  --ask                    Ask on the terminal about hosts outside the allowlist
  --no-capture             Do not capture connections that bypass the proxy variables
  --json                   Machine-readable report (with --dry-run: the plan)
  --dangerously-allow-system-dirs
                           Let the working dir or a writable path be / or contain
                           /proc, /dev, /tmp, /run, /etc, /usr… (refused otherwise:
                           exit 2); the sandbox's own /proc, /dev, /tmp stay on top
  --report                 Report mode: let through what the rules would refuse
                           for host or method reasons and log it as would_block
                           (local addresses, managed denies stay refused)
  --secret VAR=HOST[,HOST…]
                           The command sees a placeholder in VAR; the proxy puts
                           the real value (the launcher's VAR) into request
                           headers to those hosts only, and refuses the
                           placeholder anywhere else (repeatable)
  --merge FILE             With --report: add allow lines for the would-block
                           hosts to the profile in FILE (comments kept)
  --receipt FILE           At exit, write the egress receipt (hosts, ports,
                           addresses, the policy's hash, the log's last hash)
  --allow-workflow-commands
                           Under GitHub Actions, let the command's own ::…::
                           workflow commands through (fenced off by default)

Each host the proxy refuses is said at once on stderr, one line per host and
reason: "sandbox: blocked CONNECT host:443 not_allowed (add --allow host)".

Exit codes: CMD's own; 128+N when CMD died of signal N; 126 when execpolicy
denied CMD or the sandbox could not start; 127 when CMD was not found; 2 for a
usage or config error; 3 when --fail-fast ended the run at a block, or when
--fail-on-block is set, CMD exited 0 and something was blocked.

Examples:
  sandbox run --preset common-dependencies -- npm ci
  sandbox run --allow registry.example --log decisions.jsonl -- npm ci
  sandbox run --mode limited --mitm --allow api.example -- ./agent-task.sh`;

const RUN_OPTIONS = {
  ...SHARED_OPTIONS,
  "dry-run": { type: "boolean" },
  platform: { type: "string" },
  "fail-on-block": { type: "boolean" },
  "fail-fast": { type: "boolean" },
  writable: { type: "string", multiple: true },
  ask: { type: "boolean" },
  "dangerously-allow-system-dirs": { type: "boolean" },
  "allow-workflow-commands": { type: "boolean" },
  "no-capture": { type: "boolean" },
  report: { type: "boolean" },
  merge: { type: "string" },
  receipt: { type: "string" },
  secret: { type: "string", multiple: true },
} as const;

/**
 * Runs `sandbox run`; returns the exit code.
 *
 * @example
 * ```ts
 * const code = await runCommand(["--allow", "example.com", "--", "curl", "https://example.com"]);
 * ```
 */
export async function runCommand(args: string[]): Promise<number> {
  const { values, rest } = parseCommandArgs("run", args, RUN_OPTIONS);
  if (rest === null || rest.length === 0) {
    throw new UsageError('Missing command: expected "sandbox run [OPTIONS] -- CMD [ARGS…]"', {
      command: "run",
    });
  }
  const platform = values.platform ?? "linux";
  if (platform !== "linux" && platform !== "macos") {
    throw new UsageError(
      `Invalid value for --platform: "${platform}": expected "linux" or "macos"`,
      {
        command: "run",
      },
    );
  }
  if (platform === "macos" && values["dry-run"] !== true) {
    throw new UsageError('"--platform macos" needs "--dry-run" on Linux: it only prints the plan', {
      command: "run",
    });
  }
  const env = Deno.env.toObject();
  const cwd = Deno.cwd();
  const flags = {
    ...values,
    writable: absoluteWritable(values.writable, cwd),
    ...(values["no-capture"] === true ? { capture: false } : {}),
  } as SharedValues;
  if (flags.log !== undefined) checkLogFile(flags.log, cwd, "run");
  const config = await loadEffectiveConfig(flags, { cwd, env });
  // Report mode's --merge target is read and checked before anything runs.
  const merge = values.merge === undefined
    ? null
    : await readMergeTarget(values.merge as string, config.network.enforcement, cwd, flags);
  for (const notice of config.notices) {
    Deno.stderr.writeSync(new TextEncoder().encode(`sandbox: ${notice}\n`));
  }
  // Without --resolve the run builds its default resolver itself, and only when it starts the
  // proxy: a run without network never loads the resolver (node:dns).
  const resolver = flags.resolve !== undefined && flags.resolve.length > 0
    ? await import("../proxy/resolver.ts").then((m) =>
      m.createResolver({ overrides: m.parseResolveFlags(flags.resolve) })
    )
    : undefined;
  const dryRun = values["dry-run"] === true;
  // The prompt's module (and the TOML writer it brings) loads only when asking.
  const ask = (config.network.ask || values.ask === true) && !dryRun
    ? await import("../run/ask.ts")
    : null;
  await using prompter = ask !== null
    ? await ask.openAskPrompter({
      env,
      command: rest,
      alwaysFile: ask.alwaysFileFor(flags.config, env),
      profile: config.profileName,
    })
    : null;
  const stderr = (text: string) => void Deno.stderr.writeSync(new TextEncoder().encode(text));
  const failFast = new AbortController();
  const watch = createBlockWatch({
    stderr,
    onFirstBlock: values["fail-fast"] === true ? () => failFast.abort() : undefined,
  });
  // Under GitHub Actions the command's output cannot issue workflow commands
  // that pass as ours (unless the user lets them through).
  const fence = dryRun || values["allow-workflow-commands"] === true
    ? null
    : openWorkflowFence(env);
  let result;
  try {
    result = await runSandboxed(config, rest, {
      onDecision: watch.onDecision,
      signal: failFast.signal,
      resolver,
      logFile: flags.log ?? null,
      askOnMiss: prompter === null ? undefined : (miss) => prompter.askOnMiss(miss),
      askCommand: prompter === null ? undefined : async (verdict) =>
        (await prompter.askCommand({
          command: rest,
          reason: verdict.commands.flatMap((c) => c.decidedBy)
            .filter((m) => m.prompt === true)
            .map((m) => `rule "${m.pattern}" from ${m.source}: ${m.justification ?? ""}`)
            .join("; "),
        })) === "allow",
      dryRun,
      platform,
      json: flags.json === true,
      caDir: flags["ca-dir"] ?? null,
      dangerouslyAllowSystemDirs: values["dangerously-allow-system-dirs"] === true,
      // The receipt is the launcher's: read-only inside while the run lasts.
      protect: values.receipt === undefined ? undefined : [values.receipt as string],
      cwd,
      env,
    });
  } finally {
    await fence?.end();
  }
  if (dryRun) return result.exitCode;
  const exitCode = await reportRun(result, {
    profile: config.profileName,
    command: rest,
    json: flags.json === true,
    failOnBlock: values["fail-on-block"] === true,
    endedByFailFast: failFast.signal.aborted,
    spinning: watch.spinning(),
    jsonPrefix: flags.json === true ? stdoutLinePrefix() : "",
    env,
  });
  if (merge !== null) await mergeWouldBlock(merge, result.decisions, { command: rest, cwd, env });
  if (values.receipt !== undefined) {
    await writeRunReceipt(values.receipt as string, config, {
      command: rest,
      exitCode,
      decisions: result.decisions,
      logFile: flags.log ?? null,
      cwd,
    });
  }
  return exitCode;
}

interface MergeTarget {
  readonly file: string;
  readonly path: string;
  readonly text: string;
  readonly profile: string | undefined;
}

async function readMergeTarget(
  file: string,
  enforcement: string | undefined,
  cwd: string,
  flags: SharedValues,
): Promise<MergeTarget> {
  if (enforcement !== "report") {
    throw new UsageError(
      '"--merge FILE" goes with report mode: add --report (or enforcement = "report" in the profile)',
      { command: "run" },
    );
  }
  const path = file.startsWith("/") ? file : `${cwd.replace(/\/$/, "")}/${file}`;
  // The TOML editor loads only here: a run without --merge keeps its small start-up graph.
  const { readMergeTarget: read } = await import("./learn.ts");
  const text = await read(file, {
    path,
    command: "run",
    profile: flags.profile,
    instead: "give an existing profile (sandbox learn --out writes a new one)",
  });
  return { file, path, text, profile: flags.profile };
}

/** Adds allow lines for the hosts report mode let through as `not_allowed` to the merge target. */
async function mergeWouldBlock(
  target: MergeTarget,
  decisions: readonly ReportDecision[],
  options: { command: readonly string[]; cwd: string; env: Record<string, string> },
): Promise<void> {
  const { mergeLearnedHosts } = await import("../profiles/learn_profile.ts");
  const { checkAndWrite } = await import("./learn.ts");
  const summary = summarizeDecisions(decisions);
  const names = new Set(
    summary.wouldBlock.filter((b) => b.reason === "not_allowed").map((b) => b.host),
  );
  const hosts = summary.allowed.filter((a) => names.has(a.host));
  const merged = mergeLearnedHosts(target.text, hosts, {
    file: target.file,
    command: options.command,
    profile: target.profile,
  });
  await checkAndWrite(merged.text, target.path, {
    profile: merged.profile,
    hosts: hosts.map((h) => h.host),
    cwd: options.cwd,
    home: options.env.HOME,
    unchanged: merged.text === target.text,
  });
  Deno.stderr.writeSync(
    new TextEncoder().encode(
      `sandbox: report mode: added ${merged.added.length} host${
        merged.added.length === 1 ? "" : "s"
      } to profile "${merged.profile}" in ${target.file}\n`,
    ),
  );
}

/** Writes `--receipt FILE` (the modules load only when asked for). */
async function writeRunReceipt(
  file: string,
  config: EffectiveConfig,
  options: {
    command: readonly string[];
    exitCode: number;
    decisions: readonly DecisionEvent[];
    logFile: string | null;
    cwd: string;
  },
): Promise<void> {
  const { buildReceipt, policyHash, writeReceipt } = await import("../run/receipt.ts");
  const absolute = (path: string) =>
    path.startsWith("/") ? path : `${options.cwd.replace(/\/$/, "")}/${path}`;
  let log: { path: string; lines: number; last_hash: string } | null = null;
  if (options.logFile !== null) {
    const { verifyDecisionLog } = await import("../proxy/decision_log.ts");
    const verified = await verifyDecisionLog(await Deno.readFile(absolute(options.logFile)));
    log = { path: absolute(options.logFile), lines: verified.lines, last_hash: verified.lastHash };
  }
  const receipt = buildReceipt(config, {
    command: options.command,
    exitCode: options.exitCode,
    decisions: options.decisions,
    policySha256: await policyHash(config),
    log,
  });
  writeReceipt(absolute(file), receipt);
}

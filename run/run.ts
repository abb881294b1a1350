/**
 * `runSandboxed()`: one sandboxed run from start to finish. Decides the
 * command by execpolicy, starts the proxy on a unix socket when the command
 * gets the network, runs it under Bubblewrap with the bridge, and returns
 * what happened. `sandbox run`, `sandbox learn` and CI reporting call it.
 *
 * @module
 */
import { otlpFromEnv } from "../proxy/otlp.ts";
import { SandboxError, UsageError } from "../errors.ts";
import {
  approvePrompts,
  bindNetwork,
  decideCommandLazily,
  deniedOnlyByPrompts,
  formatExecDenial,
} from "../execpolicy/mod.ts";
import type { ExecVerdict } from "../execpolicy/decide.ts";
import type { DecisionEvent, ProxyProtocol } from "../proxy/decision_log.ts";
import type { Resolver } from "../proxy/resolver.ts";
import type { RunningProxy } from "../proxy/server.ts";
import type { EffectiveConfig } from "../profiles/types.ts";
import { checkPlantedSymlinks } from "../sandbox/build_plan.ts";
import { buildBwrapArgs } from "../sandbox/bwrap_args.ts";
import { filterEnv } from "../sandbox/env.ts";
import { prepareSecrets } from "./secrets.ts";
import { runLinuxPlan } from "../sandbox/linux.ts";
import type { SandboxPlan } from "../sandbox/plan.ts";
import { preflightLinux, resolveCommand } from "../sandbox/preflight.ts";
import { createRunDir, type RunDir, runDirBase, runDirPlaceholder } from "../sandbox/run_dir.ts";
import { prepareHostPaths } from "../sandbox/tool_homes.ts";
import { isUnder } from "../sandbox/unix_sockets.ts";
import { selfInvocation } from "../self.ts";
import { prepareRun, writeRunFiles } from "./prepare.ts";

/** The execpolicy verdict carried in a {@linkcode RunResult}. */
export type RunVerdict = ExecVerdict;

/** Options for {@linkcode runSandboxed}. */
export interface RunOptions {
  /** How the proxy resolves names (`--resolve` overrides first); default: the system resolver. */
  readonly resolver?: Resolver;
  /** Append every decision to this file as JSON lines. */
  readonly logFile?: string | null;
  /** Ask before a command that only execpolicy `prompt` rules deny; true runs it (ask mode). */
  readonly askCommand?: (verdict: ExecVerdict) => Promise<boolean>;
  /** Turn an allowlist miss into a question (ask mode). */
  readonly askOnMiss?: (
    miss: { host: string; port: number; protocol: ProxyProtocol },
  ) => Promise<"allow" | "deny">;
  /** Called for every proxy decision as it happens. */
  readonly onDecision?: (event: DecisionEvent) => void;
  /** Variables added to the command's environment last. */
  readonly extraEnv?: Readonly<Record<string, string>>;
  /** Print the plan instead of running (exit code 0, nothing started). */
  readonly dryRun?: boolean;
  /** Which platform's plan `dryRun` prints (default `linux`). */
  readonly platform?: "linux" | "macos";
  /** `dryRun` prints JSON instead of text. */
  readonly json?: boolean;
  /** `--ca-dir`: where the MITM CA lives. */
  readonly caDir?: string | null;
  /** Working directory (default `Deno.cwd()`). */
  readonly cwd?: string;
  /** `--dangerously-allow-system-dirs`: see `BuildSandboxPlanOptions.dangerouslyAllowSystemDirs`. */
  readonly dangerouslyAllowSystemDirs?: boolean;
  /** Files the caller writes after the run (a learned profile): read-only inside while it lasts. */
  readonly protect?: readonly string[];
  /** The launcher's environment (default `Deno.env.toObject()`). */
  readonly env?: Readonly<Record<string, string>>;
  /** Ends the run early (`--fail-fast`): the sandbox is killed. */
  readonly signal?: AbortSignal;
  /** Receives the dry-run plan; `Deno.stdout` unless set. */
  readonly stdout?: (text: string) => void;
  /** Receives the launcher's own messages (an execpolicy denial, a bridge that died); `Deno.stderr` unless set. */
  readonly stderr?: (text: string) => void;
}

/** What a run did. */
export interface RunResult {
  /** The command's exit code; 128+N when it died of signal N; 126 when execpolicy denied it. */
  readonly exitCode: number;
  /** Name of the signal that ended the command, or null. */
  readonly signal: string | null;
  /** Wall time of the run in milliseconds. */
  readonly durationMs: number;
  /** Every decision the proxy made, in order. */
  readonly decisions: DecisionEvent[];
  /** The execpolicy verdict for the command. */
  readonly verdict: RunVerdict;
}

export { BRIDGE_PORTS } from "./prepare.ts";

const encoder = new TextEncoder();

/**
 * Runs `argv` in the sandbox described by `config` and returns its result.
 * Execpolicy decides first: `deny` starts nothing (exit code 126, the
 * reason on stderr); `allow` runs with no network at all (no proxy, no
 * bridge); `allow-network` runs with the proxy. Throws
 * {@linkcode SandboxError} when the sandbox cannot start (`bwrap_missing`,
 * `userns_disabled`, `command_not_found`, …) and {@linkcode UsageError}
 * when `argv` is empty.
 *
 * @example
 * ```ts
 * const result = await runSandboxed(config, ["npm", "ci"], {});
 * console.log(result.exitCode, result.decisions.filter((d) => d.decision === "deny"));
 * ```
 */
export async function runSandboxed(
  config: EffectiveConfig,
  argv: readonly string[],
  options: RunOptions,
): Promise<RunResult> {
  const startedAt = performance.now();
  if (argv.length === 0) {
    throw new UsageError('Missing command: expected "sandbox run [OPTIONS] -- CMD [ARGS…]"', {
      command: "run",
    });
  }
  const stderr = options.stderr ??
    ((text: string) => void Deno.stderr.writeSync(encoder.encode(text)));
  const stdout = options.stdout ??
    ((text: string) => void Deno.stdout.writeSync(encoder.encode(text)));
  const launcherEnv = options.env ?? Deno.env.toObject();
  // Secrets: the sandbox is built from an environment without their real values; the command
  // gets placeholders (run/secrets.ts), the proxy the pairs.
  const prepared = (config.secrets?.length ?? 0) > 0 ||
      (config.network.requestRules ?? []).some((r) => r.injectHeaders.length > 0)
    ? prepareSecrets(config, launcherEnv)
    : null;
  const env: Readonly<Record<string, string>> = prepared?.env ?? launcherEnv;
  const extraEnv = prepared === null
    ? options.extraEnv
    : { ...options.extraEnv, ...prepared.placeholders };
  const hasSecrets = (prepared?.proxy.bindings.length ?? 0) > 0;
  const cwd = options.cwd ?? Deno.cwd();
  let verdict = await decideCommandLazily(config.execpolicy, argv, {
    networkEnabled: config.network.enabled,
  });
  if (
    config.execpolicy !== null && deniedOnlyByPrompts(verdict) &&
    options.askCommand !== undefined && await options.askCommand(verdict)
  ) {
    // Approved: the prompt rules allow for this run, nested calls included (the shims).
    const approved = approvePrompts(config.execpolicy, config.network.enabled);
    config = { ...config, execpolicy: approved };
    verdict = await decideCommandLazily(approved, argv, { networkEnabled: config.network.enabled });
  }
  const decisions: DecisionEvent[] = [];
  const result = (exitCode: number, signal: string | null): RunResult => ({
    exitCode,
    signal,
    durationMs: performance.now() - startedAt,
    decisions,
    verdict,
  });
  if (verdict.decision === "deny") {
    stderr(`sandbox: ${formatExecDenial(verdict)}\n`);
    return result(126, null);
  }
  const withNetwork = verdict.decision === "allow-network" && config.network.enabled;

  // The dry run and the real run plan with the same options; only the run dir differs.
  const planFor = (runDir: string) =>
    prepareRun(config, argv, {
      runDir,
      cwd,
      env,
      network: withNetwork,
      extraEnv,
      secrets: hasSecrets,
      dangerouslyAllowSystemDirs: options.dangerouslyAllowSystemDirs,
      logFile: options.logFile,
      caDir: options.caDir,
      protect: options.protect,
    });

  if (options.dryRun === true) {
    // Where a real run would make it (never under TMPDIR): the plan shows the same masks.
    const plan = await planFor(runDirPlaceholder({ base: runDirBase(env, Deno.uid() ?? 0) }));
    stdout(await renderDryRun(plan.sandbox, { ...options, env }));
    return result(0, null);
  }

  // The proxy's modules start loading now, while the sandbox is planned: their reads overlap
  // that work instead of following it.
  const proxyModules = withNetwork
    ? Promise.all([
      import("../proxy/server.ts"),
      import("../proxy/upstream.ts"),
      import("../proxy/resolver.ts"),
    ])
    : null;
  proxyModules?.catch(() => {});
  const uid = Deno.uid() ?? 0;
  const { bwrap, setsid, nsenter, unshare } = await preflightLinux({
    env,
    uid,
    writableAreas: [cwd, ...config.filesystem.writable],
  });
  await checkCommand(argv[0], { env: filterEnv(env, config.env), cwd });
  checkPlantedSymlinks(config, { cwd });

  await using runDir: RunDir = await createRunDir({ base: runDirBase(env, uid) });
  // The proxy starts while bwrap and the bridge start (see runLinuxPlan's beforeCommand).
  let proxyStarting: Promise<RunningProxy> | null = null;
  try {
    const plan = await planFor(runDir.path);
    const mitm = plan.mitm === null ? null : await loadMitm(config, options.caDir ?? null, env);
    await writeRunFiles(plan, { caCertPem: mitm?.ca.certPem });
    checkVisible(plan.sandbox, argv[0], cwd);
    prepareHostPaths(plan.sandbox, {
      uid,
      onCreated: (path) =>
        stderr(`sandbox: created "${path}" (a writable path that did not exist)\n`),
    });
    const proxySocket = plan.proxySocket;
    // Loaded here, not at the top: a run without network never needs the proxy's code.
    const startProxyNow = proxySocket === null || proxyModules === null ? null : async () => {
      const [{ startProxy }, { upstreamProxyFromEnv }, { createResolver }] = await proxyModules;
      return await startProxy({
        // A verdict bound to hosts narrows the proxy to them (deny rules stay).
        config: verdict.hosts === null
          ? config
          : { ...config, network: bindNetwork(config.network, verdict.hosts) },
        resolver: options.resolver ?? createResolver(),
        http: null,
        socks: null,
        unixPath: proxySocket,
        captureUnixPath: plan.capture?.socket ?? null,
        logFile: options.logFile ?? null,
        otlp: otlpFromEnv(options.env ?? Deno.env.toObject()),
        command: argv,
        onDecision: (event) => {
          decisions.push(event);
          options.onDecision?.(event);
        },
        askOnMiss: options.askOnMiss,
        mitm: mitm?.handler ?? null,
        sandboxLoopback: true,
        upstreamProxy: upstreamProxyFromEnv(env),
        secrets: hasSecrets ? prepared!.proxy : null,
        env: (name) => launcherEnv[name],
      });
    };
    const ended = await runLinuxPlan(plan.sandbox, {
      bwrap,
      setsid,
      nsenter,
      unshare,
      uid,
      self: bridgeInvocation(),
      bridgeEnv: env as Record<string, string>,
      signal: options.signal,
      // The run goes on (the command may not need the network again) and ends with its code.
      onBridgeStopped: (how) =>
        stderr(
          `sandbox: The network bridge stopped (${how}): connections from the command fail from now on\n`,
        ),
      beforeCommand: async () => {
        if (startProxyNow === null) return;
        proxyStarting = startProxyNow();
        await proxyStarting;
      },
      // As root the launcher listens inside the sandbox itself and serves the proxy in-process.
      sink: () =>
        proxyStarting ??
          Promise.reject(new SandboxError("sandbox_failed", "The proxy was not started")),
    });
    return result(ended.exitCode, ended.signal);
  } finally {
    const proxy = await (proxyStarting as Promise<RunningProxy> | null)?.catch(() => null);
    await proxy?.close();
  }
}

/**
 * How the launcher starts the bridge. Under `deno run` it adds, as the
 * `sandbox` task in deno.json does: `--no-config` (the bridge needs no npm
 * package; skipping package.json, the lockfile and node_modules checks
 * starts it sooner), `--unstable-lazy-dynamic-imports` (Deno would
 * otherwise read every module `main.ts` can import before running the
 * bridge's few: ~4 ms) and a small young generation (keeps a relay of many
 * connections small without costing throughput).
 */
function bridgeInvocation(): readonly string[] {
  const { kind, argv } = selfInvocation();
  if (kind !== "script" || argv[1] !== "run") return argv;
  return [
    argv[0],
    "run",
    "--no-config",
    "--unstable-lazy-dynamic-imports",
    "--v8-flags=--max-semi-space-size=2",
    // The DNS stub of transparent capture listens on UDP (Deno.listenDatagram).
    "--unstable-net",
    ...argv.slice(2),
  ];
}

async function checkCommand(
  name: string,
  options: { env: Readonly<Record<string, string>>; cwd: string },
): Promise<void> {
  const found = await resolveCommand(name, { path: options.env.PATH, cwd: options.cwd });
  if (found.kind === "not_found") {
    throw new SandboxError("command_not_found", `Command not found: "${name}"`);
  }
  if (found.kind === "not_executable") {
    throw new SandboxError(
      "sandbox_failed",
      `Cannot run "${name}": "${found.path}" is not an executable file`,
    );
  }
}

/** A command under a directory the sandbox empties cannot be found inside: say so before starting. */
function checkVisible(plan: SandboxPlan, name: string, cwd: string): void {
  if (!name.includes("/")) return;
  const path = name.startsWith("/") ? name : `${cwd}/${name}`;
  const linux = plan.linux;
  if (linux === undefined) return;
  const exposed = [plan.cwd, ...plan.writable, ...plan.extraBinds.map((b) => b.target)];
  const hiddenBy = [...linux.emptyDirs, ...linux.hiddenDirs].find((dir) => isUnder(path, dir));
  if (hiddenBy !== undefined && !exposed.some((dir) => isUnder(path, dir))) {
    throw new SandboxError(
      "command_not_found",
      `Command not found: "${name}": "${hiddenBy}" is an empty directory inside the sandbox`,
    );
  }
}

/** The MITM CA and the tunnel handler that uses it (loaded only when the plan has MITM). */
async function loadMitm(
  config: EffectiveConfig,
  caDir: string | null,
  env: Readonly<Record<string, string>>,
) {
  const { prepareMitm } = await import("../proxy/mitm.ts");
  return await prepareMitm(config, { caDir, env });
}

async function renderDryRun(
  plan: SandboxPlan,
  options: RunOptions & { env: Readonly<Record<string, string>> },
): Promise<string> {
  const env = describeEnv(plan.env, options.env);
  if (options.platform === "macos") {
    const { renderSeatbeltProfile } = await import("../sandbox/seatbelt.ts");
    const { buildSandboxExecArgv, formatSeatbeltDryRun } = await import("../sandbox/macos.ts");
    if (options.json === true) {
      const { profile, params } = renderSeatbeltProfile(plan);
      return JSON.stringify({
        platform: "macos",
        argv: buildSandboxExecArgv(plan),
        profile,
        params,
        env,
      }) + "\n";
    }
    return formatSeatbeltDryRun(plan) + formatEnv(env);
  }
  const argv = ["bwrap", ...buildBwrapArgs(plan)];
  if (options.json === true) {
    return JSON.stringify({
      platform: "linux",
      argv,
      env,
      network: plan.network,
      unixSockets: plan.unixSockets,
      mounts: plan.linux,
      toolHomes: plan.toolHomes ?? [],
    }) + "\n";
  }
  const lines = ["# bwrap argv (one argument per line):", ...argv.map((a) => JSON.stringify(a))];
  lines.push(
    "# network:",
    plan.network.kind === "none"
      ? "none (empty network namespace, no proxy)"
      : `proxy via bridge on 127.0.0.1:${plan.network.httpPort} (HTTP) and :${plan.network.socksPort} (SOCKS5) -> ${plan.network.proxySocket}`,
  );
  const capture = plan.network.kind === "none" ? null : plan.network.capture ?? null;
  if (capture != null) {
    const literals = capture.addresses ?? [];
    lines.push(
      `capture: ports ${capture.ports.join(", ")} of every looked-up name${
        literals.length === 0 ? "" : ` and of ${literals.join(", ")}`
      } (443 TLS, 80 HTTP, a port a tls:// rule marks TLS, others plain tunnels)`,
    );
  }
  lines.push("# tool homes (sandbox home -> default path, writable, never read outside):");
  for (const home of plan.toolHomes ?? []) {
    lines.push(
      home.scratch === undefined
        ? `${home.source} -> ${home.target}`
        : `(throwaway view of ${home.source}: ${home.scratch.entries.length} links on a tmpfs) -> ${home.target}`,
    );
  }
  return lines.join("\n") + "\n" + formatEnv(env);
}

/** The command's environment for printing: values the launcher set, names only for inherited ones (they may be secrets). */
function describeEnv(
  env: Readonly<Record<string, string>>,
  launcherEnv: Readonly<Record<string, string>>,
): { set: Record<string, string>; inherited: string[] } {
  const set: Record<string, string> = {};
  const inherited: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (launcherEnv[name] === env[name]) inherited.push(name);
    else set[name] = env[name];
  }
  return { set, inherited };
}

function formatEnv(env: { set: Record<string, string>; inherited: string[] }): string {
  const lines = ["# environment set by sandbox:"];
  for (const [name, value] of Object.entries(env.set)) {
    lines.push(`${name}=${JSON.stringify(value)}`);
  }
  lines.push("# environment passed through (values not shown):", env.inherited.join(" "));
  return lines.join("\n") + "\n";
}

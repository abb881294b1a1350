/**
 * `prepareRun()`: the whole plan of one sandboxed run — the sandbox plan
 * that the bwrap argv and the Seatbelt profile are rendered from, with the
 * bridge's network, the execpolicy shims and their binds, the MITM CA trust
 * (bundle path and environment) and the command's environment. The real
 * run and `--dry-run` both build it here, so what the dry run prints is what
 * the real run mounts.
 *
 * Building the plan reads the host (PATH dirs for shims, the socket table,
 * path kinds) but writes nothing. A real run then writes the files the plan
 * names with {@linkcode writeRunFiles}; a dry run prints it.
 *
 * @module
 */
import { SandboxError } from "../errors.ts";
import { planShims, type ShimPlan, writeShims } from "../execpolicy/mod.ts";
import type { EffectiveConfig } from "../profiles/types.ts";
import { buildSandboxPlan, collectHostFacts, type PlanNetwork } from "../sandbox/build_plan.ts";
import { filterEnv } from "../sandbox/env.ts";
import type { CapturePlan, SandboxPlan } from "../sandbox/plan.ts";
import { openNoFollow } from "../safe_file.ts";
import { compileDomainPattern, type DomainPattern, isPlainNamePattern } from "../policy/pattern.ts";
import { CAPTURE_DNS_ADDRESS, uncapturableAddress } from "../sandbox/capture.ts";
import { selfInvocation } from "../self.ts";
import { guardedPaths } from "./guarded.ts";

/** The loopback ports the bridge listens on inside the sandbox (its network namespace is empty). */
export const BRIDGE_PORTS = Object.freeze({ httpPort: 3128, socksPort: 1080 });

/** Options for {@linkcode prepareRun}. */
export interface PrepareRunOptions {
  /** The run's private dir: a real one, or `runDirPlaceholder()` for a dry run. */
  readonly runDir: string;
  /** The run has secrets bound to hosts: their tunnels are terminated (needs the CA). */
  readonly secrets?: boolean;
  /** Working directory of the command (absolute). */
  readonly cwd: string;
  /** The launcher's environment. */
  readonly env: Readonly<Record<string, string>>;
  /** The command gets the proxy (execpolicy said `allow-network` and the config enables the network). */
  readonly network: boolean;
  /** Variables added to the command's environment last. */
  readonly extraEnv?: Readonly<Record<string, string>>;
  /** `--dangerously-allow-system-dirs`: see `BuildSandboxPlanOptions.dangerouslyAllowSystemDirs`. */
  readonly dangerouslyAllowSystemDirs?: boolean;
  /** `--log FILE`: kept read-only inside while the run lasts (see run/guarded.ts). */
  readonly logFile?: string | null;
  /** `--ca-dir DIR`: hidden inside, like the default CA directory. */
  readonly caDir?: string | null;
  /** More files the caller writes after the run (a learned profile): read-only inside. */
  readonly protect?: readonly string[];
}

/** The plan of one run; see {@linkcode prepareRun}. */
export interface RunPlan {
  /** What the platform backends run: `buildBwrapArgs(sandbox)`, `renderSeatbeltProfile(sandbox)`. */
  readonly sandbox: SandboxPlan;
  /** The proxy's unix socket in the run dir, or null without network. */
  readonly proxySocket: string | null;
  /** Transparent capture (the bridge's DNS stub and listeners), or null: off or no network. */
  readonly capture: CapturePlan | null;
  /** Capture on: the sandbox's resolv.conf, still to write into the run dir. */
  readonly resolvConf: { readonly path: string; readonly text: string } | null;
  /** MITM on: where the CA bundle the command trusts goes (its variables are in `sandbox.env`). */
  readonly mitm: { readonly bundlePath: string } | null;
  /** The execpolicy shims: their binds are in `sandbox.extraBinds`, their files still to write. */
  readonly shims: ShimPlan;
  /** `--log FILE`, absolute: created (never through a symlink) before the sandbox starts. */
  readonly logFile: string | null;
}

/**
 * Builds the plan of one run of `argv` under `config`. Reads the host but
 * writes nothing.
 *
 * @example
 * ```ts
 * const plan = await prepareRun(config, ["npm", "ci"], { runDir, cwd, env, network: true });
 * const argv = ["bwrap", ...buildBwrapArgs(plan.sandbox)];
 * ```
 */
export async function prepareRun(
  config: EffectiveConfig,
  argv: readonly string[],
  options: PrepareRunOptions,
): Promise<RunPlan> {
  const { runDir, cwd, env } = options;
  const extraEnv: Record<string, string> = {};
  const extraBinds: { source: string; target: string }[] = [];
  const readOnly: string[] = [];
  let network: PlanNetwork | null = null;
  let mitm: RunPlan["mitm"] = null;
  let proxySocket: string | null = null;
  let capture: CapturePlan | null = null;
  let resolvConf: RunPlan["resolvConf"] = null;
  if (options.network) {
    proxySocket = `${runDir}/proxy.sock`;
    if (config.network.capture !== false) {
      capture = capturePlan(config, `${runDir}/capture.sock`);
      resolvConf = { path: `${runDir}/resolv.conf`, text: RESOLV_CONF };
      extraBinds.push({ source: resolvConf.path, target: resolvConfTarget() });
    }
    network = { ...BRIDGE_PORTS, proxySocket, capture };
    // TLS is terminated in limited mode (with `mitm`), and in any mode for hosts with request
    // rules or bound secrets (only those hosts' tunnels are terminated; see proxy/http_proxy.ts).
    if (
      (config.network.mitm && config.network.mode === "limited") ||
      (config.network.requestRules?.length ?? 0) > 0 || options.secrets === true
    ) {
      // Loaded only here: ca_trust brings node:tls and node-forge, which a run without MITM never needs.
      const { CA_BUNDLE_FILE, caTrustEnv } = await import("../sandbox/ca_trust.ts");
      const bundlePath = `${runDir.replace(/\/+$/, "")}/${CA_BUNDLE_FILE}`;
      mitm = { bundlePath };
      Object.assign(extraEnv, caTrustEnv(bundlePath));
      extraBinds.push({ source: bundlePath, target: bundlePath });
    }
  }
  Object.assign(extraEnv, options.extraEnv ?? {});
  let shims: ShimPlan = { binds: [], files: [] };
  if (config.execpolicy !== null) {
    // Deny rules also hold for programs started inside the sandbox: shims over them. A
    // conditional shim runs this program again inside, so its files must be readable there
    // even when they live under /tmp (a clone or a download there is common).
    const self = selfInvocation();
    shims = await planShims(config.execpolicy, {
      runDir,
      pathDirs: (filterEnv(env, config.env).PATH ?? "").split(":"),
      self,
    });
    extraBinds.push(...shims.binds);
    if (shims.binds.length > 0) readOnly.push(...self.readPaths);
  }
  // The launcher's own paths: config files, the log, runner files and its installation read-only
  // inside, the CA hidden.
  const guarded = guardedPaths(config, {
    env,
    cwd,
    logFile: options.logFile,
    caDir: options.caDir,
    extra: options.protect,
  });
  const viewed: EffectiveConfig = {
    ...config,
    filesystem: {
      ...config.filesystem,
      denyRead: [...new Set([...config.filesystem.denyRead, ...guarded.hide])],
    },
  };
  const host = await collectHostFacts(viewed, { env, runDir, cwd });
  const sandbox = buildSandboxPlan(viewed, argv, {
    protect: guarded.protect,
    cwd,
    env,
    runDir,
    host,
    network,
    extraBinds,
    extraEnv,
    readOnly,
    dangerouslyAllowSystemDirs: options.dangerouslyAllowSystemDirs,
  });
  const logFile = options.logFile ? absolutePath(options.logFile, cwd) : null;
  return { sandbox, proxySocket, capture, resolvConf, mitm, shims, logFile };
}

const RESOLV_CONF = "# sandbox: every name gets a synthetic address; the proxy decides by name\n" +
  `nameserver ${CAPTURE_DNS_ADDRESS}\n`;

/**
 * What transparent capture takes: ports 80 (plain HTTP) and 443 (TLS), and
 * every port an allow rule names (`host:PORT`; a plain tunnel unless a
 * `tls://` rule marks it, which the proxy looks up); and the literal
 * addresses allow rules name (`203.0.113.7:5432`, `[2001:db8::7]`), which
 * the bridge puts on the sandbox's loopback, except those it must never take
 * (loopback, the synthetic range: see `uncapturableAddress`).
 *
 * @example
 * ```ts
 * capturePlan(config, "/run/x/capture.sock").addresses; // ["203.0.113.7"]
 * ```
 */
export function capturePlan(config: EffectiveConfig, socket: string): CapturePlan {
  const ports = new Set([80, 443]);
  const addresses = new Set<string>();
  for (const rule of config.network.domains) {
    // A plain name pattern (nearly all of a large allowlist) names neither a port nor an
    // address: it is not compiled here. A port or an IPv6 address needs a colon and an IPv4
    // address ends in a digit, so most patterns are passed over without even the name check.
    if (rule.action !== "allow" || !mayNamePortOrAddress(rule.pattern)) continue;
    if (isPlainNamePattern(rule.pattern, "allow")) continue;
    let pattern: DomainPattern;
    try {
      pattern = compileDomainPattern(rule.pattern, "allow");
    } catch {
      continue; // The proxy refuses to start on a bad rule; nothing to capture for it.
    }
    if (pattern.port != null) ports.add(pattern.port);
    if (
      pattern.kind === "address" && pattern.address.zone === null &&
      uncapturableAddress(pattern.address.canonical) === null
    ) {
      addresses.add(pattern.address.canonical);
    }
  }
  return {
    socket,
    ports: [...ports].sort((a, b) => a - b),
    tlsPorts: [443],
    httpPorts: [80],
    addresses: [...addresses],
  };
}

/** False only for a pattern that can carry neither a port nor an IP address (no colon, no final digit). */
function mayNamePortOrAddress(pattern: string): boolean {
  if (pattern.includes(":")) return true;
  let end = pattern.length;
  while (end > 0 && pattern.charCodeAt(end - 1) === 0x2e) end--; // trailing dots
  const last = pattern.charCodeAt(end - 1);
  return last >= 0x30 && last <= 0x39;
}

/**
 * Where the sandbox's resolv.conf is bound. When the host's /etc/resolv.conf
 * is a symlink (systemd-resolved), onto its target, which bwrap creates in
 * the sandbox's empty /run.
 */
function resolvConfTarget(): string {
  const target = "/etc/resolv.conf";
  try {
    if (Deno.lstatSync(target).isSymlink) return Deno.realPathSync(target);
  } catch {
    // Missing or dangling: bind over the name itself.
  }
  return target;
}

/** Options for {@linkcode writeRunFiles}. */
export interface WriteRunFilesOptions {
  /** The MITM CA's certificate (PEM); needed when the plan has `mitm`. */
  readonly caCertPem?: string;
}

/**
 * Writes the files a real run's plan names into its run dir: the execpolicy
 * shims and, with MITM, the CA bundle. Throws {@linkcode SandboxError}
 * (`ca_error`) when the plan needs a bundle and no certificate is given.
 *
 * @example
 * ```ts
 * await writeRunFiles(plan, { caCertPem: ca.certPem });
 * ```
 */
export async function writeRunFiles(
  plan: RunPlan,
  options: WriteRunFilesOptions = {},
): Promise<void> {
  if (plan.mitm !== null) {
    if (options.caCertPem === undefined) {
      throw new SandboxError("ca_error", "Cannot write the CA bundle: no MITM CA certificate");
    }
    const { writeCaBundle } = await import("../sandbox/ca_trust.ts");
    const written = await writeCaBundle(plan.sandbox.runDir, options.caCertPem);
    if (written !== plan.mitm.bundlePath) {
      throw new SandboxError(
        "ca_error",
        `Cannot write the CA bundle: it went to "${written}", the plan binds "${plan.mitm.bundlePath}"`,
      );
    }
  }
  await writeShims(plan.shims);
  // The log exists before bwrap starts, so that the plan's read-only bind over it takes hold.
  if (plan.logFile !== null) {
    openNoFollow(plan.logFile, { append: true, what: "decision log" }).close();
  }
  if (plan.resolvConf !== null) {
    // createNew: never through a planted name (the run dir is ours alone anyway).
    await Deno.writeTextFile(plan.resolvConf.path, plan.resolvConf.text, {
      mode: 0o644,
      createNew: true,
    });
  }
}

function absolutePath(path: string, cwd: string): string {
  return path.startsWith("/") ? path : `${cwd.replace(/\/$/, "")}/${path}`;
}

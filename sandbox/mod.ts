/**
 * The sandbox: the platform-neutral plan, the Linux backend (Bubblewrap, the
 * bridge into its network namespace, unix socket masking) and the macOS
 * Seatbelt profile. Running a command is one floor up, in `run/`.
 *
 * @module
 */
export type { LinuxPlanDetails, NetworkPlan, SandboxPlan, UnixSocketPlan } from "./plan.ts";
export {
  allowedSocketRules,
  buildSandboxPlan,
  collectHostFacts,
  RUNTIME_DIRS,
} from "./build_plan.ts";
export type {
  BuildSandboxPlanOptions,
  CollectHostFactsOptions,
  HostFacts,
  PathKind,
  PlanNetwork,
} from "./build_plan.ts";
export { buildBwrapArgs } from "./bwrap_args.ts";
export type { BwrapArgsOptions, BwrapFds } from "./bwrap_args.ts";
export { renderSeatbeltProfile, seatbeltPathForms } from "./seatbelt.ts";
export type { RenderSeatbeltOptions, SeatbeltProfile } from "./seatbelt.ts";
export { assertSeatbeltProfile, checkSeatbeltProfile } from "./seatbelt_check.ts";
export type { CheckSeatbeltOptions, SeatbeltProblem } from "./seatbelt_check.ts";
export {
  buildSandboxExecArgv,
  canonicalizePlanForMacos,
  formatSeatbeltDryRun,
  parseSandboxDenial,
  runOnMacos,
  SANDBOX_EXEC,
} from "./macos.ts";
export type {
  BuildSandboxExecOptions,
  MacosRunResult,
  RunOnMacosOptions,
  SandboxViolation,
} from "./macos.ts";
export { BRIDGE_HOST, buildChildEnv, filterEnv, PROXY_ENV_NAMES, proxyEnv } from "./env.ts";
export type { BuildChildEnvOptions, ProxyPorts } from "./env.ts";
export {
  isUnder,
  listHostSocketPaths,
  parseProcNetUnix,
  resolveSocketPath,
} from "./unix_sockets.ts";
export type {
  ListHostSocketPathsOptions,
  ResolvedSocket,
  SocketListIdentity,
} from "./unix_sockets.ts";
export { buildSeccompFilter, currentSeccompArch } from "./seccomp.ts";
export type { SeccompArch } from "./seccomp.ts";
export { runLinuxPlan } from "./linux.ts";
export type { LinuxRunOptions, LinuxRunResult } from "./linux.ts";
export { preflightLinux, resolveCommand, userNamespaceProblem } from "./preflight.ts";
export type {
  PreflightOptions,
  PreflightResult,
  ResolveCommandOptions,
  ResolvedCommand,
} from "./preflight.ts";
export { startBridge } from "./bridge.ts";
export type { BridgeListenAddress, BridgeOptions, RunningBridge } from "./bridge.ts";
export { createRunDir, RUN_DIR_PREFIX, sweepStaleRunDirs } from "./run_dir.ts";
export type { CreateRunDirOptions, RunDir, SweepOptions } from "./run_dir.ts";
export { CA_BUNDLE_FILE, CA_TRUST_ENV_NAMES, caTrustEnv, writeCaBundle } from "./ca_trust.ts";
export type { WriteCaBundleOptions } from "./ca_trust.ts";

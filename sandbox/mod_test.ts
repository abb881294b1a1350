import assert from "node:assert/strict";
import * as mod from "./mod.ts";

// The public surface is pinned: a change to it is a change to the library's
// contract and must be made on purpose. Internals (parser buffers, relay
// helpers) stay out.
Deno.test("sandbox/mod.ts exports exactly its pinned public surface", () => {
  assert.deepEqual(Object.keys(mod).sort(), [
    "BRIDGE_HOST",
    "CA_BUNDLE_FILE",
    "CA_TRUST_ENV_NAMES",
    "PROXY_ENV_NAMES",
    "RUNTIME_DIRS",
    "RUN_DIR_PREFIX",
    "SANDBOX_EXEC",
    "allowedSocketRules",
    "assertSeatbeltProfile",
    "buildBwrapArgs",
    "buildChildEnv",
    "buildSandboxExecArgv",
    "buildSandboxPlan",
    "buildSeccompFilter",
    "caTrustEnv",
    "canonicalizePlanForMacos",
    "checkSeatbeltProfile",
    "collectHostFacts",
    "createRunDir",
    "currentSeccompArch",
    "filterEnv",
    "formatSeatbeltDryRun",
    "isUnder",
    "listHostSocketPaths",
    "parseProcNetUnix",
    "parseSandboxDenial",
    "preflightLinux",
    "proxyEnv",
    "renderSeatbeltProfile",
    "resolveCommand",
    "resolveSocketPath",
    "runLinuxPlan",
    "runOnMacos",
    "seatbeltPathForms",
    "startBridge",
    "sweepStaleRunDirs",
    "userNamespaceProblem",
    "writeCaBundle",
  ]);
});

import assert from "node:assert/strict";
import * as mod from "./mod.ts";

// The public surface is pinned: a change to it is a change to the library's
// contract and must be made on purpose. Internals (parser buffers, relay
// helpers) stay out.
Deno.test("execpolicy/mod.ts exports exactly its pinned public surface", () => {
  assert.deepEqual(Object.keys(mod).sort(), [
    "COMMON_BIN_DIRS",
    "PatternError",
    "RulesFileError",
    "ShellSplitError",
    "approvePrompts",
    "bindNetwork",
    "checkExecPolicyExamples",
    "codexRulesToExecRules",
    "combineParts",
    "compilePattern",
    "decideCommand",
    "decideCommandLazily",
    "deniedOnlyByPrompts",
    "formatExecDenial",
    "loadShellParser",
    "matchArgv",
    "parseCodexRules",
    "parseScript",
    "planShims",
    "prepareShims",
    "runShim",
    "shellJoin",
    "shellSplit",
    "strictest",
    "writeShims",
  ]);
});

import assert from "node:assert/strict";
import * as execpolicy from "../execpolicy/mod.ts";

Deno.test("execpolicy/mod.ts exports exactly the pinned public surface", () => {
  assert.deepEqual(Object.keys(execpolicy).sort(), [
    "COMMON_BIN_DIRS",
    "PatternError",
    "ShellSplitError",
    "checkExecPolicyExamples",
    "compilePattern",
    "decideCommand",
    "formatExecDenial",
    "matchArgv",
    "parseScript",
    "prepareShims",
    "runShim",
    "shellJoin",
    "shellSplit",
    "strictest",
  ]);
});

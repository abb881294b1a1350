import assert from "node:assert/strict";
import { main } from "./main.ts";
import { VERSION } from "../version.ts";
import { captureIo } from "../tests/cli_helpers.ts";

Deno.test("main() prints the version that deno.json declares", async () => {
  const io = captureIo();
  assert.equal(await main(["--version"], io), 0);
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(io.out, `sandbox ${denoJson.version}\n`);
  assert.equal(VERSION, denoJson.version);
});

Deno.test("main() lists every command in help", async () => {
  const io = captureIo();
  assert.equal(await main(["help"], io), 0);
  for (const command of ["run", "proxy", "policy", "learn", "init", "profile", "help"]) {
    assert.match(io.out, new RegExp(`^  ${command}\\s`, "m"));
  }
});

Deno.test("main() rejects an unknown command with exit 2 and names it", async () => {
  const io = captureIo();
  assert.equal(await main(["frobnicate"], io), 2);
  assert.match(io.err, /^sandbox: Unknown command "frobnicate"/);
});

Deno.test("main() with no arguments prints usage to stderr and exits 2", async () => {
  const io = captureIo();
  assert.equal(await main([], io), 2);
  assert.match(io.err, /Usage: sandbox COMMAND/);
  assert.equal(io.out, "");
});

Deno.test("main() rejects help for an unknown command with exit 2", async () => {
  const io = captureIo();
  assert.equal(await main(["help", "nope"], io), 2);
  assert.match(io.err, /Unknown command "nope"/);
});

Deno.test("errorMessage() gives an Error's message and any other value as text", async () => {
  const { errorMessage } = await import("../errors.ts");
  assert.equal(errorMessage(new RangeError("out of range")), "out of range");
  assert.equal(errorMessage("plain"), "plain");
  assert.equal(errorMessage(42), "42");
});

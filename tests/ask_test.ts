import assert from "node:assert/strict";
import { alwaysFileFor, ciReason, parseAnswer, terminalSafe } from "../run/ask.ts";
import { exists, runCommand, sandboxArgv, tempDir } from "./cli_helpers.ts";

// A pseudo-terminal driver: runs argv as the session leader of a new pty (so
// /dev/tty is that pty), waits for each `expect` regex in the output and then
// types `send`. Prints {"output", "status", "error"} as JSON.
const PTY_DRIVER = String.raw`
import json, os, pty, re, select, sys, time
spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    for name in spec.get("unset", []):
        os.environ.pop(name, None)
    os.environ.update(spec.get("env", {}))
    os.execvp(spec["argv"][0], spec["argv"])
out = b""
pos = 0
error = None
deadline = time.time() + spec["timeout"]
eof = False
def pump(wait):
    global out, eof
    r, _, _ = select.select([fd], [], [], wait)
    if fd in r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            eof = True
        out += data
for step in spec["steps"]:
    rx = re.compile(step["expect"].encode())
    while error is None:
        m = rx.search(out, pos)
        if m:
            pos = m.end()
            break
        if eof or time.time() > deadline:
            error = "never saw " + step["expect"]
        else:
            pump(0.1)
    if error is not None:
        break
    if step.get("send") is not None:
        os.write(fd, step["send"].encode())
while not eof and error is None and time.time() < deadline:
    pump(0.1)
if not eof:
    os.kill(pid, 9)
    error = error or "timed out"
_, status = os.waitpid(pid, 0)
os.close(fd)
print(json.dumps({"output": out.decode("utf-8", "replace"), "status": os.waitstatus_to_exitcode(status), "error": error}))
`;

interface PtyStep {
  expect: string;
  send?: string;
}

interface PtyResult {
  output: string;
  status: number;
  error: string | null;
}

async function runInPty(
  argv: string[],
  steps: PtyStep[],
  options: { env?: Record<string, string>; unset?: string[]; timeout?: number } = {},
): Promise<PtyResult> {
  const timeout = options.timeout ?? 30;
  const spec = { argv, steps, env: options.env ?? {}, unset: options.unset ?? [], timeout };
  const output = await new Deno.Command("python3", {
    args: ["-c", PTY_DRIVER, JSON.stringify(spec)],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
    signal: AbortSignal.timeout((timeout + 10) * 1000),
  }).output();
  assert.equal(output.code, 0, "the pty driver itself ran");
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

const ASK_MODULE = new URL("../run/ask.ts", import.meta.url).href;

// A small program that asks about misses through the real prompter on
// /dev/tty and writes the answers as JSON to $ASK_RESULT.
const ASK_PROGRAM = `
import { openAskPrompter } from ${JSON.stringify(ASK_MODULE)};
const spec = JSON.parse(Deno.env.get("ASK_SPEC"));
const notices = [];
const prompter = await openAskPrompter({
  command: ["curl", "-s"],
  timeoutMs: spec.timeoutMs,
  alwaysFile: spec.alwaysFile ?? null,
  stderr: (text) => notices.push(text),
});
try {
  // Asked all at once: the prompter must serialize them.
  const results = await Promise.all(spec.misses.map((miss) => prompter.askOnMiss(miss)));
  await Deno.writeTextFile(Deno.env.get("ASK_RESULT"), JSON.stringify({
    interactive: prompter.interactive,
    reason: prompter.reason,
    results,
    notices,
  }));
} finally {
  await prompter.close();
}
`;

interface AskRun {
  interactive: boolean;
  reason: string | null;
  results: ("allow" | "deny")[];
  notices: string[];
}

function askArgv(): string[] {
  return [Deno.execPath(), "eval", "--quiet", ASK_PROGRAM];
}

function indexes(text: string, needles: string[]): number[] {
  return needles.map((needle) => {
    const at = text.indexOf(needle);
    assert.notEqual(at, -1, `output contains ${JSON.stringify(needle)}:\n${text}`);
    return at;
  });
}

Deno.test("parseAnswer() maps y, r, A, n and flags anything else", () => {
  assert.deepEqual(parseAnswer("y\r"), { answer: "once" });
  assert.deepEqual(parseAnswer(" yes "), { answer: "once" });
  assert.deepEqual(parseAnswer("r"), { answer: "run" });
  assert.deepEqual(parseAnswer("A"), { answer: "always" });
  assert.deepEqual(parseAnswer("a"), { answer: "invalid", input: "a" });
  assert.deepEqual(parseAnswer("N"), { answer: "deny" });
  assert.deepEqual(parseAnswer(""), { answer: "invalid", input: "" });
});

Deno.test("ciReason() and alwaysFileFor() decide CI and where always-answers go", () => {
  assert.equal(ciReason({}), null);
  assert.equal(ciReason({ CI: "false" }), null);
  assert.equal(ciReason({ CI: "true" }), "CI=true");
  assert.equal(ciReason({ CI: "1" }), "CI=1");
  assert.equal(ciReason({ GITHUB_ACTIONS: "true" }), "GITHUB_ACTIONS=true");
  assert.equal(alwaysFileFor(["a.toml", "b.toml"], { HOME: "/h" }), "b.toml");
  assert.equal(alwaysFileFor(undefined, { HOME: "/h" }), "/h/.config/sandbox/config.toml");
  assert.equal(
    alwaysFileFor([], { HOME: "/h", XDG_CONFIG_HOME: "/x" }),
    "/x/sandbox/config.toml",
  );
  assert.equal(alwaysFileFor(undefined, {}), null);
});

Deno.test("terminalSafe() turns escape sequences from the sandbox into visible text", () => {
  assert.equal(terminalSafe("a.test"), "a.test");
  assert.equal(terminalSafe("x\u001b[2Jy\n"), "x\\u{1b}[2Jy\\u{a}");
});

Deno.test("openAskPrompter() on a pty: allow once, deny, re-ask after once, timeout; one question at a time", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const resultFile = `${dir}/result.json`;
  const spec = {
    timeoutMs: 1500,
    misses: [
      { host: "a.test", port: 80, protocol: "http" },
      { host: "b.test", port: 443, protocol: "https-connect" },
      { host: "b.test", port: 443, protocol: "https-connect" },
      { host: "a.test", port: 80, protocol: "http" },
      { host: "c.test", port: 1080, protocol: "socks5" },
    ],
  };
  const run = await runInPty(askArgv(), [
    {
      expect: "wants to connect to a\\.test:80 \\(http\\)[\\s\\S]*?Allow\\? \\[y/r/n\\][^>]*> ",
      send: "y\r",
    },
    { expect: "Allowed a\\.test:80 once" },
    { expect: "wants to connect to b\\.test:443[\\s\\S]*?> ", send: "maybe\r" },
    { expect: 'Unrecognized answer "maybe"[^>]*> ', send: "n\r" },
    { expect: "Denied b\\.test for this run" },
    { expect: "wants to connect to a\\.test:80[\\s\\S]*?> ", send: "r\r" },
    { expect: "Allowed a\\.test for this run" },
    { expect: "wants to connect to c\\.test:1080 \\(socks5\\)" },
    { expect: "Denied c\\.test:1080: no answer within 2 s" },
  ], {
    env: { ASK_SPEC: JSON.stringify(spec), ASK_RESULT: resultFile },
    unset: ["CI", "GITHUB_ACTIONS"],
  });
  assert.equal(run.error, null, run.output);
  assert.equal(run.status, 0, run.output);
  const result: AskRun = JSON.parse(await Deno.readTextFile(resultFile));
  assert.equal(result.interactive, true);
  assert.deepEqual(result.results, ["allow", "deny", "deny", "allow", "deny"]);
  // Four questions (b.test's second miss is answered by the earlier "n"), strictly in turn.
  assert.equal(run.output.match(/wants to connect to/g)?.length, 4, run.output);
  const order = indexes(run.output, [
    "wants to connect to a.test:80",
    "Allowed a.test:80 once",
    "wants to connect to b.test:443",
    "Denied b.test for this run",
    "Allowed a.test for this run",
    "wants to connect to c.test:1080",
  ]);
  assert.deepEqual(order, [...order].sort((x, y) => x - y));
});

Deno.test("openAskPrompter() on a pty: always saves the host into the profile file and stops asking", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const resultFile = `${dir}/result.json`;
  const profile = `${dir}/sandbox.toml`;
  const original =
    '# my profile\ndefault_permissions = "dev"\n\n[permissions.dev.network.domains]\n"a.test" = "allow"\n';
  await Deno.writeTextFile(profile, original);
  const spec = {
    timeoutMs: 20_000,
    alwaysFile: profile,
    misses: [
      { host: "new.test", port: 443, protocol: "https-connect" },
      { host: "new.test", port: 443, protocol: "https-connect" },
    ],
  };
  const run = await runInPty(askArgv(), [
    {
      expect: `A = always \\(saved to ${dir.replaceAll("/", "\\/")}\\/sandbox\\.toml\\)[^>]*> `,
      send: "A\r",
    },
    { expect: "Allowed new\\.test always" },
  ], {
    env: { ASK_SPEC: JSON.stringify(spec), ASK_RESULT: resultFile },
    unset: ["CI", "GITHUB_ACTIONS"],
  });
  assert.equal(run.error, null, run.output);
  const result: AskRun = JSON.parse(await Deno.readTextFile(resultFile));
  assert.deepEqual(result.results, ["allow", "allow"]);
  assert.equal(run.output.match(/wants to connect to/g)?.length, 1, run.output);
  const saved = await Deno.readTextFile(profile);
  assert.ok(saved.startsWith(original), saved);
  assert.match(saved, /^"new\.test" = "allow" # 1 connection; port 443; https-connect$/m);
});

Deno.test("openAskPrompter() without a terminal denies at once and says why, without a question", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const resultFile = `${dir}/result.json`;
  const spec = { timeoutMs: 60_000, misses: [{ host: "a.test", port: 80, protocol: "http" }] };
  // setsid: a new session has no controlling terminal, so /dev/tty cannot be opened.
  const output = await runCommand(["setsid", "-w", ...askArgv()], {
    env: { ASK_SPEC: JSON.stringify(spec), ASK_RESULT: resultFile },
    unset: ["CI", "GITHUB_ACTIONS"],
    timeoutMs: 30_000,
  });
  assert.equal(output.code, 0, output.stderr);
  const result: AskRun = JSON.parse(await Deno.readTextFile(resultFile));
  assert.equal(result.interactive, false);
  assert.deepEqual(result.results, ["deny"]);
  assert.match(result.reason ?? "", /^no terminal to ask on/);
  assert.equal(result.notices.length, 1);
  assert.match(
    result.notices[0],
    /--ask: no terminal to ask on .* denied without a question \(first: a\.test\)/,
  );
});

Deno.test("openAskPrompter() under CI=true asks nothing even with a terminal", async () => {
  await using tmp = await tempDir();
  const dir = tmp.path;
  const resultFile = `${dir}/result.json`;
  const spec = { timeoutMs: 60_000, misses: [{ host: "a.test", port: 80, protocol: "http" }] };
  const run = await runInPty(askArgv(), [], {
    env: { ASK_SPEC: JSON.stringify(spec), ASK_RESULT: resultFile, CI: "true" },
    unset: ["GITHUB_ACTIONS"],
  });
  assert.equal(run.error, null, run.output);
  assert.doesNotMatch(run.output, /Allow\?/);
  const result: AskRun = JSON.parse(await Deno.readTextFile(resultFile));
  assert.equal(result.interactive, false);
  assert.equal(result.reason, "CI=true: this looks like CI");
  assert.deepEqual(result.results, ["deny"]);
});

// ---- end to end: sandbox run --ask ----

/** Two loopback HTTP servers standing in for b.test and c.test, in an isolated config. */
async function withHosts(
  fn: (setup: { argv: string[]; env: Record<string, string>; dir: string }) => Promise<void>,
): Promise<void> {
  const serve = (name: string) =>
    Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => new Response(`${name}\n`),
    );
  const b = serve("b");
  const c = serve("c");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/managed.toml`, "");
    const script = [
      `curl -sS -o /dev/null -w 'b:%{http_code}\\n' http://b.test:${b.addr.port}/`,
      `curl -sS -o /dev/null -w 'c:%{http_code}\\n' http://c.test:${c.addr.port}/`,
    ].join("; ");
    const argv = sandboxArgv([
      "run",
      "--ask",
      // The stand-in hosts are on loopback: an answer at the prompt does not unlock that.
      "--allow-local-binding",
      "--resolve",
      "b.test=127.0.0.1",
      "--resolve",
      "c.test=127.0.0.1",
      "--",
      "sh",
      "-c",
      script,
    ], { sandboxBin: true });
    const env = { SANDBOX_MANAGED_CONFIG: `${dir}/managed.toml`, XDG_CONFIG_HOME: `${dir}/xdg` };
    await fn({ argv, env, dir });
  } finally {
    await Deno.remove(dir, { recursive: true });
    await b.shutdown();
    await c.shutdown();
  }
}

Deno.test("sandbox run --ask on a pty: allow once lets b.test through, deny blocks c.test", async () => {
  await withHosts(async ({ argv, env }) => {
    const run = await runInPty(argv, [
      { expect: "wants to connect to b\\.test:[0-9]+ \\(http\\)[\\s\\S]*?> ", send: "y\r" },
      { expect: "Allowed b\\.test:[0-9]+ once" },
      { expect: "wants to connect to c\\.test:[0-9]+ \\(http\\)[\\s\\S]*?> ", send: "n\r" },
      { expect: "Denied c\\.test for this run" },
    ], { env, unset: ["CI", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"], timeout: 60 });
    assert.equal(run.error, null, run.output);
    assert.equal(run.status, 0, run.output);
    assert.match(run.output, /^b:200\r?$/m);
    assert.match(run.output, /^c:403\r?$/m);
    assert.match(run.output, /sandbox: blocked 1 connection to 1 host:/);
    assert.match(run.output, /c\.test:[0-9]+ +not_allowed/);
  });
});

Deno.test("sandbox run --ask on a pty: Ctrl-C at the prompt denies at once and the run ends (no 60 s wait)", async () => {
  await withHosts(async ({ argv, env }) => {
    // The driver gives up after 30 s, well before the prompt's own 60 s timeout.
    const run = await runInPty(argv, [
      { expect: "wants to connect to b\\.test:[0-9]+ \\(http\\)[\\s\\S]*?> ", send: "\x03" },
      { expect: "Denied b\\.test:[0-9]+: interrupted \\(Ctrl-C\\)" },
    ], { env, unset: ["CI", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"], timeout: 30 });
    assert.equal(run.error, null, run.output);
    assert.doesNotMatch(run.output, /c\.test:[0-9]+ \(http\)[\s\S]*?Allow\?/, "no second question");
    assert.notEqual(run.status, 0, run.output);
  });
});

Deno.test("sandbox run --ask without a terminal asks nothing and denies", async () => {
  await withHosts(async ({ argv, env }) => {
    const { code, stdout, stderr } = await runCommand(["setsid", "-w", ...argv], {
      env,
      unset: ["CI", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"],
      timeoutMs: 60_000,
    });
    assert.equal(code, 0, stderr);
    assert.equal(stdout, "b:403\nc:403\n");
    assert.doesNotMatch(stderr, /Allow\?/);
    assert.match(
      stderr,
      /--ask: no terminal to ask on .* denied without a question \(first: b\.test\)/,
    );
    assert.match(stderr, /sandbox: blocked 2 connections to 2 hosts:/);
  });
});

Deno.test("sandbox run --ask on a pty: a command a Codex prompt rule holds back runs on y, not on n", async () => {
  await using dir = await tempDir("ask_prompt_");
  await Deno.writeTextFile(
    `${dir.path}/team.rules`,
    'prefix_rule(pattern = ["touch"], decision = "prompt", justification = "Touching files needs a yes")\n',
  );
  const mark = `${dir.path}/touched`;
  const argv = (ask: boolean) =>
    sandboxArgv([
      "run",
      ...(ask ? ["--ask"] : []),
      "--writable",
      dir.path,
      "--rules",
      `${dir.path}/team.rules`,
      "--",
      "touch",
      mark,
    ], { sandboxBin: true });
  await Deno.writeTextFile(`${dir.path}/managed.toml`, "");
  const env = {
    SANDBOX_MANAGED_CONFIG: `${dir.path}/managed.toml`,
    XDG_CONFIG_HOME: `${dir.path}/xdg`,
  };
  const unset = ["CI", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"];
  const no = await runInPty(argv(true), [
    {
      expect: "execpolicy asks before running touch [\\s\\S]*?Run it\\? \\[y/n\\] > ",
      send: "n\r",
    },
    { expect: "Not run" },
  ], { env, unset, timeout: 60 });
  assert.equal(no.error, null, no.output);
  assert.equal(no.status, 126, no.output);
  assert.match(no.output, /Touching files needs a yes/);
  assert.equal(await exists(mark), false);
  // Without --ask nothing is asked: denied.
  const plain = await runCommand(argv(false), { env, unset, timeoutMs: 60_000 });
  assert.equal(plain.code, 126, plain.stderr);
  assert.equal(await exists(mark), false);
  const yes = await runInPty(argv(true), [
    { expect: "Run it\\? \\[y/n\\] > ", send: "y\r" },
    { expect: "Running it" },
  ], { env, unset, timeout: 60 });
  assert.equal(yes.error, null, yes.output);
  assert.equal(yes.status, 0, yes.output);
  assert.equal(await exists(mark), true, "approved: the command ran (through the shim too)");
});

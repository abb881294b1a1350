import assert from "node:assert/strict";
import { SandboxError } from "../errors.ts";
import { assertSeatbeltProfile, checkSeatbeltProfile } from "./seatbelt_check.ts";

const OK = `(version 1)
(deny default)
; a comment
(allow process-exec)
(allow file-read*)
(allow file-write* (subpath (param "CWD")) (literal "/dev/null"))
(allow network-outbound (remote ip "localhost:3128"))
(allow network-outbound (remote unix-socket (path-literal (param "UNIX_SOCKET_0"))))
(allow file-write-data (require-all (regex #"^/dev/ttys[0-9]+$") (vnode-type CHARACTER-DEVICE)))
(allow signal (target same-sandbox))
(allow mach-lookup (global-name "com.apple.trustd.agent"))
`;
const OK_PARAMS: Record<string, string> = { CWD: "/Users/a/p", UNIX_SOCKET_0: "/Users/a/s.sock" };

/** The messages of the problems found. */
function messages(profile: string, params: Record<string, string> = OK_PARAMS): string[] {
  return checkSeatbeltProfile(profile, params).map((p) => p.message);
}

function assertOneProblem(
  profile: string,
  pattern: RegExp,
  params: Record<string, string> = OK_PARAMS,
): void {
  const found = messages(profile, params);
  assert.ok(
    found.some((m) => pattern.test(m)),
    `expected a problem matching ${pattern}, got ${JSON.stringify(found)}`,
  );
}

Deno.test("checkSeatbeltProfile() accepts a well-formed profile", () => {
  assert.deepEqual(checkSeatbeltProfile(OK, OK_PARAMS), []);
});

Deno.test("checkSeatbeltProfile() reports unbalanced parentheses with their position", () => {
  const open = checkSeatbeltProfile(OK + "(allow process-fork\n", OK_PARAMS);
  assert.equal(open.length, 1);
  assert.match(open[0].message, /^Unbalanced "\(": 1 list\(s\) left open$/);
  assert.equal(open[0].line, 12);
  assert.equal(open[0].column, 1);
  const close = checkSeatbeltProfile("(version 1)\n(deny default))\n", {});
  assert.match(close[0].message, /^Unbalanced "\)"/);
  assert.deepEqual([close[0].line, close[0].column], [2, 15]);
});

Deno.test("checkSeatbeltProfile() refuses broken strings", () => {
  assertOneProblem('(version 1)\n(allow mach-lookup (global-name "abc', /Unterminated string/);
  assertOneProblem(
    '(version 1)\n(allow mach-lookup (global-name "a\\nb"))',
    /Unknown string escape/,
  );
  assertOneProblem('(version 1)\n(allow mach-lookup (global-name "é"))', /printable ASCII/);
});

Deno.test("checkSeatbeltProfile() refuses unknown operations, filters and forms", () => {
  assertOneProblem(OK + "(allow file-teleport)\n", /^Unknown operation "file-teleport"$/);
  assertOneProblem(OK + '(allow file-read* (glob "x"))\n', /^Unknown filter "glob"$/);
  assertOneProblem(OK + "(eval (allow default))\n", /^Unknown top-level form "eval"$/);
  assertOneProblem(OK + "(allow default)\n", /default may only appear alone/);
  assertOneProblem(OK + "(allow signal (target everyone))\n", /\(target …\)/);
  assertOneProblem(OK + "allow\n", /bare atom/);
});

Deno.test("checkSeatbeltProfile() requires (version 1) first", () => {
  assertOneProblem("(deny default)\n(version 1)\n", /must start with \(version 1\)/, {});
  assertOneProblem("(version 2)\n(deny default)\n", /must start with \(version 1\)/, {});
  assertOneProblem("", /Empty profile/, {});
});

Deno.test("checkSeatbeltProfile() reports a missing parameter and an unused one", () => {
  assertOneProblem(OK, /^Parameter "UNIX_SOCKET_0" is not supplied$/, { CWD: "/Users/a/p" });
  assertOneProblem(OK, /^Parameter "EXTRA" is supplied but never used$/, {
    ...OK_PARAMS,
    EXTRA: "/x/y",
  });
  assertOneProblem(
    OK + '(allow file-write* (subpath (param "bad name")))\n',
    /Parameter name "bad name"/,
  );
});

Deno.test("checkSeatbeltProfile() refuses a pasted path", () => {
  assertOneProblem(
    OK + '(allow file-write* (subpath "/Users/a/other"))\n',
    /^Path "\/Users\/a\/other" is written into the profile: pass it as a parameter$/,
  );
  // A parameter's value written out, even in a comment, is refused too.
  assertOneProblem(
    OK + '(allow file-read* (literal "/Users/a/p"))\n',
    /Path "\/Users\/a\/p" is written into the profile/,
  );
  assertOneProblem(OK + "; writable: /Users/a/p\n", /pasted into a comment/);
  assertOneProblem(
    OK + '(allow file-read* (regex #"^/Users/a/"))\n',
    /Regex "\^\/Users\/a\/" names a path/,
  );
});

Deno.test("checkSeatbeltProfile() refuses network grants beyond localhost ports", () => {
  assertOneProblem(OK + "(allow network*)\n", /\(allow network\*\) without a filter/);
  assertOneProblem(OK + "(allow network-outbound)\n", /without a filter opens the whole network/);
  assertOneProblem(
    OK + '(allow network-outbound (remote ip "*:*"))\n',
    /leaves the machine/,
  );
  assertOneProblem(
    OK + '(allow network-outbound (remote ip "localhost:*"))\n',
    /allows every port/,
  );
  assertOneProblem(
    OK + '(allow network-outbound (remote tcp "1.2.3.4:443"))\n',
    /not "localhost:PORT"/,
  );
  assertOneProblem(OK + '(allow network-outbound (remote ip "localhost:0"))\n', /Port 0/);
  assertOneProblem(OK + "(allow network-outbound (remote ip))\n", /takes one address string/);
});

Deno.test("assertSeatbeltProfile() throws a SandboxError listing the problems", () => {
  assert.doesNotThrow(() => assertSeatbeltProfile(OK, OK_PARAMS));
  assert.throws(
    () => assertSeatbeltProfile(OK + "(allow file-teleport)\n", OK_PARAMS),
    (e) =>
      e instanceof SandboxError && e.code === "sandbox_failed" &&
      e.message ===
        'Refusing a Seatbelt profile with 1 problem(s): line 12:8: Unknown operation "file-teleport"',
  );
});

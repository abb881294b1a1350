import assert from "node:assert/strict";
import { createBlockWatch, formatBlockedLine, SPIN_REFUSALS } from "./block_watch.ts";

const deny = (
  host: string,
  port = 443,
  protocol = "https-connect",
  method: string | null = null,
) => ({
  host,
  port,
  protocol,
  method,
  decision: "deny",
  reason: "not_allowed",
});
const allow = (host: string) => ({ ...deny(host), decision: "allow", reason: "allowed" });

Deno.test("formatBlockedLine() writes the stable machine-readable line", () => {
  assert.equal(
    formatBlockedLine(deny("other.example")),
    "blocked CONNECT other.example:443 not_allowed (add --allow other.example)",
  );
  assert.equal(
    formatBlockedLine(deny("a.test", 80, "http", "POST")),
    "blocked POST a.test:80 not_allowed (add --allow a.test)",
  );
  assert.equal(
    formatBlockedLine({ ...deny("::1", 22, "socks5"), reason: "not_allowed_local" }),
    "blocked SOCKS5 [::1]:22 not_allowed_local (a local or private address: add --allow ::1 to allow this name)",
  );
  assert.equal(
    formatBlockedLine({ ...deny("x.test"), reason: "denied", rule: "*.test" }),
    "blocked CONNECT x.test:443 denied (a deny rule matches: *.test)",
  );
});

Deno.test("createBlockWatch() says each host and reason once, at once", () => {
  const lines: string[] = [];
  const watch = createBlockWatch({ stderr: (t) => lines.push(t) });
  watch.onDecision(deny("a.test"));
  assert.deepEqual(lines, [
    "sandbox: blocked CONNECT a.test:443 not_allowed (add --allow a.test)\n",
  ]);
  watch.onDecision(deny("a.test"));
  watch.onDecision(allow("b.test"));
  watch.onDecision(deny("c.test", 80, "http", "GET"));
  assert.deepEqual(lines.slice(1), [
    "sandbox: blocked GET c.test:80 not_allowed (add --allow c.test)\n",
  ]);
  assert.equal(watch.blocked(), true);
});

Deno.test("createBlockWatch() says a host refused again and again with nothing else getting through is a spin", () => {
  const lines: string[] = [];
  const watch = createBlockWatch({ stderr: (t) => lines.push(t) });
  for (let i = 0; i < SPIN_REFUSALS - 1; i++) watch.onDecision(deny("reg.test"));
  assert.deepEqual(watch.spinning(), []);
  watch.onDecision(deny("reg.test"));
  assert.deepEqual(watch.spinning(), [
    { host: "reg.test", port: 443, reason: "not_allowed", refusals: SPIN_REFUSALS },
  ]);
  assert.match(
    lines.at(-1)!,
    /^sandbox: reg\.test:443 was refused 10 times \(not_allowed\) and nothing else got through: .*--fail-fast\n$/,
  );
  for (let i = 0; i < 5; i++) watch.onDecision(deny("reg.test"));
  assert.equal(lines.length, 2, "the spin is said once");

  // Something else getting through means the command is working: no spin.
  const other = createBlockWatch({ stderr: () => {} });
  other.onDecision(deny("x.test"));
  other.onDecision(allow("ok.test"));
  for (let i = 0; i < SPIN_REFUSALS; i++) other.onDecision(deny("x.test"));
  assert.deepEqual(other.spinning(), []);
});

Deno.test("createBlockWatch() calls onFirstBlock once, after the line", () => {
  const events: string[] = [];
  const watch = createBlockWatch({
    stderr: (t) => events.push(t.trim()),
    onFirstBlock: () => events.push("stop"),
  });
  watch.onDecision(allow("ok.test"));
  assert.equal(watch.blocked(), false);
  watch.onDecision(deny("a.test"));
  watch.onDecision(deny("b.test"));
  assert.deepEqual(events, [
    "sandbox: blocked CONNECT a.test:443 not_allowed (add --allow a.test)",
    "stop",
    "sandbox: blocked CONNECT b.test:443 not_allowed (add --allow b.test)",
  ]);
});

Deno.test("createBlockWatch() calls onSpin once, at the first spinning host", () => {
  const spins: string[] = [];
  const watch = createBlockWatch({ stderr: () => {}, onSpin: (h) => spins.push(h.host) });
  for (let i = 0; i < SPIN_REFUSALS * 2; i++) watch.onDecision(deny("a.test"));
  for (let i = 0; i < SPIN_REFUSALS; i++) watch.onDecision(deny("b.test"));
  assert.deepEqual(spins, ["a.test"]);
});

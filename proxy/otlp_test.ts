import assert from "node:assert/strict";
import type { DecisionEvent } from "./decision_log.ts";
import {
  decisionAttributes,
  otlpLogsEndpoint,
  parseOtlpHeaders,
  POLICY_DECISION_EVENT,
  startOtlpExporter,
} from "./otlp.ts";
import { startOtlpReceiver } from "../tests/otlp_helpers.ts";

const EVENT: DecisionEvent = {
  time: "2026-12-03T10:00:00.123Z",
  host: "other.test",
  port: 443,
  protocol: "https-connect",
  method: null,
  decision: "deny",
  reason: "not_allowed",
  rule: null,
  source: null,
  guard: "baseline_policy",
  command: "npm ci",
};

Deno.test("otlpLogsEndpoint() follows the OpenTelemetry variables; parseOtlpHeaders() decodes k=v pairs", () => {
  assert.equal(otlpLogsEndpoint({}), null);
  assert.equal(
    otlpLogsEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/" }),
    "http://c:4318/v1/logs",
  );
  assert.equal(
    otlpLogsEndpoint({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
      OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: "http://l:1/x",
    }),
    "http://l:1/x",
  );
  assert.deepEqual(parseOtlpHeaders("a=1, b=x%3Dy,bad"), { a: "1", b: "x=y" });
});

Deno.test("decisionAttributes() uses the reference design's attribute names", () => {
  const attrs = decisionAttributes(EVENT);
  assert.equal(attrs["event.name"], POLICY_DECISION_EVENT);
  assert.equal(attrs["network.policy.decision"], "deny");
  assert.equal(attrs["network.policy.source"], "baseline_policy");
  assert.equal(attrs["network.policy.reason"], "not_allowed");
  assert.equal(attrs["network.transport.protocol"], "https_connect");
  assert.equal(attrs["server.address"], "other.test");
  assert.equal(attrs["server.port"], 443);
  assert.equal(attrs["http.request.method"], "none");
  assert.equal(attrs["client.address"], "unknown");
  assert.match(String(attrs["event.timestamp"]), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

Deno.test("startOtlpExporter() sends each decision to a real OTLP/HTTP receiver on loopback", async () => {
  const receiver = startOtlpReceiver();
  try {
    const exporter = await startOtlpExporter({ endpoint: `${receiver.url}/v1/logs`, delayMs: 50 });
    exporter.record(EVENT);
    exporter.record({ ...EVENT, host: "ok.test", decision: "allow", reason: "allowed" });
    await exporter.close();
    assert.ok(receiver.requests.length >= 1);
    assert.equal(receiver.requests[0].path, "/v1/logs");
    const records = receiver.records();
    assert.deepEqual(records.map((r) => r["server.address"]), ["other.test", "ok.test"]);
    assert.equal(records[0]["network.policy.decision"], "deny");
    assert.equal(String(records[0]["server.port"]), "443");
  } finally {
    await receiver.close();
  }
});

Deno.test("startOtlpExporter() with the collector down: record() never throws and close() returns", async () => {
  // A port that was just free: nothing listens there.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const exporter = await startOtlpExporter({
    endpoint: `http://127.0.0.1:${port}/v1/logs`,
    delayMs: 50,
  });
  for (let i = 0; i < 100; i++) exporter.record({ ...EVENT, port: i + 1 });
  await exporter.close();
  exporter.record(EVENT); // after close: ignored
});

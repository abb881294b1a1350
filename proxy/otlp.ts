/**
 * OpenTelemetry export of the decision log: each decision is also an OTLP
 * log record (`sandbox.network_proxy.policy_decision`) with the attribute
 * names of the reference design's audit event (`network.policy.decision`,
 * `network.policy.source`, `network.policy.reason`, `server.address`,
 * `server.port`, `http.request.method`, `client.address`, …), sent over
 * OTLP/HTTP to a collector, the way a fleet of CI runners is watched from
 * one place.
 *
 * Built on the official `@opentelemetry/sdk-logs` and
 * `@opentelemetry/exporter-logs-otlp-http` packages, loaded only when an
 * endpoint is configured: Deno's built-in OpenTelemetry must be switched on
 * by `OTEL_DENO=true` before the process starts and exports every console
 * line and runtime metric with it, so a profile could not turn it on and the
 * launcher's own stderr would become audit records.
 *
 * Records are batched; `record()` only queues (it never waits on the
 * network), the queue is bounded (past it the SDK drops records),
 * and closing waits at most {@linkcode OTLP_CLOSE_TIMEOUT_MS} for the last
 * batch. The local decision log is written independently: a collector that
 * is down costs nothing but the exported copy.
 *
 * @module
 */
import type { DecisionEvent } from "./decision_log.ts";

/** The event name of every record. */
export const POLICY_DECISION_EVENT = "sandbox.network_proxy.policy_decision";

/** How long closing waits for the last batch to reach the collector. */
export const OTLP_CLOSE_TIMEOUT_MS = 3_000;

/** Where to send, from the standard OpenTelemetry variables; null when export is off. */
export function otlpLogsEndpoint(env: Readonly<Record<string, string | undefined>>): string | null {
  const logs = env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT?.trim();
  if (logs) return logs;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!base) return null;
  return `${base.replace(/\/+$/, "")}/v1/logs`;
}

/** The exporter settings the standard OpenTelemetry variables give, or null when export is off. */
export function otlpFromEnv(
  env: Readonly<Record<string, string | undefined>>,
): { endpoint: string; headers: Record<string, string> } | null {
  const endpoint = otlpLogsEndpoint(env);
  if (endpoint === null) return null;
  return {
    endpoint,
    headers: {
      ...parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_HEADERS),
      ...parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_LOGS_HEADERS),
    },
  };
}

/** The attributes of one decision, with the reference design's names. Pure. */
export function decisionAttributes(
  event: DecisionEvent,
): Record<string, string | number | boolean> {
  return {
    "event.name": POLICY_DECISION_EVENT,
    "event.timestamp": event.time,
    "network.policy.scope": event.host.startsWith("unix:") ? "non_domain" : "domain_rule",
    "network.policy.decision": event.decision,
    "network.policy.source": event.guard ?? "unknown",
    "network.policy.reason": event.reason,
    "network.policy.rule": event.rule ?? "",
    "network.policy.rule_source": event.source ?? "",
    "network.policy.override": event.guard === "decider" && event.decision === "allow",
    "network.transport.protocol": event.protocol.replace("-", "_"),
    "server.address": event.host,
    "server.port": event.port,
    "http.request.method": event.method ?? "none",
    "client.address": "unknown",
    "process.command_line": event.command ?? "",
  };
}

/** A running exporter. */
export interface OtlpExporter {
  /** Queues one decision; never throws, never waits. */
  record(event: DecisionEvent): void;
  /** Sends what is queued (waiting at most {@linkcode OTLP_CLOSE_TIMEOUT_MS}) and stops. */
  close(): Promise<void>;
}

/** Options for {@linkcode startOtlpExporter}. */
export interface StartOtlpExporterOptions {
  /** The OTLP/HTTP logs endpoint (`http://collector:4318/v1/logs`). */
  readonly endpoint: string;
  /** `OTEL_EXPORTER_OTLP_HEADERS`-style extra headers. */
  readonly headers?: Readonly<Record<string, string>>;
  /** `service.name` of the resource; `sandbox` unless set. */
  readonly serviceName?: string;
  /** Most records waiting to be sent (default 2,048). */
  readonly maxQueue?: number;
  /** How often a batch goes out, in milliseconds (default 1,000). */
  readonly delayMs?: number;
}

/** Parses `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, values percent-decoded). */
export function parseOtlpHeaders(text: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const part of (text ?? "").split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    try {
      headers[decodeURIComponent(part.slice(0, eq).trim())] = decodeURIComponent(
        part.slice(eq + 1).trim(),
      );
    } catch {
      // A malformed pair is skipped rather than sent half-decoded.
    }
  }
  return headers;
}

/**
 * Starts an exporter sending to `options.endpoint`.
 *
 * @example
 * ```ts
 * const exporter = await startOtlpExporter({ endpoint: "http://127.0.0.1:4318/v1/logs" });
 * exporter.record(event);
 * await exporter.close();
 * ```
 */
export async function startOtlpExporter(options: StartOtlpExporterOptions): Promise<OtlpExporter> {
  const [
    { BatchLogRecordProcessor, LoggerProvider },
    { OTLPLogExporter },
    { resourceFromAttributes },
  ] = await Promise.all([
    import("@opentelemetry/sdk-logs"),
    import("@opentelemetry/exporter-logs-otlp-http"),
    import("@opentelemetry/resources"),
  ]);
  const maxQueue = options.maxQueue ?? 2048;
  const exporter = new OTLPLogExporter({
    url: options.endpoint,
    headers: { ...options.headers },
    timeoutMillis: OTLP_CLOSE_TIMEOUT_MS,
  });
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ "service.name": options.serviceName ?? "sandbox" }),
    processors: [
      new BatchLogRecordProcessor({
        exporter,
        maxQueueSize: maxQueue,
        maxExportBatchSize: 512,
        scheduledDelayMillis: options.delayMs ?? 1_000,
        exportTimeoutMillis: OTLP_CLOSE_TIMEOUT_MS,
      }),
    ],
  });
  const logger = provider.getLogger("sandbox.network_proxy");
  let closed = false;
  return {
    record(event) {
      if (closed) return;
      try {
        // Queued by the batch processor (dropped past maxQueue): nothing here waits on the network.
        logger.emit({
          timestamp: new Date(event.time),
          severityText: event.decision === "deny" ? "WARN" : "INFO",
          severityNumber: event.decision === "deny" ? 13 : 9,
          body: `${event.decision} ${event.host}:${event.port} ${event.reason}`,
          attributes: decisionAttributes(event),
        });
      } catch {
        // Export is best effort; the local log has the decision.
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        provider.shutdown().catch(() => {}),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, OTLP_CLOSE_TIMEOUT_MS + 500);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}

/** Test helper: a loopback OTLP/HTTP receiver (JSON), standing in for an OpenTelemetry Collector. */

/** A loopback OTLP/HTTP receiver that decodes the JSON it gets. */
export function startOtlpReceiver() {
  const requests: { path: string; contentType: string | null; body: unknown }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const text = await req.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // kept as text: the test then fails on its shape
    }
    requests.push({
      path: new URL(req.url).pathname,
      contentType: req.headers.get("content-type"),
      body,
    });
    return Response.json({});
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    /** Every log record received, with its attributes as a plain object. */
    records(): Record<string, unknown>[] {
      const out: Record<string, unknown>[] = [];
      for (const { body } of requests) {
        // deno-lint-ignore no-explicit-any
        for (const rl of (body as any)?.resourceLogs ?? []) {
          for (const sl of rl.scopeLogs ?? []) {
            for (const record of sl.logRecords ?? []) {
              const attrs: Record<string, unknown> = {};
              // deno-lint-ignore no-explicit-any
              for (const a of record.attributes ?? [] as any[]) {
                const v = a.value ?? {};
                attrs[a.key] = v.stringValue ?? v.intValue ?? v.boolValue ?? v.doubleValue;
              }
              out.push(attrs);
            }
          }
        }
      }
      return out;
    },
    close: () => server.shutdown(),
  };
}

import { serveConnections } from "../tests/proxy_helpers.ts";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const listener = Deno.listen({ hostname: "127.0.0.2", port: 18080 });
const response = encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
serveConnections(listener, async (conn) => {
  (conn as Deno.TcpConn).setNoDelay(true);
  const buf = new Uint8Array(16 * 1024);
  let pending = "";
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return;
    pending += decoder.decode(buf.subarray(0, n));
    for (let end = pending.indexOf("\r\n\r\n"); end !== -1; end = pending.indexOf("\r\n\r\n")) {
      pending = pending.slice(end + 4);
      let offset = 0;
      while (offset < response.length) offset += await conn.write(response.subarray(offset));
    }
  }
});

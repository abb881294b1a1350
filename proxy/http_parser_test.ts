import assert from "node:assert/strict";
import {
  type BodyFraming,
  BufferedReader,
  type ByteReader,
  type ByteWriter,
  copyBody,
  HttpParseError,
  readRequestHead,
  readResponseHead,
  requestBodyFraming,
  responseBodyFraming,
  stripHopByHop,
} from "./http_parser.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A reader over fixed bytes that hands them out in pieces of `step` bytes. */
function bytesReader(text: string | Uint8Array, step = 7): ByteReader {
  const bytes = typeof text === "string" ? enc.encode(text) : text;
  let offset = 0;
  return {
    read(p) {
      if (offset >= bytes.length) return Promise.resolve(null);
      const n = Math.min(step, p.length, bytes.length - offset);
      p.set(bytes.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
  };
}

function sink(): ByteWriter & { text(): string } {
  const parts: Uint8Array[] = [];
  return {
    write(p) {
      // Accept at most 5 bytes per call so callers must loop on partial writes.
      const n = Math.min(5, p.length);
      parts.push(p.slice(0, n));
      return Promise.resolve(n);
    },
    text: () => parts.map((p) => dec.decode(p)).join(""),
  };
}

async function drain(reader: BufferedReader): Promise<string> {
  const buf = new Uint8Array(64);
  let text = "";
  for (;;) {
    const n = await reader.read(buf);
    if (n === null) return text;
    text += dec.decode(buf.subarray(0, n));
  }
}

async function parseError(text: string): Promise<HttpParseError> {
  const reader = new BufferedReader(bytesReader(text));
  try {
    const head = await readRequestHead(reader);
    if (head !== null) requestBodyFraming(head);
  } catch (error) {
    assert.ok(error instanceof HttpParseError, String(error));
    return error;
  }
  assert.fail(`expected a parse error for ${JSON.stringify(text)}`);
}

Deno.test("readRequestHead() parses an absolute-form request in small pieces", async () => {
  const reader = new BufferedReader(
    bytesReader("GET http://a.test/x?y=1 HTTP/1.1\r\nHost: a.test\r\nX-A:  v 1 \t\r\n\r\nrest"),
  );
  const head = await readRequestHead(reader);
  assert.deepEqual(head, {
    method: "GET",
    target: "http://a.test/x?y=1",
    version: "HTTP/1.1",
    headers: [{ name: "Host", value: "a.test" }, { name: "X-A", value: "v 1" }],
  });
  assert.equal(await drain(reader), "rest");
});

Deno.test("readRequestHead() returns null on a clean end of stream and skips leading CRLFs", async () => {
  assert.equal(await readRequestHead(new BufferedReader(bytesReader(""))), null);
  const head = await readRequestHead(new BufferedReader(bytesReader("\r\nGET / HTTP/1.0\r\n\r\n")));
  assert.equal(head?.version, "HTTP/1.0");
});

Deno.test("readRequestHead() refuses malformed heads", async (t) => {
  const cases: [string, string][] = [
    ["bare LF", "GET http://a/ HTTP/1.1\nHost: a\n\n"],
    ["obs-fold", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"],
    ["NUL in target", "GET http://a\x00b/ HTTP/1.1\r\nHost: a\r\n\r\n"],
    ["NUL in host", "GET http://a/ HTTP/1.1\r\nHost: a\x00b\r\n\r\n"],
    ["control byte in header", "GET http://a/ HTTP/1.1\r\nX: \x01\r\n\r\n"],
    ["space before colon", "GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n"],
    ["bad method", "G(T http://a/ HTTP/1.1\r\n\r\n"],
    ["bad version", "GET http://a/ HTTP/1.2\r\n\r\n"],
    ["HTTP/2", "GET http://a/ HTTP/2.0\r\n\r\n"],
    ["double space", "GET  http://a/ HTTP/1.1\r\n\r\n"],
    ["non-ASCII target", "GET http://a/\u00e9 HTTP/1.1\r\n\r\n"],
    [
      "CL and TE",
      "POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
    ["conflicting CL", "POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"],
    ["conflicting CL list", "POST http://a/ HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n"],
    ["signed CL", "POST http://a/ HTTP/1.1\r\nContent-Length: +3\r\n\r\n"],
    ["gzip TE", "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"],
    ["TE in 1.0", "POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"],
    ["truncated", "GET http://a/ HTTP/1.1\r\nHost: a\r\n"],
  ];
  for (const [name, text] of cases) {
    await t.step(name, async () => {
      await parseError(text);
    });
  }
});

Deno.test("readRequestHead() enforces the head size and header count limits", async () => {
  const big = "GET http://a/ HTTP/1.1\r\nX: " + "a".repeat(70_000) + "\r\n\r\n";
  assert.equal((await parseError(big)).code, "head_too_large");
  const many = "GET http://a/ HTTP/1.1\r\n" + "X: 1\r\n".repeat(101) + "\r\n";
  assert.equal((await parseError(many)).code, "too_many_headers");
  const ok = "GET http://a/ HTTP/1.1\r\n" + "X: 1\r\n".repeat(100) + "\r\n";
  const head = await readRequestHead(new BufferedReader(bytesReader(ok, 1000)));
  assert.equal(head?.headers.length, 100);
});

Deno.test("requestBodyFraming() accepts identical duplicate lengths and chunked", async () => {
  const read = async (text: string) =>
    requestBodyFraming((await readRequestHead(new BufferedReader(bytesReader(text))))!);
  assert.deepEqual(
    await read("POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\n"),
    { kind: "length", length: 3 },
  );
  assert.deepEqual(await read("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"), {
    kind: "chunked",
  });
  assert.deepEqual(await read("GET http://a/ HTTP/1.1\r\n\r\n"), { kind: "none" });
});

Deno.test("responseBodyFraming() follows RFC 9112 section 6.3", async () => {
  const frame = async (text: string, method = "GET"): Promise<BodyFraming> =>
    responseBodyFraming(await readResponseHead(new BufferedReader(bytesReader(text))), method);
  assert.deepEqual(await frame("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD"), {
    kind: "none",
  });
  assert.deepEqual(await frame("HTTP/1.1 204 No Content\r\n\r\n"), { kind: "none" });
  assert.deepEqual(await frame("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"), {
    kind: "none",
  });
  assert.deepEqual(await frame("HTTP/1.1 200 OK\r\n\r\n"), { kind: "until_close" });
  assert.deepEqual(await frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), {
    kind: "chunked",
  });
  assert.deepEqual(await frame("HTTP/1.1 200\r\nContent-Length: 7\r\n\r\n"), {
    kind: "length",
    length: 7,
  });
  await assert.rejects(
    frame("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
    HttpParseError,
  );
});

Deno.test("copyBody() forwards a chunked body with trailers unchanged", async () => {
  const body = "5;ext=1\r\nhello\r\n3\r\n, w\r\n0\r\nX-T: 1\r\n\r\nNEXT";
  const reader = new BufferedReader(bytesReader(body, 3));
  const out = sink();
  await copyBody(reader, out, { kind: "chunked" });
  assert.equal(out.text(), body.slice(0, -4));
  assert.equal(await drain(reader), "NEXT");
});

Deno.test("copyBody() refuses bad chunk framing", async (t) => {
  for (
    const [name, body] of [
      ["no hex size", "zz\r\nhello\r\n0\r\n\r\n"],
      ["missing CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n"],
      ["negative size", "-5\r\nhello\r\n0\r\n\r\n"],
      ["huge size", "fffffffffffffffff\r\n"],
      ["bare LF", "5\nhello\r\n0\r\n\r\n"],
      ["early end", "5\r\nhel"],
    ]
  ) {
    await t.step(name, async () => {
      await assert.rejects(
        copyBody(new BufferedReader(bytesReader(body)), sink(), { kind: "chunked" }),
        HttpParseError,
      );
    });
  }
});

Deno.test("copyBody() copies exactly Content-Length bytes and fails on a short body", async () => {
  const reader = new BufferedReader(bytesReader("0123456789tail"));
  const out = sink();
  await copyBody(reader, out, { kind: "length", length: 10 });
  assert.equal(out.text(), "0123456789");
  await assert.rejects(
    copyBody(new BufferedReader(bytesReader("abc")), sink(), { kind: "length", length: 10 }),
    HttpParseError,
  );
});

Deno.test("stripHopByHop() drops hop-by-hop fields and those named in Connection, keeps framing", () => {
  const kept = stripHopByHop([
    { name: "Host", value: "a" },
    { name: "Connection", value: "keep-alive, X-Secret, content-length" },
    { name: "X-Secret", value: "1" },
    { name: "Proxy-Authorization", value: "Basic x" },
    { name: "Proxy-Connection", value: "keep-alive" },
    { name: "Keep-Alive", value: "timeout=5" },
    { name: "Content-Length", value: "3" },
    { name: "Accept", value: "*/*" },
  ]);
  assert.deepEqual(kept.map((h) => h.name), ["Host", "Content-Length", "Accept"]);
});

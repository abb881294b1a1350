/**
 * Fuzz targets for proxy/http_parser.ts, run in memory: request heads with
 * body framing and body copy (`http_request`), and response heads with
 * response framing (`http_response`). Inputs are raw bytes, structured
 * heads built from hostile parts (smuggling headers, odd line endings,
 * obs-fold, control bytes), and mutations of those, delivered to the parser
 * in random slices.
 *
 * Properties: only `HttpParseError` escapes; the result does not depend on
 * how the bytes were sliced; a parsed head has no control byte, space or
 * non-ASCII byte in its target and no CR, LF or NUL in any field, and
 * re-parses to itself after serialization; a body framing never comes from a
 * head with both `Content-Length` and `Transfer-Encoding`; a copied body is
 * exactly the bytes it consumed (length bodies: exactly `length` bytes).
 *
 * @module
 */
import fc from "fast-check";
import {
  BufferedReader,
  type ByteReader,
  copyBody,
  headerValues,
  HttpParseError,
  isToken,
  parseRequestHead,
  parseResponseHead,
  readRequestHead,
  readResponseHead,
  requestBodyFraming,
  type RequestHead,
  responseBodyFraming,
  type ResponseHead,
  serializeRequestHead,
  serializeResponseHead,
} from "../../proxy/http_parser.ts";
import {
  check,
  type FuzzReport,
  type FuzzRunOptions,
  type FuzzTarget,
  onlyRefusals,
  runAsync,
  sameBytes,
} from "./harness.ts";

/** Hands out `bytes` in slices of the given sizes (cycled), then end of stream. */
export class SlicedSource implements ByteReader {
  #bytes: Uint8Array;
  #cuts: readonly number[];
  #i = 0;
  /** Bytes handed out so far. */
  offset = 0;
  constructor(bytes: Uint8Array, cuts: readonly number[]) {
    this.#bytes = bytes;
    this.#cuts = cuts.length === 0 ? [bytes.length || 1] : cuts;
  }
  read(p: Uint8Array): Promise<number | null> {
    if (this.offset >= this.#bytes.length) return Promise.resolve(null);
    const want = Math.max(1, this.#cuts[this.#i++ % this.#cuts.length]);
    const n = Math.min(p.length, want, this.#bytes.length - this.offset);
    p.set(this.#bytes.subarray(this.offset, this.offset + n));
    this.offset += n;
    return Promise.resolve(n);
  }
}

/** Collects written bytes; writes a random-ish amount each time (partial writes). */
class Sink {
  chunks: Uint8Array[] = [];
  length = 0;
  write(p: Uint8Array): Promise<number> {
    const n = p.length > 7 ? Math.ceil(p.length / 2) : p.length;
    this.chunks.push(p.slice(0, n));
    this.length += n;
    return Promise.resolve(n);
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

const enc = (text: string): Uint8Array => {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
};

const METHODS = ["GET", "POST", "CONNECT", "HEAD", "PUT", "G\x00T", "get", "GE T", "", "M-SEARCH"];
const TARGETS = [
  "http://allowed.test/",
  "http://allowed.test:80/a?b",
  "allowed.test:443",
  "/",
  "*",
  "http://a.test/\x01",
  "http://a\x00.test/",
  "http://[::1]:80/",
  "http://0x7f.1/",
  "http://a.test/%0d%0a",
  "",
  "http://é.test/",
];
const VERSIONS = ["HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "http/1.1", "HTTP/2", "HTTP/1.1 "];
const HEADER_NAMES = [
  "Host",
  "Content-Length",
  "content-length",
  "Transfer-Encoding",
  "transfer-encoding",
  "Connection",
  "Upgrade",
  "X-A",
  "Content-Length ",
  " Transfer-Encoding",
  "Trailer",
  "",
  "X:Y",
];
const HEADER_VALUES = [
  "allowed.test",
  "0",
  "5",
  "5, 5",
  "5,6",
  "+5",
  "-1",
  "0x5",
  "999999999999999999",
  "chunked",
  "Chunked",
  "gzip, chunked",
  "chunked, gzip",
  " chunked ",
  "\tchunked",
  "identity",
  "close",
  "keep-alive, Upgrade",
  "chunked\x00",
  "a\rb",
  "a\nb",
  "\x7f",
  "",
];
const EOLS = ["\r\n", "\n", "\r", " \r\n", "\r\r\n"];

/** Mostly the first (valid) element, sometimes any of the others. */
function mostly<T>(values: readonly T[], other?: fc.Arbitrary<T>): fc.Arbitrary<T> {
  const rest: fc.WeightedArbitrary<T>[] = [{ weight: 2, arbitrary: fc.constantFrom(...values) }];
  if (other !== undefined) rest.push({ weight: 1, arbitrary: other });
  return fc.oneof({ weight: 40, arbitrary: fc.constant(values[0]) }, ...rest);
}
const BODIES = [
  "",
  "hello",
  "5\r\nhello\r\n0\r\n\r\n",
  "5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
  "0\r\n\r\nGET http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n",
  "ffffffffffffffff\r\n",
  "5 \r\nhello\r\n0\r\n\r\n",
  "5\nhello\n0\n\n",
  "-5\r\nhello\r\n0\r\n\r\n",
  "0x5\r\nhello\r\n0\r\n\r\n",
  "5\r\nhelloXX0\r\n\r\n",
];

/** A structured message: start line parts, headers, an end-of-line per line and a body. */
const structured = (startLine: fc.Arbitrary<string>) =>
  fc.record({
    start: startLine,
    headers: fc.array(
      fc.record({
        name: fc.oneof(
          { weight: 20, arbitrary: fc.constantFrom(...HEADER_NAMES.slice(0, 8)) },
          { weight: 1, arbitrary: fc.constantFrom(...HEADER_NAMES) },
          { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
        ),
        value: fc.oneof(
          { weight: 12, arbitrary: fc.constantFrom(...HEADER_VALUES.slice(0, 17)) },
          { weight: 1, arbitrary: fc.constantFrom(...HEADER_VALUES) },
          { weight: 2, arbitrary: fc.string({ maxLength: 12 }) },
          { weight: 2, arbitrary: fc.nat({ max: 40 }).map(String) },
        ),
        eol: mostly(EOLS),
        fold: fc.integer({ min: 0, max: 39 }).map((n) => n === 0),
      }),
      { maxLength: 8 },
    ),
    startEol: mostly(EOLS),
    endEol: mostly(EOLS),
    body: fc.oneof(fc.constantFrom(...BODIES), fc.string({ maxLength: 40 })),
  }).map((m) => {
    let text = m.start + m.startEol;
    for (const h of m.headers) {
      text += `${h.name}: ${h.value}${h.eol}`;
      if (h.fold) text += ` folded${h.eol}`;
    }
    return enc(text + m.endEol + m.body);
  });

/** Byte-level mutations: flip, insert, delete, duplicate a slice. */
function mutated(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.tuple(
    base,
    fc.array(
      fc.tuple(fc.nat(), fc.nat({ max: 255 }), fc.constantFrom("flip", "insert", "delete", "dup")),
      { minLength: 1, maxLength: 4 },
    ),
  ).map(([bytes, edits]) => {
    let b = Array.from(bytes);
    for (const [at, value, op] of edits) {
      const i = b.length === 0 ? 0 : at % b.length;
      if (op === "flip" && b.length > 0) b[i] = value;
      else if (op === "insert") b.splice(i, 0, value);
      else if (op === "delete") b.splice(i, 1);
      else if (op === "dup") b = [...b.slice(0, i), ...b.slice(i, i + 8), ...b.slice(i)];
    }
    return new Uint8Array(b.slice(0, 2048));
  });
}

const requestLine = fc.tuple(
  fc.oneof(mostly(METHODS), mostly(METHODS.slice(1))),
  mostly(TARGETS, fc.string({ maxLength: 20 })),
  mostly(VERSIONS),
).map(([m, t, v]) => `${m} ${t} ${v}`);

const statusLine = fc.tuple(
  mostly(VERSIONS),
  fc.constantFrom("200", "200", "204", "304", "101", "100", "1000", "20", "abc", "599"),
  mostly(["OK", "", "No\x00Content", "Partial Content"]),
).map(([v, s, r]) => `${v} ${s} ${r}`);

function messages(start: fc.Arbitrary<string>): fc.Arbitrary<Uint8Array> {
  const s = structured(start);
  return fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
    { weight: 4, arbitrary: s },
    { weight: 3, arbitrary: mutated(s) },
  );
}

/** Request inputs (exported so a test can check how deep they reach). */
export const requestMessages: fc.Arbitrary<Uint8Array> = messages(requestLine);

const cuts = fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 6 });

type Outcome<T> = { ok: true; value: T } | { ok: false; code: string };

async function attempt<T>(work: () => Promise<T>, where: string): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await work() };
  } catch (error) {
    onlyRefusals(error, [HttpParseError], where);
    return { ok: false, code: (error as HttpParseError).code };
  }
}

/** True when `text` holds a control character other than HTAB (or DEL). */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

function checkFields(headers: RequestHead["headers"], what: string): void {
  for (const h of headers) {
    check(isToken(h.name), `${what}: header name ${JSON.stringify(h.name)} is not a token`);
    check(
      !hasControl(h.value),
      `${what}: control byte in header value ${JSON.stringify(h.value)}`,
    );
    check(h.value === h.value.replace(/^[ \t]+|[ \t]+$/g, ""), `${what}: value not trimmed`);
  }
}

function sameHead(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function checkRequest([bytes, slicing]: [Uint8Array, number[]]): Promise<void> {
  const whole = new BufferedReader(new SlicedSource(bytes, [bytes.length || 1]), 64);
  const one = await attempt(() => readRequestHead(whole), "readRequestHead");
  const source = new SlicedSource(bytes, slicing);
  const reader = new BufferedReader(source, 16);
  const sliced = await attempt(() => readRequestHead(reader), "readRequestHead (sliced)");
  check(
    one.ok === sliced.ok && sameHead(one, sliced),
    `slicing changed the result: ${JSON.stringify(one)} vs ${JSON.stringify(sliced)}`,
  );
  if (!sliced.ok || sliced.value === null) return;
  const head = sliced.value;
  check(isToken(head.method), `method ${JSON.stringify(head.method)} is not a token`);
  check(/^[\x21-\x7e]+$/.test(head.target), `bad byte in target ${JSON.stringify(head.target)}`);
  checkFields(head.headers, "request");
  const again = serializeRequestHead(head);
  const reparsed = parseRequestHead(again.subarray(0, again.length - 2));
  check(sameHead(reparsed, head), "a serialized head does not re-parse to itself");

  let framing;
  try {
    framing = requestBodyFraming(head);
  } catch (error) {
    onlyRefusals(error, [HttpParseError], "requestBodyFraming");
    return;
  }
  const hasCl = headerValues(head.headers, "content-length").length > 0;
  const hasTe = headerValues(head.headers, "transfer-encoding").length > 0;
  check(!(hasCl && hasTe), "a framing was chosen for a head with both CL and TE");
  if (framing.kind === "chunked") check(hasTe && head.version === "HTTP/1.1", "chunked without TE");
  const start = source.offset - reader.buffered;
  const sink = new Sink();
  const copied = await attempt(
    () => copyBody(reader, sink, framing, { smallBufferSize: 7 }),
    "copyBody",
  );
  if (!copied.ok) return;
  const end = source.offset - reader.buffered;
  const out = sink.bytes();
  check(sameBytes(out, bytes.subarray(start, end)), "the copied body is not the bytes consumed");
  if (framing.kind === "length") check(out.length === framing.length, "length body size differs");
}

async function checkResponse(
  [bytes, slicing, method]: [Uint8Array, number[], string],
): Promise<void> {
  const whole = new BufferedReader(new SlicedSource(bytes, [bytes.length || 1]), 64);
  const one = await attempt(() => readResponseHead(whole), "readResponseHead");
  const reader = new BufferedReader(new SlicedSource(bytes, slicing), 16);
  const sliced = await attempt(() => readResponseHead(reader), "readResponseHead (sliced)");
  check(sameHead(one, sliced), "slicing changed the response result");
  if (!sliced.ok) return;
  const head: ResponseHead = sliced.value;
  check(head.status >= 0 && head.status <= 999, `status ${head.status} out of range`);
  check(!hasControl(head.reason), "control byte in reason");
  checkFields(head.headers, "response");
  const again = serializeResponseHead(head);
  check(
    sameHead(parseResponseHead(again.subarray(0, again.length - 2)), head),
    "a serialized response head does not re-parse to itself",
  );
  let framing;
  try {
    framing = responseBodyFraming(head, method);
  } catch (error) {
    onlyRefusals(error, [HttpParseError], "responseBodyFraming");
    return;
  }
  const hasCl = headerValues(head.headers, "content-length").length > 0;
  const hasTe = headerValues(head.headers, "transfer-encoding").length > 0;
  if (framing.kind !== "none") check(!(hasCl && hasTe), "framing chosen with both CL and TE");
}

/** `http_request`: request heads, body framing and body copy. */
export const httpRequestTarget: FuzzTarget = {
  name: "http_request",
  description: "readRequestHead + requestBodyFraming + copyBody over sliced in-memory input",
  kind: "pure",
  run(options: FuzzRunOptions): Promise<FuzzReport> {
    return runAsync("http_request", fc.tuple(requestMessages, cuts), checkRequest, options);
  },
};

/** `http_response`: response heads and response framing. */
export const httpResponseTarget: FuzzTarget = {
  name: "http_response",
  description: "readResponseHead + responseBodyFraming over sliced in-memory input",
  kind: "pure",
  run(options: FuzzRunOptions): Promise<FuzzReport> {
    return runAsync(
      "http_response",
      fc.tuple(messages(statusLine), cuts, fc.constantFrom("GET", "HEAD", "POST")),
      checkResponse,
      options,
    );
  },
};

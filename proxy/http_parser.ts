/**
 * A strict HTTP/1.1 (RFC 9112) request-head parser and body framing over a
 * buffered byte reader. The proxy uses it for absolute-form requests; the MITM
 * handler reuses it inside TLS tunnels. It refuses everything a hostile client
 * could use to make two parsers disagree: bare LF, obs-fold, control bytes,
 * `Content-Length` together with `Transfer-Encoding`, conflicting lengths,
 * malformed chunks, oversized heads.
 *
 * It works on any {@linkcode ByteReader} / {@linkcode ByteWriter} (a
 * `Deno.Conn` is both), so nothing here is tied to sockets.
 *
 * @example
 * ```ts
 * const reader = new BufferedReader(conn);
 * const head = await readRequestHead(reader);
 * if (head !== null) {
 *   const framing = requestBodyFraming(head);
 *   await copyBody(reader, upstream, framing);
 * }
 * ```
 *
 * @module
 */

/** Anything bytes can be read from (`Deno.Conn` is one). `null` means end of stream. */
export interface ByteReader {
  /** Reads up to `p.length` bytes into `p`; resolves to the count, or null at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
}

/** Anything bytes can be written to (`Deno.Conn` is one). May write fewer bytes than given. */
export interface ByteWriter {
  /** Writes some of `p`; resolves to how many bytes were written. */
  write(p: Uint8Array): Promise<number>;
}

/** Size limits of a message head. */
export interface HttpLimits {
  /** Largest head (request line + header lines + blank line) in bytes. */
  readonly maxHeadBytes: number;
  /** Most header fields in one head (or one chunked trailer). */
  readonly maxHeaders: number;
}

/** Default head limits: 64 KiB and 100 header fields. */
export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({
  maxHeadBytes: 64 * 1024,
  maxHeaders: 100,
});

/** Why a message was refused. */
export type HttpParseErrorCode =
  | "malformed"
  | "head_too_large"
  | "too_many_headers"
  | "bad_framing"
  | "unexpected_eof";

/** A message that must be refused (400) and its connection closed. */
export class HttpParseError extends Error {
  /** What kind of problem this is. */
  readonly code: HttpParseErrorCode;
  constructor(code: HttpParseErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = "HttpParseError";
    this.code = code;
  }
}

/** One header field as received: the name as spelled, the value without surrounding whitespace. */
export interface HttpHeader {
  /** Field name as sent (compare case-insensitively). */
  readonly name: string;
  /** Field value, leading and trailing SP/HTAB removed. */
  readonly value: string;
}

/** A parsed request head. */
export interface RequestHead {
  /** The method token, case preserved (methods are case-sensitive). */
  readonly method: string;
  /** The request target exactly as sent. */
  readonly target: string;
  /** The protocol version. */
  readonly version: "HTTP/1.0" | "HTTP/1.1";
  /** Header fields in order. */
  readonly headers: readonly HttpHeader[];
}

/** A parsed response head. */
export interface ResponseHead {
  /** The protocol version. */
  readonly version: "HTTP/1.0" | "HTTP/1.1";
  /** The three-digit status code. */
  readonly status: number;
  /** The reason phrase (may be empty). */
  readonly reason: string;
  /** Header fields in order. */
  readonly headers: readonly HttpHeader[];
}

/** How a message body is delimited. */
export type BodyFraming =
  | { readonly kind: "none" }
  | { readonly kind: "length"; readonly length: number }
  | { readonly kind: "chunked" }
  | { readonly kind: "until_close" };

/** Hands out large buffers for bulk copies and takes them back. */
export interface BufferProvider {
  /** A large buffer, exclusively the caller's until released. */
  acquire(): Uint8Array;
  /** Returns a buffer obtained from {@linkcode BufferProvider.acquire}. */
  release(buffer: Uint8Array): void;
}

const EMPTY = new Uint8Array(0);
const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;

/**
 * A read buffer in front of a {@linkcode ByteReader}: lets the parser look for
 * the end of a head, and hands bytes that arrived after it to the body copier
 * or a tunnel. Starts small and grows only as far as a head needs.
 */
export class BufferedReader implements ByteReader {
  #source: ByteReader;
  #initialSize: number;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #eof = false;

  /** Wraps `source`; `initialSize` is the starting buffer size (it grows on demand). */
  constructor(source: ByteReader, initialSize = 4096) {
    this.#source = source;
    this.#initialSize = initialSize;
    this.#buf = new Uint8Array(initialSize);
  }

  /** Number of bytes buffered and not yet consumed. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** True once the source reported end of stream. */
  get eof(): boolean {
    return this.#eof;
  }

  /** A view of the buffered bytes (valid until the next call). */
  peek(): Uint8Array {
    return this.#buf.subarray(this.#start, this.#end);
  }

  /** Marks `n` buffered bytes as consumed. */
  consume(n: number): void {
    if (n < 0 || n > this.buffered) throw new RangeError(`Cannot consume ${n} bytes`);
    this.#start += n;
    if (this.#start === this.#end) {
      this.#start = 0;
      this.#end = 0;
      if (this.#buf.length > this.#initialSize) this.#buf = new Uint8Array(this.#initialSize);
    }
  }

  /**
   * Reads more bytes from the source into the buffer, growing it up to
   * `maxBuffered`. Resolves false at end of stream.
   */
  async fill(maxBuffered = DEFAULT_HTTP_LIMITS.maxHeadBytes + 4096): Promise<boolean> {
    if (this.#eof) return false;
    if (this.#end === this.#buf.length) {
      const used = this.buffered;
      if (this.#start > 0 && used < this.#buf.length / 2) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        if (this.#buf.length >= maxBuffered) {
          throw new HttpParseError("head_too_large", "Message head is larger than the limit");
        }
        const grown = new Uint8Array(
          Math.min(Math.max(this.#buf.length * 2, this.#initialSize), maxBuffered),
        );
        grown.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = grown;
      }
      this.#start = 0;
      this.#end = used;
    }
    const n = await this.#source.read(this.#buf.subarray(this.#end));
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    return true;
  }

  /** Reads buffered bytes first, then straight from the source into `p`. */
  read(p: Uint8Array): Promise<number | null> {
    const available = this.buffered;
    if (available > 0) {
      const n = Math.min(available, p.length);
      p.set(this.#buf.subarray(this.#start, this.#start + n));
      this.consume(n);
      return Promise.resolve(n);
    }
    if (this.#eof) return Promise.resolve(null);
    return this.#source.read(p);
  }

  /**
   * Removes and returns a copy of every buffered byte (e.g. to start a
   * tunnel with) and lets go of the buffer; a later read allocates again.
   */
  take(): Uint8Array {
    const copy = this.peek().slice();
    this.#start = 0;
    this.#end = 0;
    this.#buf = EMPTY;
    return copy;
  }
}

/**
 * Reads one request head. Resolves null when the stream ends cleanly before
 * the first byte (an idle keep-alive connection closing). Throws
 * {@linkcode HttpParseError} for anything malformed or too large.
 */
export async function readRequestHead(
  reader: BufferedReader,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
): Promise<RequestHead | null> {
  const raw = await readHeadBytes(reader, limits);
  if (raw === null) return null;
  return parseRequestHead(raw, limits);
}

/** Reads one response head; throws {@linkcode HttpParseError} when malformed or at end of stream. */
export async function readResponseHead(
  reader: BufferedReader,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
): Promise<ResponseHead> {
  const raw = await readHeadBytes(reader, limits);
  if (raw === null) {
    throw new HttpParseError("unexpected_eof", "Connection closed before a response head");
  }
  return parseResponseHead(raw, limits);
}

/**
 * Reads bytes up to and including the blank line that ends a head and
 * returns them without that final CRLF CRLF (but with the CRLF of the last
 * line). Skips empty lines before the start line (RFC 9112 section 2.2).
 */
async function readHeadBytes(
  reader: BufferedReader,
  limits: HttpLimits,
): Promise<Uint8Array | null> {
  let scanFrom = 0;
  let sawAny = false;
  for (;;) {
    // Drop leading CRLFs (robustness after a body) but not a bare LF.
    let view = reader.peek();
    let skipped = 0;
    while (
      scanFrom === 0 && skipped + 1 < view.length && view[skipped] === CR &&
      view[skipped + 1] === LF
    ) {
      skipped += 2;
    }
    if (skipped > 0) {
      reader.consume(skipped);
      view = reader.peek();
      sawAny = true;
    }
    if (view.length > 0) sawAny = true;
    const end = findHeadEnd(view, scanFrom);
    if (end !== -1) {
      if (end + 4 > limits.maxHeadBytes) {
        throw new HttpParseError(
          "head_too_large",
          `Message head is larger than ${limits.maxHeadBytes} bytes`,
        );
      }
      const head = view.slice(0, end + 2);
      reader.consume(end + 4);
      return head;
    }
    if (view.length > limits.maxHeadBytes) {
      throw new HttpParseError(
        "head_too_large",
        `Message head is larger than ${limits.maxHeadBytes} bytes`,
      );
    }
    scanFrom = Math.max(0, view.length - 3);
    const more = await reader.fill(limits.maxHeadBytes + 4096);
    if (!more) {
      if (!sawAny && reader.buffered === 0) return null;
      throw new HttpParseError(
        "unexpected_eof",
        "Connection closed in the middle of a message head",
      );
    }
  }
}

function findHeadEnd(view: Uint8Array, from: number): number {
  for (let i = from; i + 3 < view.length; i++) {
    if (view[i] === CR && view[i + 1] === LF && view[i + 2] === CR && view[i + 3] === LF) return i;
  }
  return -1;
}

/** Splits head bytes into lines on CRLF; a lone CR or LF is a control byte and refused later. */
function splitLines(raw: Uint8Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i + 1 < raw.length; i++) {
    if (raw[i] === CR && raw[i + 1] === LF) {
      lines.push(raw.subarray(start, i));
      start = i + 2;
      i++;
    }
  }
  if (start !== raw.length) {
    throw new HttpParseError("malformed", "Message head does not end with CRLF");
  }
  return lines;
}

/** Decodes bytes one-to-one into a string (ISO-8859-1), so no byte is lost or merged. */
export function latin1Decode(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return out;
}

/** Encodes a string of code points 0-255 one byte each (the inverse of {@linkcode latin1Decode}). */
export function latin1Encode(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) throw new RangeError("Header text must be ISO-8859-1");
    out[i] = code;
  }
  return out;
}

const TCHAR = (() => {
  const table = new Uint8Array(256);
  for (let c = 0x30; c <= 0x39; c++) table[c] = 1;
  for (let c = 0x41; c <= 0x5a; c++) table[c] = 1;
  for (let c = 0x61; c <= 0x7a; c++) table[c] = 1;
  for (const ch of "!#$%&'*+-.^_`|~") table[ch.charCodeAt(0)] = 1;
  return table;
})();

/** True when `text` is a non-empty RFC 9110 token (method names, header names, codings). */
export function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff || TCHAR[code] !== 1) return false;
  }
  return true;
}

function isTokenBytes(bytes: Uint8Array): boolean {
  if (bytes.length === 0) return false;
  for (const b of bytes) if (TCHAR[b] !== 1) return false;
  return true;
}

function parseVersion(bytes: Uint8Array): "HTTP/1.0" | "HTTP/1.1" {
  const text = latin1Decode(bytes);
  if (text === "HTTP/1.1" || text === "HTTP/1.0") return text;
  throw new HttpParseError("malformed", `Unsupported HTTP version "${printable(text)}"`);
}

function parseHeaderLines(lines: Uint8Array[], limits: HttpLimits): HttpHeader[] {
  if (lines.length > limits.maxHeaders) {
    throw new HttpParseError("too_many_headers", `More than ${limits.maxHeaders} header fields`);
  }
  const headers: HttpHeader[] = [];
  for (const line of lines) {
    if (line.length === 0) throw new HttpParseError("malformed", "Empty header line");
    if (line[0] === SP || line[0] === HTAB) {
      throw new HttpParseError("malformed", "Obsolete line folding is not accepted");
    }
    const colon = line.indexOf(0x3a);
    if (colon <= 0) throw new HttpParseError("malformed", "Header line without a field name");
    const nameBytes = line.subarray(0, colon);
    if (!isTokenBytes(nameBytes)) {
      throw new HttpParseError(
        "malformed",
        `Invalid header field name "${printable(latin1Decode(nameBytes))}"`,
      );
    }
    let start = colon + 1;
    let end = line.length;
    while (start < end && (line[start] === SP || line[start] === HTAB)) start++;
    while (end > start && (line[end - 1] === SP || line[end - 1] === HTAB)) end--;
    for (let i = start; i < end; i++) {
      const b = line[i];
      if ((b < 0x20 && b !== HTAB) || b === 0x7f) {
        throw new HttpParseError(
          "malformed",
          `Control byte in header field "${latin1Decode(nameBytes)}"`,
        );
      }
    }
    headers.push({ name: latin1Decode(nameBytes), value: latin1Decode(line.subarray(start, end)) });
  }
  return headers;
}

/** Parses head bytes (start line and header lines, each ending in CRLF) as a request. */
export function parseRequestHead(
  raw: Uint8Array,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
): RequestHead {
  const lines = splitLines(raw);
  const start = lines[0];
  const firstSp = start.indexOf(SP);
  const lastSp = start.lastIndexOf(SP);
  if (firstSp <= 0 || lastSp === firstSp) {
    throw new HttpParseError("malformed", "Malformed request line");
  }
  const methodBytes = start.subarray(0, firstSp);
  const targetBytes = start.subarray(firstSp + 1, lastSp);
  if (!isTokenBytes(methodBytes)) throw new HttpParseError("malformed", "Invalid method token");
  if (targetBytes.length === 0) throw new HttpParseError("malformed", "Empty request target");
  for (const b of targetBytes) {
    // Visible ASCII only: no controls, NUL, spaces (a second SP) or raw non-ASCII.
    if (b <= 0x20 || b >= 0x7f) {
      throw new HttpParseError("malformed", "Invalid byte in the request target");
    }
  }
  const version = parseVersion(start.subarray(lastSp + 1));
  return {
    method: latin1Decode(methodBytes),
    target: latin1Decode(targetBytes),
    version,
    headers: parseHeaderLines(lines.slice(1), limits),
  };
}

/** Parses head bytes as a response (status line and header lines). */
export function parseResponseHead(
  raw: Uint8Array,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
): ResponseHead {
  const lines = splitLines(raw);
  const start = lines[0];
  const firstSp = start.indexOf(SP);
  if (firstSp <= 0) throw new HttpParseError("malformed", "Malformed status line");
  const version = parseVersion(start.subarray(0, firstSp));
  const statusBytes = start.subarray(firstSp + 1, firstSp + 4);
  // A status below 100 ("000", "042") is no status at all; taking it for an interim 1xx
  // would make the proxy read the next bytes as another response.
  if (
    statusBytes.length !== 3 || !statusBytes.every((b) => b >= 0x30 && b <= 0x39) ||
    statusBytes[0] === 0x30
  ) {
    throw new HttpParseError("malformed", "Malformed status code");
  }
  const after = start[firstSp + 4];
  if (after !== undefined && after !== SP) {
    throw new HttpParseError("malformed", "Malformed status line");
  }
  const reasonBytes = start.subarray(firstSp + 5);
  for (const b of reasonBytes) {
    if ((b < 0x20 && b !== HTAB) || b === 0x7f) {
      throw new HttpParseError("malformed", "Control byte in the reason phrase");
    }
  }
  return {
    version,
    status: Number(latin1Decode(statusBytes)),
    reason: latin1Decode(reasonBytes),
    headers: parseHeaderLines(lines.slice(1), limits),
  };
}

/** Every value of header `name` (case-insensitive), in order. */
export function headerValues(headers: readonly HttpHeader[], name: string): string[] {
  const lower = name.toLowerCase();
  return headers.filter((h) => h.name.toLowerCase() === lower).map((h) => h.value);
}

/** The comma-separated list elements of header `name`, lower-cased, empty elements dropped. */
export function headerTokens(headers: readonly HttpHeader[], name: string): string[] {
  return headerValues(headers, name)
    .flatMap((value) => value.split(","))
    .map((item) => item.trim().toLowerCase())
    .filter((item) => item !== "");
}

function contentLength(headers: readonly HttpHeader[]): number | null {
  const values = headerValues(headers, "content-length");
  if (values.length === 0) return null;
  let length: number | null = null;
  for (const value of values) {
    for (const part of value.split(",")) {
      const item = part.trim();
      if (!/^[0-9]{1,15}$/.test(item)) {
        throw new HttpParseError("bad_framing", `Invalid Content-Length "${printable(value)}"`);
      }
      const n = Number(item);
      if (length !== null && n !== length) {
        throw new HttpParseError("bad_framing", "Conflicting Content-Length values");
      }
      length = n;
    }
  }
  return length;
}

/**
 * How a request's body is framed (RFC 9112 section 6.3). Refuses both
 * `Content-Length` and `Transfer-Encoding`, codings other than exactly
 * `chunked`, `Transfer-Encoding` in HTTP/1.0, and bad or conflicting lengths.
 */
export function requestBodyFraming(head: RequestHead): BodyFraming {
  const te = headerValues(head.headers, "transfer-encoding");
  const length = contentLength(head.headers);
  if (te.length > 0) {
    if (length !== null) {
      throw new HttpParseError(
        "bad_framing",
        "Both Content-Length and Transfer-Encoding are present",
      );
    }
    if (head.version === "HTTP/1.0") {
      throw new HttpParseError("bad_framing", "Transfer-Encoding is not allowed in HTTP/1.0");
    }
    const codings = headerTokens(head.headers, "transfer-encoding");
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw new HttpParseError(
        "bad_framing",
        `Unsupported Transfer-Encoding "${printable(te.join(", "))}"`,
      );
    }
    return { kind: "chunked" };
  }
  if (length === null || length === 0) return { kind: "none" };
  return { kind: "length", length };
}

/**
 * How a response's body is framed, given the request method it answers.
 * HEAD answers and 1xx/204/304 have none; a response with both
 * `Content-Length` and `Transfer-Encoding` is refused (a smuggling sign).
 */
export function responseBodyFraming(head: ResponseHead, requestMethod: string): BodyFraming {
  if (requestMethod === "HEAD" || head.status < 200 || head.status === 204 || head.status === 304) {
    return { kind: "none" };
  }
  const te = headerTokens(head.headers, "transfer-encoding");
  const length = contentLength(head.headers);
  // Presence counts, as for requests: an empty Transfer-Encoding next to a
  // Content-Length is still both, and clients disagree about which wins.
  if (headerValues(head.headers, "transfer-encoding").length > 0) {
    if (length !== null) {
      throw new HttpParseError(
        "bad_framing",
        "Both Content-Length and Transfer-Encoding are present",
      );
    }
    return te[te.length - 1] === "chunked" && head.version === "HTTP/1.1"
      ? { kind: "chunked" }
      : { kind: "until_close" };
  }
  if (length === null) return { kind: "until_close" };
  return length === 0 ? { kind: "none" } : { kind: "length", length };
}

/** Writes every byte of `bytes`, looping over partial writes. */
export async function writeAll(writer: ByteWriter, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    offset += await writer.write(offset === 0 ? bytes : bytes.subarray(offset));
  }
}

/** Options for {@linkcode copyBody}. */
export interface CopyBodyOptions {
  /** Where large buffers come from once a read fills the small one. */
  buffers?: BufferProvider;
  /** Called after each successful read (e.g. to note activity for an idle timer). */
  onActivity?: () => void;
  /** Size of the starting buffer; default 16 KiB. */
  smallBufferSize?: number;
  /** Limits for chunk trailers. */
  limits?: HttpLimits;
}

/**
 * Copies one body from `reader` to `writer` as framed by `framing`, bytes
 * unchanged (a chunked body stays chunked: each chunk line is checked and
 * forwarded). Throws {@linkcode HttpParseError} on bad chunk framing or when
 * the stream ends early (`until_close` ends cleanly at end of stream).
 */
export async function copyBody(
  reader: BufferedReader,
  writer: ByteWriter,
  framing: BodyFraming,
  options: CopyBodyOptions = {},
): Promise<void> {
  if (framing.kind === "none") return;
  const copier = new Copier(reader, writer, options);
  try {
    if (framing.kind === "length") {
      await copier.copyExactly(framing.length);
    } else if (framing.kind === "until_close") {
      await copier.copyToEnd();
    } else {
      await copyChunked(reader, writer, copier, options.limits ?? DEFAULT_HTTP_LIMITS);
    }
  } finally {
    copier.dispose();
  }
}

/** Starts with a small buffer and moves to a large one once a read fills it. */
class Copier {
  #reader: BufferedReader;
  #writer: ByteWriter;
  #options: CopyBodyOptions;
  #buf: Uint8Array;
  #large = false;

  constructor(reader: BufferedReader, writer: ByteWriter, options: CopyBodyOptions) {
    this.#reader = reader;
    this.#writer = writer;
    this.#options = options;
    this.#buf = new Uint8Array(options.smallBufferSize ?? 16 * 1024);
  }

  async #readSome(max: number): Promise<number | null> {
    const n = await this.#reader.read(this.#buf.subarray(0, Math.min(max, this.#buf.length)));
    if (n !== null) {
      this.#options.onActivity?.();
      if (n === this.#buf.length && !this.#large && this.#options.buffers !== undefined) {
        this.#pendingUpgrade = true;
      }
    }
    return n;
  }

  #pendingUpgrade = false;

  #maybeUpgrade(): void {
    if (this.#pendingUpgrade && this.#options.buffers !== undefined) {
      this.#buf = this.#options.buffers.acquire();
      this.#large = true;
      this.#pendingUpgrade = false;
    }
  }

  async copyExactly(length: number): Promise<void> {
    let remaining = length;
    while (remaining > 0) {
      const n = await this.#readSome(remaining);
      if (n === null) {
        throw new HttpParseError("unexpected_eof", "Connection closed in the middle of a body");
      }
      await writeAll(this.#writer, this.#buf.subarray(0, n));
      remaining -= n;
      this.#maybeUpgrade();
    }
  }

  async copyToEnd(): Promise<void> {
    for (;;) {
      const n = await this.#readSome(this.#buf.length);
      if (n === null) return;
      await writeAll(this.#writer, this.#buf.subarray(0, n));
      this.#maybeUpgrade();
    }
  }

  dispose(): void {
    if (this.#large) this.#options.buffers?.release(this.#buf);
    this.#large = false;
  }
}

const MAX_CHUNK_LINE = 4096;

async function readLine(reader: BufferedReader, max: number): Promise<Uint8Array> {
  let scanFrom = 0;
  for (;;) {
    const view = reader.peek();
    for (let i = scanFrom; i + 1 < view.length; i++) {
      if (view[i] === CR && view[i + 1] === LF) {
        const line = view.slice(0, i);
        reader.consume(i + 2);
        return line;
      }
    }
    if (view.length > max) throw new HttpParseError("bad_framing", "Chunk line is too long");
    scanFrom = Math.max(0, view.length - 1);
    if (!(await reader.fill(max + 4096))) {
      throw new HttpParseError(
        "unexpected_eof",
        "Connection closed in the middle of a chunked body",
      );
    }
  }
}

const CRLF_BYTES = new Uint8Array([CR, LF]);

async function expectCrlf(reader: BufferedReader): Promise<void> {
  while (reader.buffered < 2) {
    if (!(await reader.fill())) {
      throw new HttpParseError(
        "unexpected_eof",
        "Connection closed in the middle of a chunked body",
      );
    }
  }
  const view = reader.peek();
  if (view[0] !== CR || view[1] !== LF) {
    throw new HttpParseError("bad_framing", "Chunk data is not followed by CRLF");
  }
  reader.consume(2);
}

async function copyChunked(
  reader: BufferedReader,
  writer: ByteWriter,
  copier: Copier,
  limits: HttpLimits,
): Promise<void> {
  for (;;) {
    const line = await readLine(reader, MAX_CHUNK_LINE);
    const size = parseChunkSizeLine(line);
    const out = new Uint8Array(line.length + 2);
    out.set(line);
    out.set(CRLF_BYTES, line.length);
    await writeAll(writer, out);
    if (size === 0) break;
    await copier.copyExactly(size);
    await expectCrlf(reader);
    await writeAll(writer, CRLF_BYTES);
  }
  // Trailer section: header lines, then an empty line.
  let total = 0;
  for (let count = 0;; count++) {
    const line = await readLine(reader, MAX_CHUNK_LINE);
    total += line.length + 2;
    if (line.length === 0) {
      await writeAll(writer, CRLF_BYTES);
      return;
    }
    if (count >= limits.maxHeaders || total > limits.maxHeadBytes) {
      throw new HttpParseError("too_many_headers", "Chunked trailer section is too large");
    }
    parseHeaderLines([line], limits);
    const out = new Uint8Array(line.length + 2);
    out.set(line);
    out.set(CRLF_BYTES, line.length);
    await writeAll(writer, out);
  }
}

/** Parses `1*HEXDIG [ chunk-ext ]`; refuses signs, spaces before the size, control bytes and huge sizes. */
function parseChunkSizeLine(line: Uint8Array): number {
  let i = 0;
  let size = 0;
  while (i < line.length) {
    const b = line[i];
    const digit = b >= 0x30 && b <= 0x39
      ? b - 0x30
      : b >= 0x61 && b <= 0x66
      ? b - 0x61 + 10
      : b >= 0x41 && b <= 0x46
      ? b - 0x41 + 10
      : -1;
    if (digit < 0) break;
    if (i >= 13) throw new HttpParseError("bad_framing", "Chunk size is too large");
    size = size * 16 + digit;
    i++;
  }
  if (i === 0) throw new HttpParseError("bad_framing", "Chunk line does not start with a hex size");
  // Optional whitespace then `;ext` (RFC 9112 section 7.1.1); nothing else.
  let j = i;
  while (j < line.length && (line[j] === SP || line[j] === HTAB)) j++;
  if (j < line.length && line[j] !== 0x3b) {
    throw new HttpParseError("bad_framing", "Invalid byte after the chunk size");
  }
  if (j === line.length && j !== i) {
    throw new HttpParseError("bad_framing", "Trailing whitespace in chunk line");
  }
  for (let k = j; k < line.length; k++) {
    const b = line[k];
    if ((b < 0x20 && b !== HTAB) || b === 0x7f) {
      throw new HttpParseError("bad_framing", "Control byte in a chunk extension");
    }
  }
  return size;
}

/** Makes untrusted text safe to quote in a message (control bytes as \xNN, at most 80 chars). */
export function printable(text: string): string {
  const cut = text.length > 80 ? text.slice(0, 80) + "…" : text;
  let out = "";
  for (const ch of cut) {
    const code = ch.charCodeAt(0);
    out += code < 0x20 || (code >= 0x7f && code <= 0xff)
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : ch;
  }
  return out;
}

/** Serializes a request head (start line, headers, blank line). */
export function serializeRequestHead(head: RequestHead): Uint8Array {
  let text = `${head.method} ${head.target} ${head.version}\r\n`;
  for (const h of head.headers) text += `${h.name}: ${h.value}\r\n`;
  return latin1Encode(text + "\r\n");
}

/** Serializes a response head (status line, headers, blank line). */
export function serializeResponseHead(head: ResponseHead): Uint8Array {
  let text = `${head.version} ${head.status} ${head.reason}\r\n`;
  for (const h of head.headers) text += `${h.name}: ${h.value}\r\n`;
  return latin1Encode(text + "\r\n");
}

/** Hop-by-hop fields a proxy never forwards (RFC 9110 section 7.6.1), plus proxy credentials. */
export const HOP_BY_HOP_HEADERS: readonly string[] = Object.freeze([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "upgrade",
]);

/**
 * Removes hop-by-hop fields: the fixed list, every field named in
 * `Connection`, and any name in `extra`. `Transfer-Encoding` and
 * `Content-Length` stay because bodies are forwarded with their framing.
 */
export function stripHopByHop(
  headers: readonly HttpHeader[],
  extra: readonly string[] = [],
): HttpHeader[] {
  const drop = new Set([...HOP_BY_HOP_HEADERS, ...headerTokens(headers, "connection"), ...extra]);
  drop.delete("transfer-encoding");
  drop.delete("content-length");
  drop.delete("host");
  return headers.filter((h) => !drop.has(h.name.toLowerCase()));
}

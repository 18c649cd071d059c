/**
 * Strict HTTP/1.x message heads for the site forwarder (site-forwarder.ts), which passes bytes between a client and a
 * site's upstream without node:http. Anything two parsers could read differently (request smuggling: both
 * Content-Length and Transfer-Encoding, differing lengths, obs-fold, bare CR or LF, whitespace before a colon) is
 * refused here, before a byte of the message reaches the upstream (RFC 9112 §2.2, §5, §6.1, §6.3).
 */

/** A message that cannot be forwarded: `status` is the answer a client gets for its request. */
export class HttpMessageError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpMessageError';
  }
}

/** Largest head accepted, request or response (node:http's default is 16 KiB; cookies make real heads large). */
export const MAX_HEAD = 64 * 1024;
const MAX_HEADERS = 256;

export interface MessageHead {
  /** Header fields in order, names as received, values without surrounding whitespace. */
  headers: Array<[string, string]>;
  /** Bytes the head took in the buffer, its final CRLF CRLF (and skipped leading empty lines) included. */
  length: number;
}

export interface RequestHead extends MessageHead {
  method: string;
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor: 0 | 1;
}

export interface ResponseHead extends MessageHead {
  status: number;
}

/** How a message body is delimited: none, a Content-Length, chunked coding, or the end of the connection. */
export type BodyFraming =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  | { kind: 'close' };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([!-~\x80-\xff]+) HTTP\/1\.([01])$/;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/;

/** Control characters other than HTAB: never valid in a field value, reason phrase or chunk extension (RFC 9110 §5.5). */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127) return true;
  }
  return false;
}

/**
 * Where the head starting at `from` ends (index of its CRLF CRLF), skipping the empty lines RFC 9112 §2.2 allows.
 * `scanned`: how far an earlier call already looked without finding the end (a head arriving in pieces is not
 * searched from its start again).
 */
function findHead(buf: Buffer, from: number, scanned: number): { start: number; end: number } | undefined {
  let start = from;
  while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2;
  const end = buf.indexOf('\r\n\r\n', Math.max(start, from + scanned - 3), 'latin1');
  if (end < 0) {
    if (buf.length - from > MAX_HEAD) throw new HttpMessageError(431, 'the message head is too large');
    return undefined;
  }
  if (end - from > MAX_HEAD) throw new HttpMessageError(431, 'the message head is too large');
  return { start, end };
}

function parseFields(lines: string[]): Array<[string, string]> {
  if (lines.length - 1 > MAX_HEADERS) throw new HttpMessageError(431, 'too many header fields');
  const headers: Array<[string, string]> = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HttpMessageError(400, 'a header line without a field name');
    const name = line.slice(0, colon);
    // Also catches obs-fold (a line starting with whitespace) and whitespace before the colon.
    if (!TOKEN.test(name)) throw new HttpMessageError(400, `invalid header field name "${name.slice(0, 64)}"`);
    const value = trimOws(line.slice(colon + 1));
    if (hasControlCharacter(value)) throw new HttpMessageError(400, `invalid characters in header field "${name}"`);
    headers.push([name, value]);
  }
  return headers;
}

/** The request head at `from`, or undefined while it is incomplete. Throws HttpMessageError (400/431). */
export function parseRequestHead(buf: Buffer, from: number, scanned = 0): RequestHead | undefined {
  const at = findHead(buf, from, scanned);
  if (!at) return undefined;
  const lines = buf.toString('latin1', at.start, at.end).split('\r\n');
  // A bare CR or LF inside a line: split on CRLF leaves it there.
  const m = REQUEST_LINE.exec(lines[0] as string);
  if (!m) throw new HttpMessageError(400, 'not an HTTP/1.x request line');
  return {
    method: m[1] as string,
    target: m[2] as string,
    minor: m[3] === '1' ? 1 : 0,
    headers: parseFields(lines),
    length: at.end + 4 - from,
  };
}

/** The response head at `from`, or undefined while it is incomplete. Throws HttpMessageError (502). */
export function parseResponseHead(buf: Buffer, from: number, scanned = 0): ResponseHead | undefined {
  try {
    const at = findHead(buf, from, scanned);
    if (!at) return undefined;
    const lines = buf.toString('latin1', at.start, at.end).split('\r\n');
    const m = STATUS_LINE.exec(lines[0] as string);
    if (!m || hasControlCharacter(m[2] ?? '')) throw new HttpMessageError(502, 'not an HTTP/1.x status line');
    return { status: Number(m[1]), headers: parseFields(lines), length: at.end + 4 - from };
  } catch (err) {
    if (err instanceof HttpMessageError) throw new HttpMessageError(502, `the upstream's response: ${err.message}`);
    throw err;
  }
}

/** All values of a field (case-insensitive name), in order. */
export function fieldValues(head: MessageHead, lowerName: string): string[] {
  const out: string[] = [];
  for (const [name, value] of head.headers)
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) out.push(value);
  return out;
}

/**
 * Without leading and trailing optional whitespace: spaces and tabs only (String.trim would also drop 0xA0, which
 * is obs-text here, so `chunked\xa0` would read as chunked while an upstream reads an unknown coding).
 */
export function trimOws(text: string): string {
  let a = 0;
  let b = text.length;
  while (a < b && (text.charCodeAt(a) === 32 || text.charCodeAt(a) === 9)) a++;
  while (b > a && (text.charCodeAt(b - 1) === 32 || text.charCodeAt(b - 1) === 9)) b--;
  return text.slice(a, b);
}

/** The comma-separated elements of all values of a field, trimmed and lower-cased, empty ones dropped. */
export function fieldTokens(head: MessageHead, lowerName: string): string[] {
  const out: string[] = [];
  for (const value of fieldValues(head, lowerName)) {
    for (const part of value.split(',')) {
      const t = trimOws(part).toLowerCase();
      if (t !== '') out.push(t);
    }
  }
  return out;
}

/** One Content-Length out of all its values (repeated identical values are one, RFC 9110 §8.6); else undefined. */
function contentLength(head: MessageHead): number | undefined | 'invalid' {
  const values = fieldValues(head, 'content-length');
  if (values.length === 0) return undefined;
  let length: string | undefined;
  for (const value of values) {
    for (const part of value.split(',')) {
      const v = trimOws(part);
      if (!/^\d{1,15}$/.test(v) || (length !== undefined && v !== length)) return 'invalid';
      length = v;
    }
  }
  return length === undefined ? 'invalid' : Number(length);
}

/** A request's body framing (RFC 9112 §6.3), refusing every ambiguous case with 400 (or 501 for a coding). */
export function requestFraming(head: RequestHead): BodyFraming {
  const codings = fieldTokens(head, 'transfer-encoding');
  const hasCodingField = fieldValues(head, 'transfer-encoding').length > 0;
  const length = contentLength(head);
  if (hasCodingField) {
    if (length !== undefined) throw new HttpMessageError(400, 'both Content-Length and Transfer-Encoding');
    if (head.minor === 0) throw new HttpMessageError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    if (codings.at(-1) !== 'chunked') throw new HttpMessageError(400, 'Transfer-Encoding does not end with chunked');
    if (codings.indexOf('chunked') !== codings.length - 1) throw new HttpMessageError(400, 'chunked applied twice');
    return { kind: 'chunked' };
  }
  if (length === 'invalid') throw new HttpMessageError(400, 'an invalid Content-Length');
  return length === undefined || length === 0 ? { kind: 'none' } : { kind: 'length', length };
}

/** A response's body framing for a request of `method` (RFC 9112 §6.3); throws 502 for an invalid length. */
export function responseFraming(head: ResponseHead, method: string): BodyFraming {
  const s = head.status;
  if (method === 'HEAD' || s < 200 || s === 204 || s === 304) return { kind: 'none' };
  const length = contentLength(head);
  if (fieldValues(head, 'transfer-encoding').length > 0) {
    // Both: RFC 9112 §6.3 has an intermediary drop Content-Length or treat it as an error; passing bytes through
    // unchanged, we cannot drop it, and a client that prefers it would read the rest as another response.
    if (length !== undefined)
      throw new HttpMessageError(502, "the upstream's response has both Content-Length and Transfer-Encoding");
    // Without chunked last, the body runs to the connection's end.
    return fieldTokens(head, 'transfer-encoding').at(-1) === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  }
  if (length === 'invalid') throw new HttpMessageError(502, "the upstream's response has an invalid Content-Length");
  if (length === undefined) return { kind: 'close' };
  return length === 0 ? { kind: 'none' } : { kind: 'length', length };
}

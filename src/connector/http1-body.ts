import { type BodyFraming, HttpMessageError, hasControlCharacter } from './http1-head.js';

/** Longest chunk-size line (with extensions) and trailer section accepted. */
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILERS = 64 * 1024;
/** 1-13 hex digits (up to 2^52: exact as a JS number), then optional BWS and extensions (RFC 9112 §7.1.1). */
const CHUNK_LINE = /^([0-9A-Fa-f]{1,13})(?:[ \t]*;(.*))?$/;

enum Chunked {
  Size,
  Data,
  DataEnd,
  Trailers,
}

/**
 * Finds where a message body ends in the bytes that follow its head, chunk by chunk as they arrive, without copying
 * or changing them: the forwarder passes the body on as it came and needs only its end. Chunked coding is checked
 * strictly (RFC 9112 §7.1): a bad size line or a missing CRLF after the data throws HttpMessageError(400).
 */
export class BodyScanner {
  private remaining = 0;
  private state = Chunked.Size;
  /** The chunk-size line, the CRLF after data, or the trailer section, as far as it has arrived. */
  private line = '';
  private trailerBytes = 0;

  constructor(private readonly framing: BodyFraming) {
    if (framing.kind === 'length') this.remaining = framing.length;
  }

  /** The body runs to the end of the connection (a response without length or chunked coding). */
  get closeDelimited(): boolean {
    return this.framing.kind === 'close';
  }

  /** Returns the index just past the body's end in `data` (from `from` on), or -1 when all of it is body. */
  scan(data: Buffer, from: number): number {
    switch (this.framing.kind) {
      case 'none':
        return from;
      case 'close':
        return -1;
      case 'length': {
        const available = data.length - from;
        if (available < this.remaining) {
          this.remaining -= available;
          return -1;
        }
        const end = from + this.remaining;
        this.remaining = 0;
        return end;
      }
      case 'chunked':
        return this.scanChunked(data, from);
    }
  }

  private scanChunked(data: Buffer, from: number): number {
    let i = from;
    while (i < data.length) {
      switch (this.state) {
        case Chunked.Data: {
          const take = Math.min(this.remaining, data.length - i);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = Chunked.DataEnd;
          break;
        }
        case Chunked.Size:
        case Chunked.DataEnd: {
          const lf = data.indexOf(10, i);
          const stop = lf < 0 ? data.length : lf + 1;
          this.line += data.toString('latin1', i, stop);
          i = stop;
          if (this.line.length > MAX_CHUNK_LINE) throw new HttpMessageError(400, 'a chunk-size line is too long');
          if (lf < 0) break;
          const line = this.line;
          this.line = '';
          if (!line.endsWith('\r\n')) throw new HttpMessageError(400, 'a bare LF in chunked coding');
          const text = line.slice(0, -2);
          if (this.state === Chunked.DataEnd) {
            if (text !== '') throw new HttpMessageError(400, 'chunk data longer than its size');
            this.state = Chunked.Size;
            break;
          }
          const m = CHUNK_LINE.exec(text);
          if (!m || hasControlCharacter(m[2] ?? '')) throw new HttpMessageError(400, 'an invalid chunk-size line');
          this.remaining = Number.parseInt(m[1] as string, 16);
          this.state = this.remaining === 0 ? Chunked.Trailers : Chunked.Data;
          break;
        }
        case Chunked.Trailers: {
          // Trailer fields are passed on as they are; only their end (an empty line) matters, and no bare CR/LF.
          const lf = data.indexOf(10, i);
          const stop = lf < 0 ? data.length : lf + 1;
          this.line += data.toString('latin1', i, stop);
          this.trailerBytes += stop - i;
          i = stop;
          if (this.trailerBytes > MAX_TRAILERS) throw new HttpMessageError(400, 'the trailer section is too large');
          if (lf < 0) break;
          const line = this.line;
          this.line = '';
          if (!line.endsWith('\r\n') || hasControlCharacter(line.slice(0, -2))) {
            throw new HttpMessageError(400, 'a bare CR or LF, or a control character, in the trailer section');
          }
          if (line === '\r\n') return i;
          if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:/.test(line)) throw new HttpMessageError(400, 'an invalid trailer field');
          break;
        }
      }
    }
    return -1;
  }
}

import { Duplex } from 'node:stream';
import type { QuicStream } from './quic-library.js';

/**
 * A QUIC bidirectional stream as a pool stream. The library exposes WHATWG streams; this adapts them to the Duplex the
 * pool and relay use, with QUIC's own semantics kept: `end()` sends FIN (the peer reads EOF, its direction stays open,
 * as TCP half-close), a peer FIN ends the readable side, and `destroy()` before both directions are done resets the
 * stream (RESET_STREAM + STOP_SENDING), which the peer sees as an error, like a TCP RST.
 *
 * Backpressure both ways: a read is asked of the library only while the readable buffer wants more (quiche's flow
 * control then holds the peer), and a write completes only once quiche has taken every byte into its send buffer.
 */
export class QuicStreamDuplex extends Duplex {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private reading = false;

  constructor(readonly quic: QuicStream) {
    super({ allowHalfOpen: true, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 64 * 1024 });
    this.reader = quic.readable.getReader();
    this.writer = quic.writable.getWriter();
    // Rejections are handled where the promises are awaited; these only keep them from surfacing as unhandled.
    this.reader.closed.catch(() => {});
    this.writer.closed.catch(() => {});
  }

  override _read(): void {
    if (this.reading) return;
    this.reading = true;
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await this.reader.read();
        if (this.destroyed) return;
        if (done) {
          this.push(null);
          return;
        }
        // The library hands over a fresh copy per read, so the bytes can be pushed as they are.
        const more = this.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
        if (!more) {
          this.reading = false;
          return;
        }
      }
    } catch (err) {
      this.destroy(streamError('read', err));
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writer.write(chunk).then(
      () => callback(),
      (err: unknown) => callback(streamError('write', err)),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.writer.close().then(
      () => callback(),
      (err: unknown) => callback(streamError('end', err)),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A clean end (FIN both ways) has closed the QUIC stream already; anything else resets it.
    if (!(this.readableEnded && this.writableFinished)) {
      try {
        this.quic.cancel(error ?? new Error('pool stream destroyed'));
      } catch {
        // Already closed by the connection going away.
      }
    }
    callback(error);
  }
}

/** The library rejects with the reason its codeToReason gave (for a peer reset) or its own error: name the side. */
function streamError(side: 'read' | 'write' | 'end', err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  return new Error(`QUIC stream ${side} failed: ${message}`, { cause: err });
}

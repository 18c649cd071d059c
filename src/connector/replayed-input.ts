import { Duplex } from 'node:stream';

/**
 * A client connection whose input already ended, as node:http gets it on a hand-over: reading gives the bytes we
 * held back, then the end; writes, the end and destroy go to the client. (A stream cannot take bytes back with
 * unshift once its 'end' was emitted.)
 */
export class ReplayedInput extends Duplex {
  constructor(
    private readonly client: Duplex,
    held: Buffer,
  ) {
    super({ allowHalfOpen: true });
    if (held.length > 0) this.push(held);
    this.push(null);
    client.once('close', () => this.destroy());
    client.on('error', () => {});
  }

  override _read(): void {}

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.client.write(chunk, encoding, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.client.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.client.destroy();
    callback(err);
  }
}

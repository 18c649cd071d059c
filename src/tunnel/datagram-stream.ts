import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** Largest UDP payload (IPv4 limit); fits the 2-byte length prefix. */
export const MAX_DATAGRAM = 65_507;

/**
 * UDP datagrams over a byte stream (a tunnel data connection): each datagram is a 2-byte big-endian length and its
 * bytes, so boundaries survive the stream. `onDatagram` gets each whole datagram; `send` frames one. The stream is
 * closed after `idleTimeout` ms without a datagram either way (UDP has no end of its own).
 */
export class DatagramStream {
  private buffered: Buffer = Buffer.alloc(0);
  onDatagram: (datagram: Buffer) => void = () => {};
  /** Bytes (payload only) each way, for counters. */
  sent = 0;
  received = 0;

  private readonly idleTimer: NodeJS.Timeout | undefined;

  /** `stream`: a TCP/TLS data connection, or any half-closing Duplex (a hub link over WebSocket). */
  constructor(
    readonly stream: Duplex,
    idleTimeout: number,
  ) {
    if (stream instanceof Socket) stream.setNoDelay(true);
    stream.on('data', (chunk: Buffer) => this.push(chunk));
    stream.on('error', () => stream.destroy());
    stream.on('end', () => stream.end());
    if (idleTimeout > 0) {
      // Not Socket.setTimeout: other Duplexes have none. Refreshed by every datagram either way.
      this.idleTimer = setTimeout(() => stream.destroy(), idleTimeout);
      this.idleTimer.unref();
      stream.once('close', () => clearTimeout(this.idleTimer));
    }
    stream.resume();
  }

  get closed(): boolean {
    return this.stream.destroyed;
  }

  send(datagram: Buffer): void {
    if (this.stream.destroyed || datagram.length > MAX_DATAGRAM) return;
    const head = Buffer.allocUnsafe(2);
    head.writeUInt16BE(datagram.length, 0);
    this.sent += datagram.length;
    this.idleTimer?.refresh();
    // Over a congested stream, drop rather than queue without bound: that is what UDP would do.
    if (this.stream.writableLength > 4 * 1024 * 1024) return;
    this.stream.write(head);
    this.stream.write(datagram);
  }

  close(): void {
    this.stream.destroy();
  }

  private push(chunk: Buffer): void {
    this.idleTimer?.refresh();
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 2) {
      const length = this.buffered.readUInt16BE(0);
      if (this.buffered.length < 2 + length) return;
      const datagram = this.buffered.subarray(2, 2 + length);
      this.buffered = this.buffered.subarray(2 + length);
      this.received += length;
      this.onDatagram(datagram);
    }
  }
}

import { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import type { SpliceableStream, SpliceFraming } from '../splice-relay.js';

/** Largest message we send; bigger writes are split. NodePass writes at most 16–32 KiB per message. */
export const MAX_MESSAGE = 256 * 1024;
/** Largest message we accept (ws `maxPayload`): bounds what one frame from a garbage peer can make us buffer. */
export const MAX_PAYLOAD = 1024 * 1024;
/** Bytes handed to the socket but not yet written out above which a write waits (backpressure). */
const SEND_HIGH_WATER = 512 * 1024;

/** The socket under a `ws` WebSocket (ws keeps it in `_socket` and has no public accessor). */
function underlyingSocket(ws: WebSocket): Duplex | undefined {
  return (ws as unknown as { _socket?: Duplex })._socket;
}

/** The parts of ws 8's internals that say whether it holds bytes of a frame (receiver.js, sender.js). */
interface WsInternals {
  _isServer?: boolean;
  _receiver?: {
    _state?: number;
    _bufferedBytes?: number;
    _fragmented?: number;
    _writableState?: { length: number };
  };
  _sender?: { _state?: number; _bufferedBytes?: number; _queue?: unknown[] };
}

/** ws's receiver state between frames (GET_INFO in receiver.js). */
const WS_RECEIVER_BETWEEN_FRAMES = 0;

/**
 * A WebSocket as a pool stream: each write goes out as one binary message, each binary message read is a chunk of
 * the byte stream (NodePass's type 2: coder/websocket NetConn on the Go side).
 *
 * Backpressure both ways: reading pauses the socket while the consumer is behind (ws `pause`), writing waits while
 * more than SEND_HIGH_WATER bytes are queued towards the socket. Nothing is buffered without bound.
 *
 * Half-close: a WebSocket has none (a Close frame ends both directions, and the peer answers it at once), but a relay
 * needs it — an echo's reply still flows after the user's FIN. We send an **empty binary message** as end-of-stream
 * and treat one received as the peer's FIN; the WebSocket closes (code 1000) once both directions have ended. This
 * stays compatible with NodePass: its NetConn reads an empty message as a 0-byte read and never writes one itself (Go's
 * io.Copy never writes 0 bytes), and a NodePass peer simply closes the WebSocket when its copy ends, which ends this
 * stream as a Close frame does.
 */
export class WebSocketStream extends Duplex implements SpliceableStream {
  /** Payload bytes received and sent (as net.Socket counts, so traffic counters treat both alike). */
  bytesRead = 0;
  bytesWritten = 0;
  private inflight = 0;
  /** The end of the readable side was pushed (the peer's FIN marker, or its Close). */
  private eof = false;
  private waitingWrite: (() => void) | undefined;

  constructor(private readonly ws: WebSocket) {
    super({ allowHalfOpen: true, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 64 * 1024 });
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        this.destroy(new Error('text message on a binary pool stream'));
        return;
      }
      if (data.length === 0) {
        this.endReadable();
        return;
      }
      if (this.eof) {
        this.destroy(new Error('data after the end of stream'));
        return;
      }
      this.bytesRead += data.length;
      if (!this.push(data)) ws.pause();
    });
    ws.on('close', () => {
      // The peer closed (or the socket died): nothing more arrives, nothing more can be sent. Bytes already received
      // but not yet read are still delivered; with none, the stream is done now (an idle pool member leaves the pool).
      if (this.destroyed) return;
      if (this.readableLength === 0) {
        this.destroy();
        return;
      }
      this.endReadable();
      if (!this.writableEnded) this.end();
    });
    ws.on('error', (err) => this.destroy(err));
    // A pool member idles until a session takes it: parked, so that the first bytes its peer sends then wait in the
    // kernel (or, raw, in the socket) rather than in ws, where the native relay could not take them over mid-frame.
    if (ws.readyState === WebSocket.OPEN) this.park();
  }

  /**
   * Stops ws from reading: the socket is paused, so what arrives stays unparsed in it (a peer's FIN on an idle member
   * is still seen: a paused socket with nothing buffered ends). Reading the stream again (resume, read) undoes it.
   */
  private park(): void {
    (underlyingSocket(this.ws) as Socket | undefined)?.pause();
  }

  private unpark(): void {
    if (this.ws.isPaused) this.ws.resume();
    else underlyingSocket(this.ws)?.resume();
  }

  /** Pausing the stream parks ws too (see park), so a member read by hand (its id) idles parked afterwards. */
  override pause(): this {
    super.pause();
    this.park();
    return this;
  }

  override resume(): this {
    this.unpark();
    return super.resume();
  }

  /**
   * For the native relay (splice-relay.ts): the plain TCP socket under a ws:// WebSocket and our role on it, when ws
   * holds no byte of a frame, neither a partly received one (its receiver is between frames, nothing fragmented) nor
   * one queued to send. Complete messages it already delivered into this stream's readable buffer are fine: the
   * relay takes them over as payload. wss:// (TLS) stays on the JS path.
   */
  spliceSocket(): { socket: Socket; framing: SpliceFraming } | string {
    if (this.ws.readyState !== WebSocket.OPEN) return 'is not open';
    if (this.eof) return 'has ended';
    const socket = underlyingSocket(this.ws);
    if (!(socket instanceof Socket)) return 'has no socket';
    if (socket instanceof TLSSocket) return 'is TLS';
    const { _isServer, _receiver: receiver, _sender: sender } = this.ws as unknown as WsInternals;
    if (
      receiver === undefined ||
      receiver._state !== WS_RECEIVER_BETWEEN_FRAMES ||
      receiver._bufferedBytes !== 0 ||
      receiver._fragmented !== 0 ||
      (receiver._writableState?.length ?? 0) !== 0
    ) {
      return 'has a frame partly read in ws';
    }
    if (sender === undefined || sender._bufferedBytes !== 0 || (sender._queue?.length ?? 0) !== 0) {
      return 'has a frame queued in ws';
    }
    return { socket, framing: _isServer ? 'websocket-server' : 'websocket-client' };
  }

  /** The underlying WebSocket (for its TLS socket or close code). */
  get webSocket(): WebSocket {
    return this.ws;
  }

  private endReadable(): void {
    if (this.eof) return;
    this.eof = true;
    this.push(null);
  }

  override _read(): void {
    this.unpark();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      callback(new Error('WebSocket is closed'));
      return;
    }
    for (let at = 0; at < chunk.length; at += MAX_MESSAGE) this.send(chunk.subarray(at, at + MAX_MESSAGE));
    if (this.inflight < SEND_HIGH_WATER) callback();
    else this.waitingWrite = () => callback();
  }

  /**
   * Several chunks at once (the relay batches what it read in one loop turn): one binary message each, as NodePass
   * expects no particular framing, but written with the socket corked so they leave in one writev rather than one
   * syscall per message. No copy: ws writes each frame's header and payload as they are.
   */
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      callback(new Error('WebSocket is closed'));
      return;
    }
    const socket = underlyingSocket(this.ws);
    socket?.cork();
    for (const { chunk } of chunks) {
      for (let at = 0; at < chunk.length; at += MAX_MESSAGE) this.send(chunk.subarray(at, at + MAX_MESSAGE));
    }
    socket?.uncork();
    if (this.inflight < SEND_HIGH_WATER) callback();
    else this.waitingWrite = () => callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.ws.readyState === WebSocket.OPEN) this.send(Buffer.alloc(0));
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const { readyState } = this.ws;
    if (readyState === WebSocket.OPEN || readyState === WebSocket.CONNECTING) {
      // A clean end (both directions done) closes politely; a failure drops the connection.
      if (error === null && this.readableEnded && this.writableFinished) this.ws.close(1000);
      else this.ws.terminate();
    }
    callback(error);
  }

  private send(message: Buffer): void {
    this.inflight += message.length;
    this.bytesWritten += message.length;
    this.ws.send(message, { binary: true, compress: false }, () => {
      this.inflight -= message.length;
      if (this.waitingWrite !== undefined && this.inflight < SEND_HIGH_WATER) {
        const resume = this.waitingWrite;
        this.waitingWrite = undefined;
        resume();
      }
    });
  }
}

import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { MAX_PAYLOAD, WebSocketStream } from './websocket-stream.js';

/** An HTTP answer instead of the upgrade (a full pool, a wrong path). */
export interface UpgradeRefusal {
  status: number;
  reason: string;
  body: string;
}

export interface WebSocketAcceptorOptions {
  /** Limit for the upgrade request to arrive, in ms. */
  handshakeTimeout: number;
  /** Decides before the upgrade is answered: undefined accepts, a refusal is written as a plain-text HTTP answer. */
  admit(req: IncomingMessage): UpgradeRefusal | undefined;
  /** A WebSocket accepted: the stream of its binary messages, and the request that opened it. */
  onStream(stream: WebSocketStream, req: IncomingMessage): void;
}

/** Go net/http's plain-text error, as NodePass's `http.Error(w, "pool full", 503)` writes it. */
export function refuseUpgrade(socket: Duplex, { status, reason, body }: UpgradeRefusal): void {
  const text = `${body}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      'X-Content-Type-Options: nosniff\r\n' +
      `Content-Length: ${Buffer.byteLength(text)}\r\n` +
      'Connection: close\r\n\r\n' +
      text,
  );
}

/**
 * The server half of a WebSocket byte stream, for connections a listener already accepted (and, with TLS, already
 * decrypted): parses the HTTP/1.1 request, answers a plain request with 426, runs `admit`, completes the upgrade
 * (binary messages, no compression, `MAX_PAYLOAD`) and hands on a WebSocketStream. Used by the type 2 pool transport
 * and by the hub's tunnel listener.
 */
export class WebSocketAcceptor {
  private readonly http: Server;
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_PAYLOAD });

  constructor(private readonly options: WebSocketAcceptorOptions) {
    this.http = createHttpServer((_req, res) => {
      res.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
      res.end('WebSocket upgrade required\n');
    });
    this.http.headersTimeout = options.handshakeTimeout;
    this.http.requestTimeout = options.handshakeTimeout;
    this.http.on('clientError', (_err, socket: Duplex) => socket.destroy());
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  /**
   * A connection whose next bytes are an HTTP request. Bytes already read from it (a listener that looked at the
   * first one) must have been unshifted; a paused socket is resumed, as node:http does not.
   */
  accept(socket: Duplex): void {
    this.http.emit('connection', socket);
    socket.resume();
  }

  close(): void {
    this.http.close();
    this.wss.close();
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const refusal = this.options.admit(req);
    if (refusal) {
      refuseUpgrade(socket, refusal);
      return;
    }
    // ws answers a request that is not a valid WebSocket upgrade (400) and closes it itself.
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = new WebSocketStream(ws);
      stream.on('error', () => {});
      this.options.onStream(stream, req);
    });
  }
}

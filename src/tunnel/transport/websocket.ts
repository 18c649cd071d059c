import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import WebSocket, { WebSocketServer } from 'ws';
import { readExactly } from '../read-exactly.js';
import type { ClientTransportOptions, ServerTransportOptions } from './options.js';
import { clientTlsOptions, openMemberConnection, peerFingerprint } from './tls.js';
import type { DialedMember, PoolClientTransport, PoolServerTransport } from './types.js';
import { MAX_PAYLOAD, WebSocketStream } from './websocket-stream.js';

/** Go net/http's plain-text error, as NodePass's `http.Error(w, "pool full", 503)` writes it. */
function refuseUpgrade(socket: Duplex, status: number, reason: string, body: string): void {
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
 * Type 2 server side: the tunnel port speaks HTTP/1.1 (inside TLS with tls 1|2, i.e. wss://) and every WebSocket
 * upgrade, on any path (NodePass's handler is Go's catch-all `/`), becomes a pool member. The server sends the 4-byte
 * id as the first binary message. A full pool answers 503 `pool full`; a request that is not an upgrade gets 426.
 * Like NodePass, no client-address check: a WebSocket pool may come through a reverse proxy.
 */
export class WebSocketServerTransport implements PoolServerTransport {
  readonly type = 2;
  private readonly http: Server;
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_PAYLOAD });

  constructor(private readonly options: ServerTransportOptions) {
    this.http = createHttpServer((_req, res) => {
      res.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
      res.end('WebSocket upgrade required\n');
    });
    this.http.headersTimeout = options.handshakeTimeout;
    this.http.requestTimeout = options.handshakeTimeout;
    this.http.on('clientError', (_err, socket) => socket.destroy());
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  accept(raw: Socket): void {
    // A full pool is answered in HTTP (503) once the upgrade request is in.
    void openMemberConnection(raw, this.options, { checkAddress: false, checkFull: false, alpn: ['http/1.1'] }).then(
      (socket) => {
        if (socket) this.http.emit('connection', socket);
      },
    );
  }

  close(): void {
    this.http.close();
    this.wss.close();
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { acceptor } = this.options;
    socket.on('error', () => {});
    if (acceptor.full) {
      refuseUpgrade(socket, 503, 'Service Unavailable', 'pool full');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const id = acceptor.nextId();
      const stream = new WebSocketStream(ws);
      stream.on('error', () => {});
      stream.write(id);
      acceptor.admit(id, stream);
    });
  }
}

/**
 * Type 2 client side: one WebSocket per member to `ws://tunnel/` (tls 0) or `wss://tunnel/` (tls 1|2, and, as
 * NodePass does, tls 0 on port 443, where a TLS-terminating proxy is assumed), binary messages, no compression; the
 * first 4 bytes received are the id.
 */
export class WebSocketClientTransport implements PoolClientTransport {
  readonly type = 2;
  private readonly url: string;
  private readonly secure: boolean;

  constructor(private readonly options: ClientTransportOptions) {
    const { host, port, tls } = options;
    this.secure = tls !== 0 || port === 443;
    this.url = `${this.secure ? 'wss' : 'ws'}://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  }

  async dial(): Promise<DialedMember> {
    const { host, tls, servername, dialTimeout, keepAlive } = this.options;
    const ws = new WebSocket(this.url, {
      perMessageDeflate: false,
      maxPayload: MAX_PAYLOAD,
      handshakeTimeout: dialTimeout,
      // NodePass's Host header is the tunnel hostname without the port.
      headers: { Host: host },
      ...(this.secure ? clientTlsOptions(tls === 1 ? 1 : 2, servername) : {}),
    });
    // Wrapped at once: the id message may arrive in the same read as the 101 response, right after 'open'.
    const stream = new WebSocketStream(ws);
    stream.on('error', () => {});
    let fingerprint: string | undefined;
    ws.once('upgrade', (res) => {
      const socket = res.socket as Socket;
      socket.setNoDelay(true);
      socket.setKeepAlive(true, keepAlive);
      if (this.secure) fingerprint = peerFingerprint(socket as TLSSocket);
    });
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => {
          ws.removeListener('error', reject);
          resolve();
        });
        ws.once('error', reject);
      });
      const id = (await readExactly(stream, 4, dialTimeout)).toString('hex');
      return { id, stream, ...(fingerprint ? { fingerprint } : {}) };
    } catch (err) {
      stream.destroy();
      throw err;
    }
  }

  close(): void {}
}

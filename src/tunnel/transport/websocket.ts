import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { readMemberId } from './member-id.js';
import type { ClientTransportOptions, ServerTransportOptions } from './options.js';
import { clientTlsOptions, openMemberConnection, peerFingerprint } from './tls.js';
import type { DialedMember, PoolClientTransport, PoolServerTransport } from './types.js';
import { WebSocketAcceptor } from './websocket-acceptor.js';
import { dialWebSocket } from './websocket-dial.js';

/**
 * Type 2 server side: the tunnel port speaks HTTP/1.1 (inside TLS with tls 1|2, i.e. wss://) and every WebSocket
 * upgrade, on any path (NodePass's handler is Go's catch-all `/`), becomes a pool member. The server sends the 4-byte
 * id as the first binary message. A full pool answers 503 `pool full`; a request that is not an upgrade gets 426.
 * Like NodePass, no client-address check: a WebSocket pool may come through a reverse proxy.
 */
export class WebSocketServerTransport implements PoolServerTransport {
  readonly type = 2;
  private readonly upgrades: WebSocketAcceptor;

  constructor(private readonly options: ServerTransportOptions) {
    const { acceptor } = options;
    this.upgrades = new WebSocketAcceptor({
      handshakeTimeout: options.handshakeTimeout,
      admit: () => (acceptor.full ? { status: 503, reason: 'Service Unavailable', body: 'pool full' } : undefined),
      onStream: (stream) => {
        const id = acceptor.nextId();
        stream.write(id);
        acceptor.admit(id, stream);
      },
    });
  }

  accept(raw: Socket): void {
    // A full pool is answered in HTTP (503) once the upgrade request is in.
    void openMemberConnection(raw, this.options, { checkAddress: false, checkFull: false, alpn: ['http/1.1'] }).then(
      (socket) => {
        if (socket) this.upgrades.accept(socket);
      },
    );
  }

  close(): void {
    this.upgrades.close();
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
    const { stream, socket } = await dialWebSocket({
      url: this.url,
      timeout: dialTimeout,
      // NodePass's Host header is the tunnel hostname without the port.
      headers: { Host: host },
      keepAlive,
      ...(this.secure ? { tls: clientTlsOptions(tls === 1 ? 1 : 2, servername) } : {}),
    });
    const fingerprint = this.secure ? peerFingerprint(socket as TLSSocket) : undefined;
    return readMemberId(stream, dialTimeout, fingerprint);
  }

  close(): void {}
}

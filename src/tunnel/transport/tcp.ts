import { connect as netConnect, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import type { PoolStream } from '../pool.js';
import { readMemberId } from './member-id.js';
import type { ClientTransportOptions, ServerTransportOptions } from './options.js';
import { clientTlsOptions, openMemberConnection, peerFingerprint } from './tls.js';
import type { DialedMember, PoolClientTransport, PoolServerTransport } from './types.js';

/**
 * Type 0 server side: each pool member is one TCP connection on the tunnel port (inside TLS with tls 1|2); the server
 * writes the 4-byte id as the first bytes. Refused members are closed without a byte.
 */
export class TcpServerTransport implements PoolServerTransport {
  readonly type = 0;

  constructor(private readonly options: ServerTransportOptions) {}

  accept(raw: Socket): void {
    void openMemberConnection(raw, this.options, { checkAddress: true, checkFull: true }).then((socket) => {
      if (socket) this.admit(socket);
    });
  }

  close(): void {}

  private admit(stream: PoolStream): void {
    const id = this.options.acceptor.nextId();
    stream.write(id);
    this.options.acceptor.admit(id, stream);
  }
}

/** Type 0 client side: one TCP (or TLS 1.3) connection per member; its first 4 bytes are the id. */
export class TcpClientTransport implements PoolClientTransport {
  readonly type = 0;

  constructor(private readonly options: ClientTransportOptions) {}

  async dial(): Promise<DialedMember> {
    const { host, port, tls, servername, dialTimeout, keepAlive } = this.options;
    const socket: Socket =
      tls === 0
        ? netConnect({
            host,
            port,
            noDelay: true,
            allowHalfOpen: true,
            keepAlive: true,
            keepAliveInitialDelay: keepAlive,
          })
        : tlsConnect({
            host,
            port,
            ...clientTlsOptions(tls, servername),
            // Honoured by tls.connect though missing from its option type: relayed streams half-close.
            ...({ allowHalfOpen: true } as object),
          });
    socket.setNoDelay(true);
    socket.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`pool dial to ${host}:${port} timed out`));
      }, dialTimeout);
      socket.once(tls === 0 ? 'connect' : 'secureConnect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    if (tls !== 0) socket.setKeepAlive(true, keepAlive);
    return readMemberId(socket, dialTimeout, tls === 0 ? undefined : peerFingerprint(socket as TLSSocket));
  }

  close(): void {}
}

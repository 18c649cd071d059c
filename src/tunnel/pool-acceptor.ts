import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { type SecureContext, TLSSocket } from 'node:tls';
import type { Logger } from '../common/logger.js';
import type { ConnectionPool } from './pool.js';

export const CONTROL_ID = '00000000';

export interface PoolAcceptorOptions {
  pool: ConnectionPool;
  /** Only connections from this address join the pool (the handshake's client). */
  clientAddress: string;
  /** Most idle connections held at once (the server's `max`). */
  max: number;
  /** TLS for pool connections (tls 1|2), undefined for plain TCP. */
  secureContext: SecureContext | undefined;
  handshakeTimeout: number;
  /** The first pool connection (id 00000000) is the control channel. */
  onControl(socket: Socket): void;
  logger: Logger;
}

function sameAddress(a: string | undefined, b: string): boolean {
  const strip = (x: string) => x.replace(/^::ffff:/i, '');
  return a !== undefined && strip(a) === strip(b);
}

/**
 * Server side of the TCP pool (type 0): admits connections from the handshake's client, runs the TLS handshake
 * when TLS is on, and gives each connection a fresh 4-byte id, written to the client first. The first one is
 * 00000000, the control channel.
 */
export class PoolAcceptor {
  private controlTaken = false;

  constructor(private readonly options: PoolAcceptorOptions) {}

  accept(raw: Socket): void {
    const { pool, max, clientAddress, logger } = this.options;
    raw.on('error', () => {});
    if (!sameAddress(raw.remoteAddress, clientAddress)) {
      logger.debug(`Pool connection from ${raw.remoteAddress} refused: not the handshake client`);
      raw.destroy();
      return;
    }
    if (this.controlTaken && pool.size >= max) {
      logger.debug(`Pool connection refused: pool full (${max})`);
      raw.destroy();
      return;
    }
    raw.setKeepAlive(true, 5000);
    raw.setNoDelay(true);
    if (this.options.secureContext === undefined) {
      this.admit(raw);
      return;
    }
    const secure = new TLSSocket(raw, { isServer: true, secureContext: this.options.secureContext });
    const timer = setTimeout(() => secure.destroy(), this.options.handshakeTimeout);
    secure.on('error', (err) => logger.debug(`Pool TLS handshake failed: ${err.message}`));
    secure.once('secure', () => {
      clearTimeout(timer);
      this.admit(secure);
    });
  }

  private admit(socket: Socket): void {
    if (!this.controlTaken) {
      this.controlTaken = true;
      socket.write(Buffer.alloc(4));
      this.options.onControl(socket);
      return;
    }
    const { pool } = this.options;
    let id: string;
    do {
      id = randomBytes(4).toString('hex');
    } while (id === CONTROL_ID || pool.has(id));
    socket.write(Buffer.from(id, 'hex'));
    pool.add(id, socket);
  }
}

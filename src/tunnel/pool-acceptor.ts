import { randomBytes } from 'node:crypto';
import type { Logger } from '../common/logger.js';
import type { ConnectionPool, PoolStream } from './pool.js';

export const CONTROL_ID = '00000000';

export interface PoolAcceptorOptions {
  pool: ConnectionPool;
  /**
   * Only members from this address join the pool (the handshake's client); undefined admits any address (NodePass
   * does so for WebSocket pools, which may come through a reverse proxy).
   */
  clientAddress: string | undefined;
  /** Most idle members held at once (the server's `max`). */
  max: number;
  /** The first member (id 00000000) is the control channel. */
  onControl(stream: PoolStream): void;
  logger: Logger;
}

function sameAddress(a: string | undefined, b: string): boolean {
  const strip = (x: string) => x.replace(/^::ffff:/i, '');
  return a !== undefined && strip(a) === strip(b);
}

/**
 * Server-side admission to the pool, shared by every transport: who may join (the handshake's address), whether the
 * pool has room (`max`), and the 4-byte ids — the first member gets 00000000 and becomes the control channel, every
 * later one a fresh random id. The transport carries the id to the client its own way (first bytes, first WebSocket
 * message, start of the HTTP/2 response body) and then hands the member over with `admit`.
 */
export class PoolAcceptor {
  private controlTaken = false;

  constructor(private readonly options: PoolAcceptorOptions) {}

  get logger(): Logger {
    return this.options.logger;
  }

  /** Whether a member from `remoteAddress` may join; logs why not. */
  allows(remoteAddress: string | undefined): boolean {
    const { clientAddress, logger } = this.options;
    if (clientAddress === undefined || sameAddress(remoteAddress, clientAddress)) return true;
    logger.debug(`Pool connection from ${remoteAddress} refused: not the handshake client`);
    return false;
  }

  /** The pool holds `max` idle members (the control channel always has room). */
  get full(): boolean {
    const full = this.controlTaken && this.options.pool.size >= this.options.max;
    if (full) this.options.logger.debug(`Pool connection refused: pool full (${this.options.max})`);
    return full;
  }

  /** The id for the next member: 00000000 once, then random ids not in use. */
  nextId(): Buffer {
    if (!this.controlTaken) {
      this.controlTaken = true;
      return Buffer.alloc(4);
    }
    let id: Buffer;
    do id = randomBytes(4);
    while (id.readUInt32BE(0) === 0 || this.options.pool.has(id.toString('hex')));
    return id;
  }

  /** A member whose id has been sent: the control channel, or an idle pool member. */
  admit(id: Buffer, stream: PoolStream): void {
    const hex = id.toString('hex');
    if (hex === CONTROL_ID) this.options.onControl(stream);
    else this.options.pool.add(hex, stream);
  }
}

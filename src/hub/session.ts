import type { Duplex } from 'node:stream';
import type { Logger } from '../common/logger.js';
import { ConnectionPool } from '../tunnel/pool.js';
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  type Message,
  type MessageOf,
  randomHex,
  type StreamKind,
} from './protocol.js';
import type { StoredTunnel } from './store.js';

/** How long an incoming connection may wait for an idle data connection of the owning connector. */
const STREAM_WAIT = 5000;

export interface SessionOptions {
  pingInterval: number;
  logger: Logger;
  onRequest(session: Session, request: MessageOf<'request'>): void;
  onRules(session: Session, ports: MessageOf<'rules'>['ports']): void;
  onSites(session: Session, sites: unknown[]): void;
  onClose(session: Session): void;
}

/**
 * One live connector session at the hub: its control connection (framed messages, keepalive with RTT) and the
 * pool of idle data connections the connector keeps open, from which every stream towards it is taken. Each
 * connection is a TCP/TLS socket or a WebSocket byte stream (a connector behind an HTTP-only egress), the same
 * framed protocol either way.
 */
export class Session {
  readonly id = randomHex(8);
  readonly dataToken = randomHex(16);
  readonly pool = new ConnectionPool<Duplex>();
  readonly startedAt = Date.now();
  /** Last keepalive round trip, ms. */
  rtt = -1;
  /** Data connections handed to streams and still open (closed with the session). */
  private readonly active = new Set<Duplex>();
  private closed = false;
  private lastPong = Date.now();
  private readonly pinger: NodeJS.Timeout;

  constructor(
    readonly tunnel: StoredTunnel,
    readonly control: Duplex,
    /** The connector's address as the hub sees it (a reverse proxy's, for a WebSocket through one). */
    readonly remoteAddress: string,
    private readonly options: SessionOptions,
  ) {
    const decoder = new FrameDecoder(
      (frame) => this.onFrame(frame),
      (err) => this.close(`protocol error: ${err.message}`),
    );
    control.on('data', (chunk: Buffer) => decoder.push(chunk));
    // Half-open capable (for the data connections), so a FIN alone does not close the control connection.
    control.on('end', () => this.close('the connector ended the control connection'));
    control.on('close', () => this.close('control connection closed'));
    control.on('error', (err) => options.logger.debug(`tunnel ${tunnel.id}: control connection: ${err.message}`));
    control.resume();
    this.pinger = setInterval(() => {
      if (Date.now() - this.lastPong > options.pingInterval * 3) {
        this.close(`no keepalive answer for ${options.pingInterval * 3}ms`);
        return;
      }
      this.send({ type: 'ping', t: Date.now() });
    }, options.pingInterval);
    this.pinger.unref();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get activeStreams(): number {
    return this.active.size;
  }

  send(message: Message): void {
    if (!this.closed && !this.control.destroyed) this.control.write(encodeFrame(message));
  }

  /** Adds an idle data connection the connector dialed. */
  addData(id: string, socket: Duplex): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    // An idle data connection whose peer ended it is gone (half-open sockets do not close by themselves).
    socket.once('end', () => {
      if (this.pool.has(id)) socket.destroy();
    });
    this.pool.add(id, socket);
  }

  /** Tracks a data connection in use so that it ends with the session. */
  track(socket: Duplex): void {
    this.active.add(socket);
    socket.once('close', () => this.active.delete(socket));
  }

  /**
   * A stream to the connector for a connection that arrived at the hub: an idle data connection, announced by an
   * `open` message naming its id. The caller relays bytes on it.
   */
  async openStream(
    kind: StreamKind,
    port: number,
    transport: 'tcp' | 'udp',
    client: { address: string; port: number },
    domain?: string,
  ): Promise<Duplex> {
    const { id, socket } = await this.pool.acquire(STREAM_WAIT);
    if (this.closed) {
      socket.destroy();
      throw new Error('session closed');
    }
    this.track(socket);
    this.send({ type: 'open', id, kind, port, transport, client, ...(domain !== undefined ? { domain } : {}) });
    return socket;
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pinger);
    this.options.logger.info(`tunnel ${this.tunnel.id} (${this.tunnel.name}): session ${this.id} ended: ${reason}`);
    this.control.destroy();
    this.pool.close('session closed');
    for (const socket of this.active) socket.destroy();
    this.active.clear();
    this.options.onClose(this);
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case 'ping':
        this.send({ type: 'pong', t: frame.t });
        return;
      case 'pong':
        this.lastPong = Date.now();
        if (typeof frame.t === 'number') this.rtt = Math.max(0, Date.now() - frame.t);
        return;
      case 'request':
        this.options.onRequest(this, frame);
        return;
      case 'rules':
        if (Array.isArray(frame.ports)) this.options.onRules(this, frame.ports);
        return;
      case 'sites':
        if (Array.isArray(frame.sites)) this.options.onSites(this, frame.sites);
        return;
      default:
        this.options.logger.debug(`tunnel ${this.tunnel.id}: ignored control message "${frame.type}"`);
    }
  }
}

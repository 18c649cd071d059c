import type { Duplex } from 'node:stream';
import type { Logger } from '../common/logger.js';
import {
  challengeResponse,
  encodeFrame,
  type Frame,
  FrameDecoder,
  type Message,
  type MessageOf,
  type PortRule,
  randomHex,
  readFrame,
  type SiteClaim,
} from '../hub/protocol.js';
import { ConnectionPool } from '../tunnel/pool.js';
import { type HubDialer, RefusedError, tunnelInfo } from './hub-dialer.js';

const HANDSHAKE_TIMEOUT = 10_000;
const REQUEST_TIMEOUT = 15_000;
/** How long an `open` may wait for the data connection it names (it is normally already idle here). */
const CLAIM_TIMEOUT = 5000;
/** Idle outbound connections kept ready for port mappings. */
const OUTBOUND_IDLE = 2;

export class ShutdownByHubError extends Error {
  override readonly name = 'ShutdownByHubError';
}

export interface SessionHandlers {
  /** The hub's ports for this tunnel (at welcome and after admin changes); returns the rules to send back. */
  onPorts(ports: PortRule[], atWelcome: boolean): PortRule[] | undefined;
  onPortmaps(message: MessageOf<'portmaps'>): void;
  /** The hub admin changed this connector's sites. */
  onSites(message: MessageOf<'https'>): void;
  /** A stream from the hub, claimed from the pool: the handler owns the socket. */
  onStream(open: MessageOf<'open'>, socket: Duplex): void;
  /** The sites this tunnel serves, claimed at the hub after welcome. */
  sites(): SiteClaim[];
  /** The hub refused these domains (another tunnel owns them, or the token does not allow them). */
  onSitesRefused?(domains: string[]): void;
  /** Domains refused earlier that the hub now routes here (their reservation was released). */
  onSitesAccepted?(domains: string[]): void;
}

interface Identity {
  tunnelId: string;
  secret: string;
  name: string;
}

/**
 * One authenticated session with the hub: the control connection (challenge-response, keepalive, requests) and the
 * data connections: an inbound pool the hub claims by id for streams towards us, and a few outbound connections
 * kept ready for port mappings.
 */
export class HubSession {
  private readonly inbound = new ConnectionPool<Duplex>();
  private readonly outbound = new ConnectionPool<Duplex>();
  private dialingInbound = 0;
  private dialingOutbound = 0;
  private readonly pending = new Map<
    number,
    { resolve(r: MessageOf<'reply'>): void; reject(e: Error): void; timer: NodeJS.Timeout }
  >();
  private nextRequest = 1;
  private closed = false;
  rtt = -1;
  onClose: (reason: string, shutdown: boolean) => void = () => {};
  private readonly closedPromise: Promise<void>;
  private resolveClosed: () => void = () => {};
  private lastPing = Date.now();
  private watchdog: NodeJS.Timeout | undefined;
  wantOutbound = false;

  private constructor(
    private readonly dialer: HubDialer,
    private readonly control: Duplex,
    readonly sessionId: string,
    private readonly dataToken: string,
    private readonly poolSize: number,
    private readonly handlers: SessionHandlers,
    private readonly logger: Logger,
  ) {
    this.closedPromise = new Promise((r) => {
      this.resolveClosed = r;
    });
  }

  /** Dials, authenticates and returns a live session (or throws: refused, unreachable, protocol error). */
  static async open(
    dialer: HubDialer,
    identity: Identity,
    handlers: SessionHandlers,
    logger: Logger,
  ): Promise<HubSession> {
    const { socket } = await dialer.dial();
    try {
      socket.write(encodeFrame({ type: 'hello', tunnelId: identity.tunnelId, ...tunnelInfo(identity.name) }));
      const challenge = await readFrame(socket, HANDSHAKE_TIMEOUT);
      if (challenge.type === 'refused') throw new RefusedError(challenge.error);
      if (challenge.type !== 'challenge' || typeof challenge.nonce !== 'string') {
        throw new RefusedError(`expected a challenge, got "${challenge.type}"`);
      }
      socket.write(
        encodeFrame({ type: 'auth', mac: challengeResponse(identity.secret, challenge.nonce, identity.tunnelId) }),
      );
      const welcome = await readFrame(socket, HANDSHAKE_TIMEOUT);
      if (welcome.type === 'refused') throw new RefusedError(welcome.error);
      if (welcome.type !== 'welcome') throw new RefusedError(`expected welcome, got "${welcome.type}"`);
      const session = new HubSession(
        dialer,
        socket,
        welcome.sessionId,
        welcome.dataToken,
        Math.max(1, Math.min(256, Number(welcome.pool) || 8)),
        handlers,
        logger,
      );
      session.start(welcome.ports);
      return session;
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Resolves when the session has ended. */
  get ended(): Promise<void> {
    return this.closedPromise;
  }

  private start(ports: PortRule[]): void {
    const decoder = new FrameDecoder(
      (frame) => this.onFrame(frame),
      (err) => this.close(`protocol error: ${err.message}`),
    );
    this.control.on('data', (chunk: Buffer) => decoder.push(chunk));
    // The socket is half-open capable (data connections need it); for the control connection an end is the end.
    this.control.on('end', () => this.close('the hub ended the connection'));
    this.control.on('close', () => this.close('connection to the hub closed'));
    this.control.on('error', (err) => this.logger.debug(`control connection: ${err.message}`));
    this.control.resume();
    const rules = this.handlers.onPorts(Array.isArray(ports) ? ports : [], true);
    if (rules) this.send({ type: 'rules', ports: rules });
    this.sendSites(this.handlers.sites());
    this.inbound.onServe = () => this.fillInbound();
    this.outbound.onServe = () => this.fillOutbound();
    this.fillInbound();
    this.fillOutbound();
    // The hub pings every few seconds; silence for long means a dead path the kernel has not noticed yet.
    // We ping too (every 5 s), so that `info` can report the round trip to the hub.
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastPing > 45_000) this.close('no keepalive from the hub for 45s');
      else this.send({ type: 'ping', t: Date.now() });
    }, 5000);
    this.watchdog.unref();
  }

  send(message: Message): void {
    if (!this.closed) this.control.write(encodeFrame(message));
  }

  sendRules(ports: PortRule[]): void {
    this.send({ type: 'rules', ports });
  }

  sendSites(sites: SiteClaim[]): void {
    this.send({ type: 'sites', sites });
  }

  /** Sends a control request (allocate / release) and waits for its reply. */
  request(op: 'allocate' | 'release', port?: number): Promise<MessageOf<'reply'>> {
    if (this.closed) return Promise.reject(new Error('the tunnel session is not connected'));
    const id = this.nextRequest++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`the hub did not answer the ${op} request within ${REQUEST_TIMEOUT}ms`));
      }, REQUEST_TIMEOUT);
      this.pending.set(id, { resolve, reject, timer });
      this.send({ type: 'request', id, op, ...(port !== undefined ? { port } : {}) });
    });
  }

  /** A data connection to the hub naming a port-mapping target; bytes (or framed datagrams) follow. */
  async connectOutbound(connect: Omit<MessageOf<'connect'>, 'type'>): Promise<Duplex> {
    if (this.closed) throw new Error('the tunnel session is not connected');
    const idle = this.outbound.take();
    const socket = idle?.socket ?? (await this.dialData('outbound'));
    socket.write(encodeFrame({ type: 'connect', ...connect }));
    return socket;
  }

  private async dialData(role: 'inbound' | 'outbound'): Promise<Duplex> {
    const { socket } = await this.dialer.dial();
    const id = randomHex(4);
    socket.write(encodeFrame({ type: 'data', sessionId: this.sessionId, token: this.dataToken, id, role }));
    socket.on('error', () => {});
    if (this.closed) {
      socket.destroy();
      throw new Error('session closed');
    }
    (socket as Duplex & { poolId?: string }).poolId = id;
    return socket;
  }

  /** Keeps `poolSize` idle inbound connections: one more is dialed for each one used or lost. */
  private fillInbound(): void {
    while (!this.closed && this.inbound.size + this.dialingInbound < this.poolSize) {
      this.dialingInbound++;
      this.dialData('inbound').then(
        (socket) => {
          this.dialingInbound--;
          const id = (socket as Duplex & { poolId: string }).poolId;
          socket.once('close', () => {
            // An idle connection lost (not one taken for a stream, which onServe replaced already): replace it.
            if (this.inbound.has(id)) setImmediate(() => this.fillInbound());
          });
          // Half-open capable streams do not close on a FIN by themselves: an idle one that ends is finished.
          socket.once('end', () => {
            if (this.inbound.has(id)) socket.destroy();
          });
          this.inbound.add(id, socket);
        },
        (err: Error) => {
          this.dialingInbound--;
          if (!this.closed) this.logger.debug(`data connection failed: ${err.message}`);
        },
      );
    }
  }

  private fillOutbound(): void {
    if (!this.wantOutbound) return;
    while (!this.closed && this.outbound.size + this.dialingOutbound < OUTBOUND_IDLE) {
      this.dialingOutbound++;
      this.dialData('outbound').then(
        (socket) => {
          this.dialingOutbound--;
          const id = (socket as Duplex & { poolId: string }).poolId;
          socket.once('end', () => {
            if (this.outbound.has(id)) socket.destroy();
          });
          this.outbound.add(id, socket);
        },
        () => {
          this.dialingOutbound--;
        },
      );
    }
  }

  /** Starts keeping outbound connections ready (once there are port mappings). */
  enableOutbound(): void {
    this.wantOutbound = true;
    this.fillOutbound();
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case 'ping':
        this.lastPing = Date.now();
        this.send({ type: 'pong', t: frame.t });
        return;
      case 'pong':
        if (typeof frame.t === 'number') this.rtt = Math.max(0, Date.now() - frame.t);
        return;
      case 'open':
        void this.claim(frame);
        return;
      case 'reply': {
        const waiter = this.pending.get(frame.id);
        if (!waiter) return;
        this.pending.delete(frame.id);
        clearTimeout(waiter.timer);
        waiter.resolve(frame);
        return;
      }
      case 'ports': {
        const rules = this.handlers.onPorts(Array.isArray(frame.ports) ? frame.ports : [], false);
        if (rules) this.send({ type: 'rules', ports: rules });
        return;
      }
      case 'portmaps':
        this.handlers.onPortmaps(frame);
        return;
      case 'https':
        this.handlers.onSites(frame);
        return;
      case 'sites-refused': {
        const refused = Array.isArray(frame.refused) ? frame.refused : [];
        for (const r of refused) {
          this.logger.error(`site ${String(r.domain)} refused by the hub: ${String(r.error)}`);
        }
        this.handlers.onSitesRefused?.(refused.map((r) => String(r?.domain ?? '')));
        return;
      }
      case 'sites-accepted': {
        const domains = (Array.isArray(frame.domains) ? frame.domains : []).map(String);
        for (const d of domains) this.logger.info(`site ${d}: the hub routes it to this tunnel now`);
        this.handlers.onSitesAccepted?.(domains);
        return;
      }
      case 'shutdown':
        this.close(`the hub shut the tunnel down: ${frame.reason}`, true);
        return;
      default:
        this.logger.debug(`ignored control message "${frame.type}"`);
    }
  }

  private async claim(open: MessageOf<'open'>): Promise<void> {
    try {
      const socket = await this.inbound.get(String(open.id), CLAIM_TIMEOUT);
      this.handlers.onStream(open, socket);
    } catch (err) {
      this.logger.warn(`stream ${open.id} for port ${open.port}: ${(err as Error).message}`);
    }
  }

  close(reason: string, shutdown = false): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    this.control.destroy();
    this.inbound.close('session closed');
    this.outbound.close('session closed');
    for (const [, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(`the tunnel session ended: ${reason}`));
    }
    this.pending.clear();
    this.resolveClosed();
    this.onClose(reason, shutdown);
  }
}

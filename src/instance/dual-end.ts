import type { Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../common/logger.js';
import type { BlockedProtocol } from '../config/params.js';
import type { Endpoint } from '../config/url.js';
import { formatEndpoint } from '../config/url.js';
import type { Dialer } from '../tunnel/dialer.js';
import type { ConnectionPool, PoolStream } from '../tunnel/pool.js';
import { encodeProxyV1 } from '../tunnel/proxy-protocol.js';
import { Relay } from '../tunnel/relay.js';
import type { SessionSlots } from '../tunnel/session-slots.js';
import { SNIFF_AMBIGUITY_TIMEOUT, sniffFirstBytes } from '../tunnel/sniff.js';
import type { InstanceTraffic } from '../tunnel/traffic.js';
import { bindUdp, connectUdp } from '../tunnel/udp-socket.js';
import type { ControlChannel } from './control-channel.js';
import type { Signal } from './signals.js';

export interface TunnelSideOptions {
  pool: ConnectionPool;
  traffic: InstanceTraffic;
  slots: SessionSlots;
  logger: Logger;
  readTimeout: number;
  udpIdleTimeout: number;
}

interface UdpSession {
  /** The pool connection carrying this source's datagrams, once one is acquired. */
  pool: PoolStream | undefined;
  pending: Buffer[];
  idle: NodeJS.Timeout;
}

/**
 * The ingress of a dual-end tunnel: listens on a target address; each user connection (or UDP source) takes an idle
 * pool connection, tells the peer its id over the control channel, and is relayed through it. User traffic is
 * refused until `open` (after TLS verification).
 */
export class Ingress {
  private tcp: Server | undefined;
  private udp: UdpSocket | undefined;
  private readonly udpSessions = new Map<string, UdpSession>();
  private readonly relays = new Set<Relay>();
  control: ControlChannel | undefined;
  private ready = false;
  /** Users that arrived while the tunnel was not ready, waiting for it (see whenOpen). */
  private readonly readyWaiters = new Set<(ready: boolean) => void>();

  constructor(
    private readonly listen: Endpoint,
    private readonly options: TunnelSideOptions & {
      notcp: boolean;
      noudp: boolean;
      poolGetTimeout: number;
      block: ReadonlySet<BlockedProtocol>;
    },
  ) {}

  /** Whether users are served (set once the tunnel is up and, with tls=1, the peer's `verify` passed). */
  get open(): boolean {
    return this.ready;
  }

  set open(value: boolean) {
    this.ready = value;
    if (value) this.wakeWaiters(true);
  }

  private wakeWaiters(ready: boolean): void {
    for (const wake of [...this.readyWaiters]) wake(ready);
  }

  /**
   * Resolves true once the tunnel is ready, false after `timeout` ms. A user who connects while the tunnel is being set
   * up or restarted waits for it rather than being reset (a NodePass ingress leaves such users in the listen backlog).
   */
  private whenOpen(timeout: number): Promise<boolean> {
    if (this.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = (ready: boolean) => {
        clearTimeout(timer);
        this.readyWaiters.delete(wake);
        resolve(ready);
      };
      const timer = setTimeout(() => wake(false), timeout);
      this.readyWaiters.add(wake);
    });
  }

  async bind(): Promise<void> {
    const { host, port } = this.listen;
    if (!this.options.notcp) {
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (s) => this.onUser(s));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: host === '' ? undefined : host, port }, () => {
          server.removeListener('error', reject);
          resolve();
        });
      });
      this.tcp = server;
    }
    if (!this.options.noudp) {
      try {
        this.udp = await bindUdp(host, port);
      } catch (err) {
        this.tcp?.close();
        throw err;
      }
      this.udp.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo.address, rinfo.port));
      this.udp.on('error', (err) => this.options.logger.warn(`UDP listener error: ${err.message}`));
    }
    this.options.logger.info(`Ingress listening on ${formatEndpoint(this.listen)}`);
  }

  close(): void {
    this.wakeWaiters(false);
    this.tcp?.close();
    this.udp?.close();
    for (const relay of this.relays) relay.destroy(new Error('tunnel closed'));
    for (const s of this.udpSessions.values()) {
      clearTimeout(s.idle);
      s.pool?.destroy();
    }
    this.udpSessions.clear();
  }

  /** An idle pool connection, waiting for the client to dial one if none is idle (NodePass waits too). */
  private async acquirePool(kind: string, remote: string): Promise<{ id: string; socket: PoolStream } | undefined> {
    if (!(await this.whenOpen(this.options.poolGetTimeout)) || this.control === undefined) {
      this.options.logger.warn(`${kind} from ${remote} refused: tunnel not ready`);
      return undefined;
    }
    try {
      return await this.options.pool.acquire(this.options.poolGetTimeout);
    } catch (err) {
      this.options.logger.warn(`${kind} from ${remote} refused: ${(err as Error).message}`);
      return undefined;
    }
  }

  private onUser(user: Socket): void {
    const remote = `${user.remoteAddress}:${user.remotePort}`;
    user.on('error', () => {});
    if (!this.options.slots.tryAcquire('tcp')) {
      this.options.logger.warn(`TCP slot limit reached: refused ${remote}`);
      user.destroy();
      return;
    }
    // As in single-end: the first user bytes are inspected while the tunnel side is being set up, and the
    // target's first bytes flow back meanwhile, so server-speaks-first protocols are never held up.
    const sniffing =
      this.options.block.size > 0 ? sniffFirstBytes(user, this.options.block, SNIFF_AMBIGUITY_TIMEOUT) : undefined;
    void this.acquirePool('TCP', remote).then(async (conn) => {
      if (conn === undefined || user.destroyed || this.control === undefined) {
        conn?.socket.destroy();
        this.options.slots.release('tcp');
        user.destroy();
        return;
      }
      this.options.logger.debug(`TCP ${remote} via pool connection ${conn.id}`);
      this.control.send({ action: 'tcp', remote, id: conn.id });
      const relay = new Relay(user, conn.socket, {
        up: this.options.traffic.tcpUp,
        down: this.options.traffic.tcpDown,
        idleTimeout: this.options.readTimeout,
        onClose: () => {
          this.relays.delete(relay);
          this.options.slots.release('tcp');
        },
      });
      this.relays.add(relay);
      relay.startDown();
      if (sniffing === undefined) {
        relay.startUp();
        logRelayPath(this.options.logger, relay, remote);
        return;
      }
      const { verdict, head, ended } = await sniffing;
      if (verdict.kind === 'block') {
        this.options.logger.warn(`Blocked ${verdict.protocol.toUpperCase()} connection from ${remote}`);
        relay.destroy(new Error(`blocked ${verdict.protocol}`));
        return;
      }
      relay.startUp(head, ended);
      logRelayPath(this.options.logger, relay, remote);
    });
  }

  private onDatagram(msg: Buffer, address: string, port: number): void {
    const key = `${address}|${port}`;
    const { traffic } = this.options;
    let session = this.udpSessions.get(key);
    if (session === undefined) {
      if (!this.options.slots.tryAcquire('udp')) return;
      session = this.openUdpSession(key, address, port);
    }
    if (traffic.udpUp.bucket !== undefined && !traffic.udpUp.bucket.tryTake(msg.length)) return;
    traffic.udpUp.count(msg.length);
    session.idle.refresh();
    if (session.pool === undefined) {
      if (session.pending.length < 64) session.pending.push(msg);
    } else session.pool.write(msg);
  }

  private openUdpSession(key: string, address: string, port: number): UdpSession {
    const { traffic } = this.options;
    const remote = `${address.includes(':') ? `[${address}]` : address}:${port}`;
    const end = () => {
      if (this.udpSessions.get(key) !== session) return;
      this.udpSessions.delete(key);
      clearTimeout(session.idle);
      this.options.slots.release('udp');
      session.pool?.destroy();
    };
    const session: UdpSession = { pool: undefined, pending: [], idle: setTimeout(end, this.options.udpIdleTimeout) };
    this.udpSessions.set(key, session);
    void this.acquirePool('UDP', remote).then((conn) => {
      if (conn === undefined || this.udpSessions.get(key) !== session || this.control === undefined) {
        conn?.socket.destroy();
        end();
        return;
      }
      this.control.send({ action: 'udp', remote, id: conn.id });
      const pool = conn.socket;
      session.pool = pool;
      // v1.14 carries datagrams raw: each chunk read from the stream goes out as one datagram.
      pool.on('data', (chunk: Buffer) => {
        traffic.udpDown.count(chunk.length);
        session.idle.refresh();
        this.udp?.send(chunk, port, address);
      });
      pool.on('error', () => {});
      pool.on('close', end);
      pool.resume();
      for (const msg of session.pending) pool.write(msg);
      session.pending = [];
    });
    return session;
  }
}

/**
 * The egress of a dual-end tunnel: for each `tcp`/`udp` signal, takes the pool connection with the signalled id,
 * dials the target group and relays (with a PROXY v1 header first when asked).
 */
export class Egress {
  private readonly relays = new Set<Relay>();
  /** How to end each live UDP session (closing its target socket once, whichever side ends it first). */
  private readonly udpSessions = new Set<() => void>();

  constructor(
    private readonly dialer: Dialer,
    private readonly options: TunnelSideOptions & {
      proxy: boolean;
      poolGetTimeout: number;
      localAddress: string;
      /** A signalled pool connection did not arrive or had closed (NodePass's error count, which leads to a flush). */
      onPoolMiss(): void;
    },
  ) {}

  /** The pool connection the ingress signalled, counting a miss. */
  private async member(id: string): Promise<PoolStream> {
    try {
      return await this.options.pool.get(id, this.options.poolGetTimeout);
    } catch (err) {
      this.options.onPoolMiss();
      throw err;
    }
  }

  handle(signal: Signal): void {
    this.options.logger.debug(`Signal ${signal.action} ${signal.id ?? ''} from ${signal.remote ?? ''}`);
    if ((signal.action !== 'tcp' && signal.action !== 'udp') || signal.id === undefined) return;
    const kind = signal.action;
    if (!this.options.slots.tryAcquire(kind)) {
      this.options.logger.warn(`${kind.toUpperCase()} slot limit reached: dropped ${signal.remote}`);
      void this.member(signal.id).then(
        (s) => s.destroy(),
        () => {},
      );
      return;
    }
    const task = kind === 'tcp' ? this.tcp(signal.id, signal.remote ?? '') : this.udp(signal.id);
    task.catch((err: Error) => {
      this.options.slots.release(kind);
      this.options.logger.warn(`${kind.toUpperCase()} for ${signal.remote} failed: ${err.message}`);
    });
  }

  close(): void {
    for (const relay of this.relays) relay.destroy(new Error('tunnel closed'));
    for (const end of [...this.udpSessions]) end();
  }

  private async tcp(id: string, remote: string): Promise<void> {
    const pool = await this.member(id);
    pool.on('error', () => {});
    let target: Socket;
    try {
      target = (await this.dialer.dialTcp()).socket;
    } catch (err) {
      pool.destroy();
      throw err;
    }
    // Counted on the target side, where NodePass's egress counts: RX from the target, TX to it.
    const relay = new Relay(pool, target, {
      up: this.options.traffic.tcpDown,
      down: this.options.traffic.tcpUp,
      idleTimeout: this.options.readTimeout,
      onClose: () => {
        this.relays.delete(relay);
        this.options.slots.release('tcp');
      },
    });
    this.relays.add(relay);
    if (this.options.proxy) {
      const { address, port } = splitRemote(remote);
      target.write(
        encodeProxyV1({ address, port }, { address: target.remoteAddress ?? '', port: target.remotePort ?? 0 }),
      );
    }
    relay.startDown();
    relay.startUp();
    logRelayPath(this.options.logger, relay, remote);
  }

  private async udp(id: string): Promise<void> {
    const pool = await this.member(id);
    const { traffic } = this.options;
    let target: UdpSocket;
    try {
      const { target: endpoint, resolved } = await this.dialer.resolveUdp();
      target = await connectUdp(resolved.address, resolved.family, endpoint.port, this.options.localAddress);
    } catch (err) {
      pool.destroy();
      throw err;
    }
    let closed = false;
    const end = () => {
      if (closed) return;
      closed = true;
      clearTimeout(idle);
      this.udpSessions.delete(end);
      target.close();
      pool.destroy();
      this.options.slots.release('udp');
    };
    this.udpSessions.add(end);
    const idle = setTimeout(end, this.options.udpIdleTimeout);
    pool.on('data', (chunk: Buffer) => {
      traffic.udpDown.count(chunk.length);
      idle.refresh();
      target.send(chunk);
    });
    target.on('message', (reply) => {
      traffic.udpUp.count(reply.length);
      idle.refresh();
      pool.write(reply);
    });
    target.on('error', () => {});
    pool.on('error', () => {});
    pool.on('close', end);
    pool.resume();
  }
}

function splitRemote(remote: string): { address: string; port: number } {
  const colon = remote.lastIndexOf(':');
  return { address: remote.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(remote.slice(colon + 1)) };
}

/** Says at debug level whether a TCP session runs in the native splice relay, or why it stays in JS. */
function logRelayPath(logger: Logger, relay: Relay, remote: string): void {
  if (relay.native) logger.debug(`TCP ${remote} relayed natively (splice)`);
  else if (relay.notNativeReason !== undefined) logger.debug(`TCP ${remote} relayed in JS: ${relay.notNativeReason}`);
}

import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import type { Logger } from '../common/logger.js';
import { formatEndpoint } from '../config/url.js';
import type { Dialer } from './dialer.js';
import type { SessionSlots } from './session-slots.js';
import type { InstanceTraffic } from './traffic.js';
import { connectUdp } from './udp-socket.js';

interface UdpSession {
  upstream: UdpSocket | undefined;
  /** Datagrams that arrived while the upstream socket was being set up. */
  pending: Buffer[];
  idle: NodeJS.Timeout;
  closed: boolean;
}

export interface UdpForwarderOptions {
  dialer: Dialer;
  traffic: InstanceTraffic;
  slots: SessionSlots;
  idleTimeout: number;
  localAddress: string;
  logger: Logger;
}

const MAX_PENDING = 64;

/**
 * Single-end UDP: one session per user source address, each with its own connected socket to the target, so
 * replies find their way back. Sessions end after `idleTimeout` without a datagram in either direction.
 * Over the rate limit, datagrams are dropped (policing) rather than queued.
 */
export class UdpForwarder {
  private readonly sessions = new Map<string, UdpSession>();

  constructor(
    private readonly listener: UdpSocket,
    private readonly options: UdpForwarderOptions,
  ) {
    listener.on('message', (msg, rinfo) => this.onUserDatagram(msg, rinfo));
    listener.on('error', (err) => options.logger.warn(`UDP listener error: ${err.message}`));
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  close(): void {
    for (const [key, session] of this.sessions) this.endSession(key, session);
    this.listener.close();
  }

  private onUserDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    const { traffic } = this.options;
    const key = `${rinfo.address}|${rinfo.port}`;
    let session = this.sessions.get(key);
    if (session === undefined) {
      if (!this.options.slots.tryAcquire('udp')) {
        this.options.logger.debug(`UDP slot limit reached (${this.options.slots.limitText}): dropped ${rinfo.address}`);
        return;
      }
      session = this.openSession(key, rinfo);
    }
    if (traffic.udpUp.bucket !== undefined && !traffic.udpUp.bucket.tryTake(msg.length)) return;
    traffic.udpUp.count(msg.length);
    session.idle.refresh();
    if (session.upstream === undefined) {
      if (session.pending.length < MAX_PENDING) session.pending.push(msg);
      return;
    }
    session.upstream.send(msg);
  }

  private openSession(key: string, rinfo: RemoteInfo): UdpSession {
    const { dialer, traffic, logger, idleTimeout, localAddress } = this.options;
    const session: UdpSession = {
      upstream: undefined,
      pending: [],
      idle: setTimeout(() => this.endSession(key, session), idleTimeout),
      closed: false,
    };
    this.sessions.set(key, session);
    void (async () => {
      try {
        const { target, resolved } = await dialer.resolveUdp();
        const upstream = await connectUdp(resolved.address, resolved.family, target.port, localAddress);
        if (session.closed) {
          upstream.close();
          return;
        }
        session.upstream = upstream;
        logger.debug(`UDP session ${rinfo.address}:${rinfo.port} <-> ${formatEndpoint(target)}`);
        upstream.on('message', (reply) => {
          if (traffic.udpDown.bucket !== undefined && !traffic.udpDown.bucket.tryTake(reply.length)) return;
          traffic.udpDown.count(reply.length);
          session.idle.refresh();
          this.listener.send(reply, rinfo.port, rinfo.address);
        });
        // ICMP port unreachable and friends surface here; the session simply stays until idle.
        upstream.on('error', (err) => logger.debug(`UDP upstream error: ${err.message}`));
        for (const msg of session.pending) upstream.send(msg);
        session.pending = [];
      } catch (err) {
        logger.warn(`UDP session from ${rinfo.address}:${rinfo.port} failed: ${(err as Error).message}`);
        this.endSession(key, session);
      }
    })();
    return session;
  }

  private endSession(key: string, session: UdpSession): void {
    if (session.closed) return;
    session.closed = true;
    clearTimeout(session.idle);
    this.sessions.delete(key);
    this.options.slots.release('udp');
    session.upstream?.close();
  }
}

import type { Logger } from '../common/logger.js';
import type { ConnectionPool, PoolStream } from './pool.js';
import { CONTROL_ID } from './pool-acceptor.js';
import type { DialedMember, PoolClientTransport } from './transport/types.js';

export interface PoolDialerOptions {
  pool: ConnectionPool;
  /** How one member is dialed (TCP/TLS, WebSocket, HTTP/2, ...). */
  transport: PoolClientTransport;
  min: number;
  max: number;
  minInterval: number;
  maxInterval: number;
  onControl(stream: PoolStream): void;
  /** Called with the server certificate's sha256 fingerprint of each TLS pool member. */
  onCertificate?(fingerprint: string, id: string): void;
  logger: Logger;
}

/**
 * Client side of the pool: keeps `capacity` idle members, adapting capacity between `min` and `max` and the refill
 * tick between `minInterval` and `maxInterval` as NodePass does: a tick dials the missing members in parallel; >80 %
 * success grows capacity, <20 % shrinks it; the tick speeds up while the pool is drained (idle < 20 %) and slows down
 * while it is full (idle > 80 %). The transport decides what one member is.
 *
 * Unlike NodePass, each member handed out is also replaced at once rather than at the next tick: under a burst of new
 * users the tick interval has crept up to `maxInterval` while the pool sat full, and waiting for it capped the
 * connection rate at a few hundred per second. The server sees nothing different: the same dials, sooner.
 */
export class PoolDialer {
  capacity: number;
  interval: number;
  /** Pool members dialed since start. */
  dialed = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private controlDone = false;
  /** Dials under way, counted against capacity so the tick and the replacements never overfill the pool. */
  private inflight = 0;

  constructor(private readonly options: PoolDialerOptions) {
    this.capacity = options.min;
    this.interval = options.minInterval;
    options.pool.onServe = () => this.replace();
  }

  /** Dials the control channel first, then keeps the pool filled. Rejects if the control channel fails. */
  async start(): Promise<void> {
    const control = await this.dialOne();
    if (control.id !== CONTROL_ID) {
      control.stream.destroy();
      throw new Error(`first pool connection got id ${control.id}, expected the control channel ${CONTROL_ID}`);
    }
    this.controlDone = true;
    this.options.onControl(control.stream);
    void this.tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.options.pool.onServe = undefined;
  }

  /** One member left the pool for a session: dial its replacement now. */
  private replace(): void {
    if (this.stopped || !this.controlDone) return;
    if (this.options.pool.size + this.inflight >= this.capacity) return;
    void this.dialCounted().then(
      (member) => this.admit(member),
      () => {},
    );
  }

  private admit(member: DialedMember): void {
    if (this.stopped) member.stream.destroy();
    else this.options.pool.add(member.id, member.stream);
  }

  private async dialCounted(): Promise<DialedMember> {
    this.inflight++;
    try {
      return await this.dialOne();
    } finally {
      this.inflight--;
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const { pool, min, max, minInterval, maxInterval } = this.options;
    const missing = Math.max(0, this.capacity - pool.size - this.inflight);
    if (missing > 0) {
      const results = await Promise.allSettled(Array.from({ length: missing }, () => this.dialCounted()));
      let ok = 0;
      for (const r of results) {
        if (r.status === 'fulfilled') {
          ok++;
          this.admit(r.value);
        }
      }
      const ratio = ok / missing;
      if (ratio > 0.8) this.capacity = Math.min(max, this.capacity + 1);
      else if (ratio < 0.2) this.capacity = Math.max(min, this.capacity - 1);
    }
    const idleShare = pool.size / this.capacity;
    if (idleShare < 0.2) this.interval = Math.max(minInterval, this.interval - 100);
    else if (idleShare > 0.8) this.interval = Math.min(maxInterval, this.interval + 100);
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.interval);
  }

  private async dialOne(): Promise<DialedMember> {
    const member = await this.options.transport.dial();
    this.dialed++;
    if (member.fingerprint !== undefined) this.options.onCertificate?.(member.fingerprint, member.id);
    if (!this.controlDone && member.id !== CONTROL_ID)
      this.options.logger.debug(`pool connection ${member.id} before control`);
    return member;
  }
}

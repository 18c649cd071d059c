import { connect, isIP, type NetConnectOpts, type Socket } from 'node:net';
import { type Endpoint, formatEndpoint } from '../config/url.js';
import { DnsCache, type ResolvedAddress } from './dns-cache.js';

export interface DialerOptions {
  /** 0 round-robin start + failover, 1 lowest latency first, 2 primary/backup. */
  lbs: 0 | 1 | 2;
  dialTimeout: number;
  /** Local source address for outbound dials; 'auto' lets the system choose. */
  localAddress: string;
  dnsTtl: number;
  /** lbs=1: how often every target is probed. */
  probeInterval: number;
  /** lbs=2: how often the dialer goes back to trying the first target first. */
  primaryReturnInterval: number;
}

export interface DialedTcp {
  socket: Socket;
  target: Endpoint;
  /** Time to connect, in ms. */
  connectTime: number;
}

export class AllTargetsFailedError extends Error {
  override readonly name = 'AllTargetsFailedError';
  constructor(
    readonly count: number,
    readonly lastError: Error | undefined,
  ) {
    super(`all ${count} targets failed${lastError ? `: ${lastError.message}` : ''}`);
  }
}

/**
 * Dials a target group. Every strategy fails over through all targets; they differ in where a dial starts:
 * lbs 0 rotates the start per dial, lbs 1 orders targets by their last probe latency, lbs 2 starts at the last target
 * that worked and returns to the first one every `primaryReturnInterval`.
 */
export class Dialer {
  private rotation = 0;
  private sticky = 0;
  private lastPrimaryReturn = performance.now();
  private readonly latencies: Array<number | undefined>;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly dns: DnsCache;
  private readonly family: 0 | 4 | 6;

  constructor(
    readonly targets: readonly Endpoint[],
    private readonly options: DialerOptions,
  ) {
    this.dns = new DnsCache(options.dnsTtl);
    this.latencies = targets.map(() => undefined);
    this.family = options.localAddress === 'auto' ? 0 : (isIP(options.localAddress) as 4 | 6);
  }

  /** Starts latency probing (lbs=1 only). */
  start(): void {
    if (this.options.lbs !== 1 || this.targets.length < 2) return;
    void this.probeAll();
    this.probeTimer = setInterval(() => void this.probeAll(), this.options.probeInterval);
    this.probeTimer.unref();
  }

  stop(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
  }

  /** Target indexes in the order the next dial tries them. */
  order(): number[] {
    const n = this.targets.length;
    const indexes = [...Array(n).keys()];
    if (n === 1) return indexes;
    switch (this.options.lbs) {
      case 0: {
        const start = this.rotation++ % n;
        return indexes.map((i) => (start + i) % n);
      }
      case 1:
        // Fastest known first; unprobed or unreachable targets keep their configured order after them.
        return indexes.sort((a, b) => (this.latencies[a] ?? Infinity) - (this.latencies[b] ?? Infinity) || a - b);
      case 2: {
        const now = performance.now();
        if (now - this.lastPrimaryReturn >= this.options.primaryReturnInterval) {
          this.lastPrimaryReturn = now;
          this.sticky = 0;
        }
        return indexes.map((i) => (this.sticky + i) % n);
      }
    }
  }

  /** Connects to the first target that accepts, in the strategy's order. */
  async dialTcp(): Promise<DialedTcp> {
    let lastError: Error | undefined;
    for (const index of this.order()) {
      const target = this.targets[index] as Endpoint;
      try {
        const dialed = await this.connectOnce(target);
        if (this.options.lbs === 2) this.sticky = index;
        return dialed;
      } catch (err) {
        lastError = err as Error;
        if (this.options.lbs === 1) this.latencies[index] = undefined;
      }
    }
    throw new AllTargetsFailedError(this.targets.length, lastError);
  }

  /** The address a new UDP session sends to: UDP has no handshake to fail over on, so the first in order. */
  async resolveUdp(): Promise<{ target: Endpoint; resolved: ResolvedAddress }> {
    const target = this.targets[this.order()[0] as number] as Endpoint;
    return { target, resolved: await this.dns.resolve(target.host, this.family) };
  }

  /**
   * TCP connect time to each target in ms (undefined = unreachable), all probed at once. Each result is recorded as
   * it arrives, so a target that hangs until the dial timeout does not hold back what the fast ones showed.
   */
  probeAll(): Promise<Array<number | undefined>> {
    return Promise.all(
      this.targets.map(async (t, i) => {
        let latency: number | undefined;
        try {
          const { socket, connectTime } = await this.connectOnce(t);
          socket.destroy();
          latency = connectTime;
        } catch {
          latency = undefined;
        }
        this.latencies[i] = latency;
        return latency;
      }),
    );
  }

  private async connectOnce(target: Endpoint): Promise<DialedTcp> {
    const resolved = await this.dns.resolve(target.host, this.family);
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const options: NetConnectOpts & { highWaterMark: number } = {
        host: resolved.address,
        port: target.port,
        family: resolved.family,
        allowHalfOpen: true,
        noDelay: true,
        // As the accepted side: one libuv read (64 KiB) per 'data' event instead of a 16 KiB default.
        highWaterMark: 64 * 1024,
        ...(this.options.localAddress !== 'auto' ? { localAddress: this.options.localAddress } : {}),
      };
      const socket = connect(options);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${formatEndpoint(target)} timed out after ${this.options.dialTimeout}ms`));
      }, this.options.dialTimeout);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        resolve({ socket, target, connectTime: performance.now() - started });
      });
      const onError = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once('error', onError);
    });
  }
}

import type { TrafficCounters } from './traffic.js';

/** The `slot` cap: TCP and UDP sessions counted together, as NodePass does; 0 = unlimited. */
export class SessionSlots {
  constructor(
    private readonly limit: number,
    private readonly counters: TrafficCounters,
  ) {}

  tryAcquire(kind: 'tcp' | 'udp'): boolean {
    const c = this.counters;
    if (this.limit > 0 && c.tcpSessions + c.udpSessions >= this.limit) return false;
    if (kind === 'tcp') c.tcpSessions += 1;
    else c.udpSessions += 1;
    return true;
  }

  release(kind: 'tcp' | 'udp'): void {
    if (kind === 'tcp') this.counters.tcpSessions -= 1;
    else this.counters.udpSessions -= 1;
  }

  get limitText(): string {
    return this.limit === 0 ? 'unlimited' : String(this.limit);
  }
}

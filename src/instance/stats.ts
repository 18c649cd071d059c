import type { Logger } from '../common/logger.js';
import type { TrafficCounters } from '../tunnel/traffic.js';
import { sendToMaster } from './ipc.js';

/** The figures an instance reports every NP_REPORT_INTERVAL (NodePass's CHECK_POINT line). */
export interface InstanceStats {
  mode: number;
  ping: number;
  pool: number;
  tcps: number;
  udps: number;
  tcprx: number;
  tcptx: number;
  udprx: number;
  udptx: number;
}

export function formatCheckPoint(s: InstanceStats): string {
  return `CHECK_POINT|MODE=${s.mode}|PING=${s.ping}ms|POOL=${s.pool}|TCPS=${s.tcps}|UDPS=${s.udps}|TCPRX=${s.tcprx}|TCPTX=${s.tcptx}|UDPRX=${s.udprx}|UDPTX=${s.udptx}`;
}

export function snapshot(mode: number, ping: number, pool: number, c: TrafficCounters): InstanceStats {
  return {
    mode,
    ping,
    pool,
    tcps: c.tcpSessions,
    udps: c.udpSessions,
    tcprx: c.tcpRx,
    tcptx: c.tcpTx,
    udprx: c.udpRx,
    udptx: c.udpTx,
  };
}

/**
 * Reports stats now and every `interval` ms: the CHECK_POINT line at event level (for NodePass tooling that reads
 * logs) and a structured message on the IPC channel when a master started this process.
 */
export class StatsReporter {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly collect: () => Promise<InstanceStats>,
    private readonly interval: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    void this.report();
    this.timer = setInterval(() => void this.report(), this.interval);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async report(): Promise<void> {
    const stats = await this.collect();
    this.logger.event(formatCheckPoint(stats));
    sendToMaster({ type: 'stats', ...stats });
  }
}

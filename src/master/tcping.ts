import { connect } from 'node:net';
import { parseEndpoint } from '../config/url.js';
import type { TcpingView } from './schemas.js';

/** TCP connect test of `/tcping`: at most `limit` dials at once (later ones wait), each bounded by `timeout`. */
export class Tcping {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly timeout: number,
    private readonly limit = 10,
  ) {}

  async ping(target: string): Promise<TcpingView> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await this.dial(target);
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  private dial(target: string): Promise<TcpingView> {
    let endpoint: { host: string; port: number };
    try {
      endpoint = parseEndpoint(target, 'target');
    } catch (err) {
      return Promise.resolve({ target, connected: false, latency: 0, error: (err as Error).message });
    }
    const started = process.hrtime.bigint();
    return new Promise((resolve) => {
      const socket = connect({ host: endpoint.host || '127.0.0.1', port: endpoint.port });
      const done = (error: string | null) => {
        clearTimeout(timer);
        socket.destroy();
        const latency = Number((process.hrtime.bigint() - started) / 1_000_000n);
        resolve({ target, connected: error === null, latency: error === null ? latency : 0, error });
      };
      const timer = setTimeout(() => done(`dial tcp ${target}: i/o timeout`), this.timeout);
      socket.once('connect', () => done(null));
      socket.once('error', (err: NodeJS.ErrnoException) => done(`dial tcp ${target}: ${err.code ?? err.message}`));
    });
  }
}

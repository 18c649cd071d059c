import { request } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../common/logger.js';
import type { RuntimeSettings } from '../config/env.js';
import { formatEndpoint, type TunnelUrl } from '../config/url.js';
import type { Dialer } from '../tunnel/dialer.js';
import { ConnectionPool } from '../tunnel/pool.js';
import { PoolDialer } from '../tunnel/pool-dialer.js';
import type { InstanceTraffic } from '../tunnel/traffic.js';
import { createClientTransport, type PoolClientTransport, type PoolType } from '../tunnel/transport/index.js';
import { createDataPlane } from './data-plane.js';
import { decodeHandshakeReply, type HandshakeReply, handshakeToken } from './handshake.js';
import { StatsReporter, snapshot } from './stats.js';
import { TunnelSides } from './tunnel-sides.js';

/** The server answered the handshake with something other than 200. */
export class HandshakeRefusedError extends Error {
  override readonly name = 'HandshakeRefusedError';
}

/**
 * A NodePass client:// instance in dual-end mode (2): handshakes with the server, keeps the TCP pool filled, and
 * obeys the server's flow: `+` makes it the ingress on its TARGET[0], `-` the egress dialing its target group.
 * Whenever the tunnel fails it waits NP_SERVICE_COOLDOWN and handshakes again, until stopped.
 */
export class TunnelClient {
  readonly traffic: InstanceTraffic;
  private readonly dialer: Dialer;
  private readonly pool = new ConnectionPool();
  private readonly reporter: StatsReporter;
  private readonly sides: TunnelSides;
  private poolDialer: PoolDialer | undefined;
  private transport: PoolClientTransport | undefined;
  private readonly fingerprints = new Map<string, string>();
  private reply: HandshakeReply | undefined;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: TunnelUrl,
    private readonly settings: RuntimeSettings,
    private readonly logger: Logger,
  ) {
    const dataPlane = createDataPlane(url, settings);
    ({ traffic: this.traffic, dialer: this.dialer } = dataPlane);
    this.sides = new TunnelSides({ url, settings, dataPlane, pool: this.pool, logger });
    this.reporter = new StatsReporter(
      async () => snapshot(2, Math.round(this.sides.control?.rtt ?? 0), this.pool.size, this.traffic.counters),
      settings.reportInterval,
      logger,
    );
  }

  /** Starts the session loop; the first handshake happens in the background. */
  async start(): Promise<void> {
    this.reporter.start();
    void this.connect();
  }

  /** Ends the session loop and the tunnel; sessions through it end at once (their pool connections close). */
  async stop(_timeout: number): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.reporter.stop();
    this.dialer.stop();
    this.teardown();
    this.sides.close();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    try {
      const reply = await this.handshake();
      const { tunnel, params } = this.url;
      // The server's type decides; one this build cannot carry fails here with the reason (and is retried).
      this.transport = createClientTransport(Number(reply.type) as PoolType, {
        host: tunnel.host === '' ? '127.0.0.1' : tunnel.host,
        port: tunnel.port,
        tls: Number(reply.tls) as 0 | 1 | 2,
        servername: params.sni === 'none' ? undefined : params.sni,
        authority: params.sni,
        dialTimeout: this.settings.tcpDialTimeout,
        keepAlive: this.settings.reportInterval,
        logger: this.logger,
      });
      this.reply = reply;
      await this.setUpSides(reply);
      this.poolDialer = new PoolDialer({
        pool: this.pool,
        transport: this.transport,
        min: Math.min(this.url.params.min, reply.max),
        max: reply.max,
        minInterval: this.settings.minPoolInterval,
        maxInterval: this.settings.maxPoolInterval,
        onControl: (socket) => this.onControl(socket),
        onCertificate: (fp, id) => this.fingerprints.set(id, fp),
        logger: this.logger,
      });
      await this.poolDialer.start();
      this.logger.info(
        `Connected to ${formatEndpoint(this.url.tunnel)} (flow ${reply.flow}, tls ${reply.tls}, type ${reply.type})`,
      );
    } catch (err) {
      this.retry((err as Error).message);
    }
  }

  private retry(reason: string): void {
    if (this.stopped) return;
    this.logger.error(`Tunnel to ${formatEndpoint(this.url.tunnel)} failed: ${reason}`);
    this.teardown();
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(), this.settings.serviceCooldown);
  }

  private handshake(): Promise<HandshakeReply> {
    const { tunnel, params, key } = this.url;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: tunnel.host === '' ? '127.0.0.1' : tunnel.host,
          port: tunnel.port,
          method: 'GET',
          path: '/',
          headers: { Host: params.sni, Authorization: `Bearer ${handshakeToken(key)}` },
          timeout: this.settings.handshakeTimeout,
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode !== 200) {
              reject(new HandshakeRefusedError(`handshake refused: ${res.statusCode} ${body.trim()}`));
              return;
            }
            try {
              resolve(decodeHandshakeReply(body));
            } catch (err) {
              reject(err);
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('handshake timed out')));
      req.on('error', reject);
      req.end();
    });
  }

  private async setUpSides(reply: HandshakeReply): Promise<void> {
    // The server's flow decides which end this client is, cycle by cycle.
    if (reply.flow === '+') await this.sides.bindIngress(this.url.targets[0] as TunnelUrl['targets'][0]);
    else this.sides.startEgress();
  }

  private onControl(socket: Duplex): void {
    this.sides.attachControl(socket, {
      verify: this.reply?.tls === '1',
      fingerprintOf: (id) => this.fingerprints.get(id),
      onFatal: (reason) => this.retry(reason),
    });
  }

  private teardown(): void {
    this.poolDialer?.stop();
    this.poolDialer = undefined;
    this.transport?.close();
    this.transport = undefined;
    this.sides.teardown();
    this.fingerprints.clear();
  }
}

import type { Duplex } from 'node:stream';
import type { Logger } from '../common/logger.js';
import type { RuntimeSettings } from '../config/env.js';
import type { Endpoint, TunnelUrl } from '../config/url.js';
import type { ConnectionPool } from '../tunnel/pool.js';
import { ControlChannel } from './control-channel.js';
import type { InstanceDataPlane } from './data-plane.js';
import { Egress, Ingress } from './dual-end.js';
import type { Signal } from './signals.js';
import { CertificateVerifier } from './verify.js';

export interface TunnelSidesOptions {
  url: TunnelUrl;
  settings: RuntimeSettings;
  dataPlane: InstanceDataPlane;
  pool: ConnectionPool;
  logger: Logger;
}

export interface ControlOptions {
  /** tls=1: both ends send and check `verify` before the ingress serves users (docs/protocol.md §3.4). */
  verify: boolean;
  /** The certificate fingerprint this side knows for pool connection `id`. */
  fingerprintOf(id: string): string | undefined;
  /** The control channel failed or the peer's `verify` did not match: this cycle of the tunnel is over. */
  onFatal(reason: string): void;
}

/**
 * The two ends a dual-end instance may play — the ingress (users connect) and the egress (targets are dialed) — and
 * the control channel of the current cycle, with what it means for them: signals reach the egress, the ingress opens
 * once the tunnel is verified, a teardown ends the cycle's sessions. The server and the client differ only in how a
 * cycle starts (accepting a handshake versus making one), so both keep their sides here.
 */
export class TunnelSides {
  ingress: Ingress | undefined;
  egress: Egress | undefined;
  control: ControlChannel | undefined;
  /**
   * Which end this side plays in the current cycle. A client keeps the ingress or egress of an earlier cycle, and the
   * server may switch its flow between cycles: only the end of the current one serves (gets signals, opens to users).
   */
  private role: 'ingress' | 'egress' | undefined;
  private verifier: CertificateVerifier | undefined;
  /** Signalled pool connections the egress could not get since the last flush (NodePass's error count). */
  private poolMisses = 0;

  constructor(private readonly options: TunnelSidesOptions) {}

  private sideOptions() {
    const { url, dataPlane, pool, logger, settings } = this.options;
    return {
      pool,
      traffic: dataPlane.traffic,
      slots: dataPlane.slots,
      logger,
      readTimeout: url.params.read,
      udpIdleTimeout: settings.udpReadTimeout,
      poolGetTimeout: settings.poolGetTimeout,
    };
  }

  /** This side is the ingress, on `listen` (bound once; later cycles reuse it). Throws when it cannot be bound. */
  async bindIngress(listen: Endpoint): Promise<void> {
    if (this.ingress !== undefined) {
      this.role = 'ingress';
      return;
    }
    const { params } = this.options.url;
    const ingress = new Ingress(listen, {
      ...this.sideOptions(),
      notcp: params.notcp === 1,
      noudp: params.noudp === 1,
      block: params.block,
    });
    await ingress.bind();
    this.ingress = ingress;
    this.role = 'ingress';
  }

  /** This side is the egress (created once, starting the target dialer's health checks). */
  startEgress(): void {
    this.role = 'egress';
    if (this.egress !== undefined) return;
    const { params } = this.options.url;
    this.egress = new Egress(this.options.dataPlane.dialer, {
      ...this.sideOptions(),
      proxy: params.proxy === 1,
      localAddress: params.dial,
      onPoolMiss: () => this.poolMisses++,
    });
    this.options.dataPlane.dialer.start();
  }

  /** The control channel of a new cycle arrived (pool connection 00000000). */
  attachControl(stream: Duplex, control: ControlOptions): void {
    const { url, settings, pool, logger } = this.options;
    this.control = new ControlChannel(stream, {
      key: url.key,
      reportInterval: settings.reportInterval,
      logger,
      onSignal: (signal) => this.onSignal(signal),
      onFatal: control.onFatal,
      onHealthCheck: () => this.checkPoolHealth(),
    });
    if (this.ingress) this.ingress.control = this.control;
    if (!control.verify) {
      this.markVerified();
      return;
    }
    this.verifier = new CertificateVerifier({
      pool,
      control: this.control,
      fingerprintOf: control.fingerprintOf,
      poolGetTimeout: settings.poolGetTimeout,
    });
    this.verifier.begin();
  }

  private onSignal(signal: Signal): void {
    if (signal.action === 'verify') this.verifier?.check(signal, () => this.markVerified());
    else if (signal.action === 'flush') this.flushPool();
    else if (this.role === 'egress') this.egress?.handle(signal);
  }

  /**
   * NodePass's rule, on every health check: more missed pool connections than half the idle ones means the pool has
   * gone stale (members a middlebox dropped, ids lost): both ends close their idle members and the client dials fresh.
   */
  private checkPoolHealth(): void {
    if (this.poolMisses <= Math.floor(this.options.pool.size / 2)) return;
    this.options.logger.warn(
      `${this.poolMisses} signalled pool connection(s) missing since the last check: flushing ${this.options.pool.size} idle on both ends`,
    );
    this.control?.send({ action: 'flush' });
    this.flushPool();
  }

  private flushPool(): void {
    this.options.pool.flush();
    this.poolMisses = 0;
  }

  private markVerified(): void {
    if (this.role === 'ingress' && this.ingress) this.ingress.open = true;
    this.options.logger.info('Tunnel ready');
  }

  /** Ends the cycle: the control channel, every idle pool member and every session through the tunnel. */
  teardown(): void {
    this.control?.close();
    this.control = undefined;
    this.verifier = undefined;
    this.poolMisses = 0;
    this.options.pool.close('tunnel down');
    if (this.ingress) {
      this.ingress.open = false;
      this.ingress.control = undefined;
    }
    this.egress?.close();
  }

  /** Ends the cycle and closes the ingress listeners (the instance stops). */
  close(): void {
    this.teardown();
    this.ingress?.close();
  }
}

import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { Logger } from '../common/logger.js';
import type { RuntimeSettings } from '../config/env.js';
import { formatEndpoint, type TunnelUrl } from '../config/url.js';
import { AllTargetsFailedError, type Dialer } from '../tunnel/dialer.js';
import { encodeProxyV1 } from '../tunnel/proxy-protocol.js';
import { Relay } from '../tunnel/relay.js';
import type { SessionSlots } from '../tunnel/session-slots.js';
import { SNIFF_AMBIGUITY_TIMEOUT, sniffFirstBytes } from '../tunnel/sniff.js';
import { ListenerCertificate } from '../tunnel/tls-listener.js';
import type { InstanceTraffic } from '../tunnel/traffic.js';
import { UdpForwarder } from '../tunnel/udp-forwarder.js';
import { bindUdp } from '../tunnel/udp-socket.js';
import { createDataPlane } from './data-plane.js';
import { type InstanceStats, StatsReporter, snapshot } from './stats.js';

// Sockets read up to this much per event; libuv reads 64 KiB at a time, so match it to avoid splitting reads.
const HIGH_WATER_MARK = 64 * 1024;

/**
 * Client mode 1: a local forwarder. Listens on the tunnel address (TCP, optionally behind TLS, and UDP) and relays
 * each connection / UDP source to the target group.
 */
export class SingleEndForwarder {
  readonly traffic: InstanceTraffic;
  private readonly dialer: Dialer;
  private readonly slots: SessionSlots;
  private readonly relays = new Set<Relay>();
  /** Set while stopping: called when the last session has closed. */
  private onDrained: (() => void) | undefined;
  private tcpServer: Server | TlsServer | undefined;
  private udp: UdpForwarder | undefined;
  private certificate: ListenerCertificate | undefined;
  private readonly reporter: StatsReporter;

  constructor(
    private readonly url: TunnelUrl,
    private readonly settings: RuntimeSettings,
    private readonly logger: Logger,
  ) {
    ({ traffic: this.traffic, slots: this.slots, dialer: this.dialer } = createDataPlane(url, settings));
    this.reporter = new StatsReporter(() => this.stats(), settings.reportInterval, logger);
  }

  /** Binds the listeners; rejects (with the system's reason) when the tunnel address cannot be bound. */
  async start(): Promise<void> {
    const { tunnel, params } = this.url;
    if (params.notcp === 0) {
      this.tcpServer = await this.listenTcp();
      this.logger.info(`TCP listening on ${formatEndpoint(tunnel)}${params.tls !== 0 ? ' (TLS)' : ''}`);
    }
    if (params.noudp === 0) {
      try {
        const listener = await bindUdp(tunnel.host, tunnel.port);
        this.udp = new UdpForwarder(listener, {
          dialer: this.dialer,
          traffic: this.traffic,
          slots: this.slots,
          idleTimeout: this.settings.udpReadTimeout,
          localAddress: params.dial,
          logger: this.logger,
        });
        this.logger.info(`UDP listening on ${formatEndpoint(tunnel)}`);
      } catch (err) {
        this.tcpServer?.close();
        throw err;
      }
    }
    this.dialer.start();
    this.reporter.start();
  }

  /** PING is the fastest TCP connect time among the targets, as NodePass reports it in single-end mode. */
  async stats(): Promise<InstanceStats> {
    const latencies = (await this.dialer.probeAll()).filter((l): l is number => l !== undefined);
    const ping = latencies.length === 0 ? 0 : Math.round(Math.min(...latencies));
    return snapshot(1, ping, 0, this.traffic.counters);
  }

  /** Stops accepting, ends every session gracefully, and destroys what is still open after `timeout` ms. */
  async stop(timeout: number): Promise<void> {
    this.reporter.stop();
    this.dialer.stop();
    this.certificate?.stop();
    this.tcpServer?.close();
    this.udp?.close();
    if (this.relays.size === 0) return;
    const drained = new Promise<void>((resolve) => {
      this.onDrained = resolve;
    });
    for (const relay of this.relays) {
      relay.user.end();
      relay.target.end();
    }
    // Sessions that do not finish in time are cut; their close empties the set and resolves `drained`.
    const deadline = setTimeout(() => {
      for (const relay of this.relays) relay.destroy(new Error('shutdown'));
    }, timeout);
    await drained;
    clearTimeout(deadline);
  }

  private async listenTcp(): Promise<Server | TlsServer> {
    const { tunnel, params } = this.url;
    const options = { allowHalfOpen: true, pauseOnConnect: true, noDelay: true, highWaterMark: HIGH_WATER_MARK };
    let server: Server | TlsServer;
    if (params.tls === 0) {
      server = createServer(options, (socket) => this.onUser(socket));
    } else {
      const hosts = tunnel.host === '' ? [] : [tunnel.host];
      const cert = await ListenerCertificate.create(params.tls, params.crt, params.key, this.logger, hosts);
      this.certificate = cert;
      const tlsServer = createTlsServer(
        { ...options, cert: cert.current.cert, key: cert.current.key, minVersion: 'TLSv1.3' },
        (socket) => this.onUser(socket),
      );
      tlsServer.on('tlsClientError', (err) => this.logger.debug(`TLS handshake failed: ${err.message}`));
      cert.watch(params.crt, params.key, this.settings.reloadInterval, this.logger, (pair) =>
        tlsServer.setSecureContext({ cert: pair.cert, key: pair.key, minVersion: 'TLSv1.3' }),
      );
      this.logger.info(`TLS certificate ${cert.current.fingerprint}`);
      server = tlsServer;
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: tunnel.host === '' ? undefined : tunnel.host, port: tunnel.port }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error(`TCP listener error: ${err.message}`));
    return server;
  }

  private onUser(user: Socket): void {
    const { params } = this.url;
    const remote = `${user.remoteAddress}:${user.remotePort}`;
    if (!this.slots.tryAcquire('tcp')) {
      this.logger.warn(`TCP slot limit reached (${this.slots.limitText}): refused ${remote}`);
      user.destroy();
      return;
    }
    // Until the relay owns it, an error on the user socket only needs to be absorbed; the close is seen below.
    user.on('error', () => {});
    const sniffing = params.block.size > 0 ? sniffFirstBytes(user, params.block, SNIFF_AMBIGUITY_TIMEOUT) : undefined;
    void this.connectUser(user, remote, sniffing);
  }

  private async connectUser(
    user: Socket,
    remote: string,
    sniffing: ReturnType<typeof sniffFirstBytes> | undefined,
  ): Promise<void> {
    const { params } = this.url;
    let target: Socket;
    try {
      target = (await this.dialer.dialTcp()).socket;
    } catch (err) {
      const reason = err instanceof AllTargetsFailedError ? err.message : String(err);
      this.logger.warn(`TCP dial for ${remote} failed: ${reason}`);
      user.destroy();
      this.slots.release('tcp');
      return;
    }
    if (user.destroyed) {
      target.destroy();
      this.slots.release('tcp');
      return;
    }
    const relay = new Relay(user, target, {
      up: this.traffic.tcpUp,
      down: this.traffic.tcpDown,
      idleTimeout: params.read,
      onClose: (error) => {
        this.relays.delete(relay);
        this.slots.release('tcp');
        if (this.relays.size === 0) this.onDrained?.();
        this.logger.debug(`Exchange complete: ${remote}${error ? ` (${error.message})` : ''}`);
      },
    });
    this.relays.add(relay);
    this.logger.debug(`Starting exchange: ${remote} <-> ${target.remoteAddress}:${target.remotePort}`);
    if (params.proxy === 1) {
      target.write(
        encodeProxyV1(
          { address: user.remoteAddress ?? '', port: user.remotePort ?? 0 },
          { address: target.remoteAddress ?? '', port: target.remotePort ?? 0 },
        ),
      );
    }
    relay.startDown();
    if (sniffing === undefined) {
      relay.startUp();
      return;
    }
    const { verdict, head, ended } = await sniffing;
    if (verdict.kind === 'block') {
      this.logger.warn(`Blocked ${verdict.protocol.toUpperCase()} connection from ${remote}`);
      relay.destroy(new Error(`blocked ${verdict.protocol}`));
      return;
    }
    relay.startUp(head, ended);
  }
}

import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from '../common/logger.js';
import type { RuntimeSettings } from '../config/env.js';
import { formatEndpoint, type TunnelUrl } from '../config/url.js';
import type { Dialer } from '../tunnel/dialer.js';
import { ConnectionPool } from '../tunnel/pool.js';
import { PoolAcceptor } from '../tunnel/pool-acceptor.js';
import { ListenerCertificate } from '../tunnel/tls-listener.js';
import type { InstanceTraffic } from '../tunnel/traffic.js';
import {
  assertTransportAvailable,
  createServerTransport,
  POOL_TYPE_NAMES,
  type PoolServerTransport,
  QuicEndpoint,
  requiresTls,
} from '../tunnel/transport/index.js';
import { createDataPlane } from './data-plane.js';
import { encodeHandshakeReply, verifyAuthorization } from './handshake.js';
import { StatsReporter, snapshot } from './stats.js';
import { TunnelSides } from './tunnel-sides.js';

type Phase = 'handshake' | 'pool' | 'cooldown' | 'stopped';

/**
 * A NodePass server:// instance. Waits for one client handshake on the tunnel port, then takes that client's pool
 * connections on the same port; mode 1 (reverse) is the ingress on TARGET[0], mode 2 (forward) the egress dialing
 * the target group. When the control channel dies the tunnel is torn down and, after NP_SERVICE_COOLDOWN, the
 * server waits for a new handshake.
 */
export class TunnelServer {
  readonly traffic: InstanceTraffic;
  private readonly dialer: Dialer;
  private readonly sides: TunnelSides;
  private readonly reporter: StatsReporter;
  private listener: Server | undefined;
  private readonly http = createHttpServer((req, res) => this.onHandshake(req, res));
  private phase: Phase = 'handshake';
  private mode: 1 | 2 = 2;
  private readonly pool = new ConnectionPool();
  private transport: PoolServerTransport | undefined;
  /** Type 1: the QUIC listener on the tunnel port's UDP side, for the instance's life. */
  private quic: QuicEndpoint | undefined;
  private certificate: ListenerCertificate | undefined;
  private secureContext: SecureContext | undefined;
  private cooldownTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: TunnelUrl,
    private readonly settings: RuntimeSettings,
    private readonly logger: Logger,
  ) {
    const dataPlane = createDataPlane(url, settings);
    ({ traffic: this.traffic, dialer: this.dialer } = dataPlane);
    this.sides = new TunnelSides({ url, settings, dataPlane, pool: this.pool, logger });
    this.reporter = new StatsReporter(
      async () => snapshot(this.mode, Math.round(this.sides.control?.rtt ?? 0), this.pool.size, this.traffic.counters),
      settings.reportInterval,
      logger,
    );
  }

  get flow(): '+' | '-' {
    return this.mode === 1 ? '-' : '+';
  }

  async start(): Promise<void> {
    const { params, targets } = this.url;
    // A pool type this build cannot carry stops the instance here, before it listens, with the reason.
    await assertTransportAvailable(params.type);
    if (params.mode !== 2) {
      try {
        await this.sides.bindIngress(targets[0] as (typeof targets)[0]);
        this.mode = 1;
      } catch (err) {
        if (params.mode === 1) throw err;
        this.logger.info(`Cannot bind ${formatEndpoint(targets[0] as (typeof targets)[0])}: forward mode (2)`);
      }
    }
    if (this.mode === 2) this.sides.startEgress();
    // NodePass runs QUIC and HTTP/2 pools over TLS whatever `tls` says: tls=0 becomes 1 (and the client is told so).
    const tls = params.tls === 0 && requiresTls(params.type) ? 1 : params.tls;
    if (tls !== params.tls) this.logger.info(`Pool type ${params.type} always runs over TLS: tls=0 runs as tls=1`);
    if (tls !== 0) {
      const host = this.url.tunnel.host;
      this.certificate = await ListenerCertificate.create(tls, params.crt, params.key, this.logger, host ? [host] : []);
      this.secureContext = createSecureContext({ ...this.certificate.current, minVersion: 'TLSv1.3' });
      this.certificate.watch(params.crt, params.key, this.settings.reloadInterval, this.logger, (pair) => {
        this.secureContext = createSecureContext({ cert: pair.cert, key: pair.key, minVersion: 'TLSv1.3' });
        this.quic?.updateCertificate(pair);
      });
    }
    // Pool connections carry relayed streams, which half-close; the handshake connection is closed by the reply.
    this.listener = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.onConnection(socket));
    const { tunnel } = this.url;
    await new Promise<void>((resolve, reject) => {
      const listener = this.listener as Server;
      listener.once('error', reject);
      listener.listen({ host: tunnel.host === '' ? undefined : tunnel.host, port: tunnel.port }, () => {
        listener.removeListener('error', reject);
        resolve();
      });
    });
    if (params.type === 1 && this.certificate) {
      try {
        this.quic = await QuicEndpoint.open({
          host: tunnel.host,
          port: (this.listener.address() as { port: number }).port,
          certificate: this.certificate.current,
          keepAlive: this.settings.reportInterval,
          logger: this.logger,
        });
      } catch (err) {
        this.listener.close();
        throw err;
      }
    }
    this.http.on('clientError', (_err, socket) => socket.destroy());
    this.http.headersTimeout = this.settings.handshakeTimeout;
    this.http.requestTimeout = this.settings.handshakeTimeout;
    this.logger.info(
      `Tunnel listening on ${formatEndpoint(tunnel)}, mode ${this.mode}, pool type ${params.type} ` +
        `(${POOL_TYPE_NAMES[params.type]}), tls ${this.certificate?.mode ?? 0}, waiting for a client`,
    );
    this.reporter.start();
  }

  /** Closes the listeners and the tunnel; sessions through it end at once (their pool connections close). */
  async stop(_timeout: number): Promise<void> {
    this.phase = 'stopped';
    this.reporter.stop();
    this.dialer.stop();
    this.certificate?.stop();
    clearTimeout(this.cooldownTimer);
    this.listener?.close();
    this.teardownSession();
    await this.quic?.close();
    this.sides.close();
  }

  private onConnection(socket: Socket): void {
    socket.on('error', () => {});
    if (this.phase === 'handshake') this.http.emit('connection', socket);
    else if (this.phase === 'pool' && this.transport) this.transport.accept(socket);
    else socket.destroy();
  }

  /** Why a handshake request is refused (status, body), or undefined to accept it. */
  private checkHandshake(req: IncomingMessage): [number, string] | undefined {
    if (req.method !== 'GET') return [405, 'Method Not Allowed'];
    if ((req.url ?? '').split('?')[0] !== '/') return [404, 'Not Found'];
    if (!verifyAuthorization(req.headers.authorization, this.url.key)) {
      this.logger.warn(`Handshake from ${req.socket.remoteAddress} refused: wrong key`);
      return [401, 'Unauthorized'];
    }
    if (this.phase !== 'handshake') return [409, 'Tunnel busy'];
    return undefined;
  }

  private onHandshake(req: IncomingMessage, res: ServerResponse): void {
    const reply = (status: number, body: string, json = false) => {
      // Go net/http's headers: plain-text errors carry nosniff; the JSON reply does not.
      res.writeHead(status, {
        Connection: 'close',
        'Content-Type': json ? 'application/json' : 'text/plain; charset=utf-8',
        ...(json ? {} : { 'X-Content-Type-Options': 'nosniff' }),
      });
      res.end(body);
    };
    const refusal = this.checkHandshake(req);
    if (refusal !== undefined) {
      reply(refusal[0], `${refusal[1]}\n`);
      return;
    }
    const clientAddress = req.socket.remoteAddress ?? '';
    const { params } = this.url;
    reply(
      200,
      encodeHandshakeReply({
        flow: this.flow,
        max: params.max,
        tls: String(this.certificate?.mode ?? 0) as '0' | '1' | '2',
        type: String(params.type) as '0' | '1' | '2' | '3',
      }),
      true,
    );
    this.phase = 'pool';
    const acceptor = new PoolAcceptor({
      pool: this.pool,
      // NodePass admits WebSocket members from any address: they may come through a reverse proxy.
      clientAddress: params.type === 2 ? undefined : clientAddress,
      max: params.max,
      onControl: (stream) => this.onControl(stream),
      logger: this.logger,
    });
    this.transport = createServerTransport(params.type, {
      acceptor,
      secureContext: () => this.secureContext,
      handshakeTimeout: this.settings.handshakeTimeout,
      keepAlive: this.settings.reportInterval,
      logger: this.logger,
      ...(this.quic ? { quic: this.quic } : {}),
    });
    this.logger.info(`Client ${clientAddress} connected (flow ${this.flow})`);
  }

  private onControl(socket: Duplex): void {
    this.sides.attachControl(socket, {
      verify: this.certificate?.mode === 1,
      fingerprintOf: () => this.certificate?.current.fingerprint,
      onFatal: (reason) => this.onTunnelDown(reason),
    });
  }

  private teardownSession(): void {
    // The transport first: an HTTP/2 session goes down whole rather than stream by stream (see Http2ClientTransport).
    this.transport?.close();
    this.transport = undefined;
    this.sides.teardown();
  }

  private onTunnelDown(reason: string): void {
    if (this.phase === 'stopped') return;
    this.logger.warn(`Tunnel down: ${reason}; waiting for a client again in ${this.settings.serviceCooldown}ms`);
    this.teardownSession();
    this.phase = 'cooldown';
    this.cooldownTimer = setTimeout(() => {
      if (this.phase === 'cooldown') this.phase = 'handshake';
    }, this.settings.serviceCooldown);
  }
}

import { createSocket } from 'node:dgram';
import { connect, createServer, isIP, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { writeAtomic } from '../common/atomic-write.js';
import type { Logger } from '../common/logger.js';
import { formatEndpoint } from '../config/url.js';
import { type CertificatePair, createSelfSignedCertificate, loadCertificateFiles } from '../tunnel/certificates.js';
import { DatagramStream } from '../tunnel/datagram-stream.js';
import { Relay } from '../tunnel/relay.js';
import { ListenerCertificate } from '../tunnel/tls-listener.js';
import type { Flow } from '../tunnel/traffic.js';
import { WebSocketAcceptor } from '../tunnel/transport/websocket-acceptor.js';
import type { HubConfig } from './config.js';
import { Firewall, normalizeAddress } from './firewall.js';
import { canBind, PortAllocator } from './port-allocator.js';
import { PortmapPolicy } from './portmap-policy.js';
import {
  challengeResponse,
  encodeFrame,
  type Frame,
  HUB_WEBSOCKET_PATH,
  type MessageOf,
  type PortMapRule,
  randomHex,
  readFrame,
  sameHex,
} from './protocol.js';
import { RegistrationError, Registry } from './registry.js';
import { checkPort, type Port } from './rules.js';
import { Session } from './session.js';
import { SiteListeners } from './site-listeners.js';
import { normalizeDomain, SiteTable } from './sites.js';
import { HubStore, type StoredTunnel } from './store.js';

/**
 * The tunnel listener's own certificate when none is configured: self-signed once, then kept in the state directory
 * (key mode 0600), because connectors pin its fingerprint and must still trust the hub after a restart.
 */
async function ensureStateCertificate(stateDir: string, host: string): Promise<[string, string]> {
  const crt = join(stateDir, 'tunnel.crt');
  const key = join(stateDir, 'tunnel.key');
  try {
    await loadCertificateFiles(crt, key);
    return [crt, key];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const pair = await createSelfSignedCertificate('porthole hub', host ? [host] : ['127.0.0.1', 'localhost']);
  await writeAtomic(key, pair.key);
  await writeAtomic(crt, pair.cert);
  return [crt, key];
}

/** Time a new connection has for its first frame (and a control connection for its answer to the challenge). */
const HANDSHAKE_TIMEOUT = 10_000;
const UDP_IDLE = 60_000;

export class TunnelOfflineError extends Error {
  override readonly name = 'TunnelOfflineError';
}

interface PortListener {
  server: Server;
  firewall: Firewall;
  /** The rule the listener serves (to notice changes). */
  key: string;
}

export interface HubOptions {
  pingInterval?: number;
}

function text(value: unknown, max = 256): string {
  return typeof value === 'string' ? value.slice(0, max) : '';
}

/**
 * The hub: accepts connector sessions on its tunnel listener, keeps tokens, tunnels and ports (persisted), serves a
 * public TCP listener per forwarded port, routes port mappings between tunnels, and enforces the firewall.
 */
export class Hub {
  readonly registry: Registry;
  readonly store: HubStore;
  readonly sessions = new Map<string, Session>();
  /** The sites each live session last claimed, refused ones included (see offerReleased), and the refusals. */
  private readonly siteClaims = new Map<
    Session,
    { sites: unknown[]; refused: Array<{ domain: string; error: string }> }
  >();
  private readonly sessionsById = new Map<string, Session>();
  private readonly listeners = new Map<number, PortListener>();
  private readonly policy: PortmapPolicy;
  readonly sites: SiteTable;
  readonly siteListeners: SiteListeners;
  private tunnelServer: TlsServer | Server | undefined;
  /** The optional plain-HTTP WebSocket listener (`wsListen`), for a TLS-terminating reverse proxy in front. */
  private webSocketServer: Server | undefined;
  /** WebSocket upgrades on HUB_WEBSOCKET_PATH, from the tunnel listener and the WebSocket listener. */
  private readonly webSockets: WebSocketAcceptor;
  private certificate: ListenerCertificate | undefined;
  private readonly pingInterval: number;
  readonly startedAt = Date.now();
  private stopping = false;

  private constructor(
    readonly config: HubConfig,
    readonly logger: Logger,
    registry: Registry,
    store: HubStore,
    options: HubOptions,
  ) {
    this.registry = registry;
    this.store = store;
    this.policy = new PortmapPolicy(config.portmapAllow);
    this.pingInterval = options.pingInterval ?? 10_000;
    this.sites = new SiteTable(logger, registry.domains);
    this.siteListeners = new SiteListeners({
      sites: this.sites,
      logger,
      sessionOf: (id) => this.sessions.get(id),
      relay: (client, stream, session, head) => this.relay(client, stream, [session.tunnel], head.length),
    });
    this.webSockets = new WebSocketAcceptor({
      handshakeTimeout: HANDSHAKE_TIMEOUT,
      admit: (req) =>
        new URL(req.url ?? '/', 'http://hub').pathname === HUB_WEBSOCKET_PATH
          ? undefined
          : {
              status: 404,
              reason: 'Not Found',
              body: `no WebSocket endpoint here; the hub's is ${HUB_WEBSOCKET_PATH}`,
            },
      onStream: (stream, req) => this.onLink(stream, req.socket.remoteAddress ?? ''),
    });
  }

  static async create(config: HubConfig, logger: Logger, options: HubOptions = {}): Promise<Hub> {
    let registry: Registry | undefined;
    const store = new HubStore(config.stateDir, () => (registry as Registry).snapshot(), logger);
    const state = await store.load();
    const ports = new PortAllocator(config.portRange.begin, config.portRange.end, (p) => canBind(config.publicBind, p));
    registry = new Registry(state, ports);
    if (config.adminKey !== '') registry.adminKey = config.adminKey;
    registry.ensureBootstrapTokens(config.tokens);
    // Sessions from before a restart are gone: every tunnel starts offline.
    await store.save();
    return new Hub(config, logger, registry, store, options);
  }

  get fingerprint(): string | undefined {
    return this.certificate?.current.fingerprint;
  }

  get tunnelPort(): number {
    return (this.tunnelServer?.address() as { port: number } | null)?.port ?? 0;
  }

  /** The port of the plain WebSocket listener, 0 when there is none. */
  get webSocketPort(): number {
    return (this.webSocketServer?.address() as { port: number } | null)?.port ?? 0;
  }

  /** Starts the tunnel listener. */
  async listen(): Promise<void> {
    const onConnection = (socket: Socket) => this.onTunnelConnection(socket);
    if (this.config.tls) {
      const [crt, key] =
        this.config.cert !== ''
          ? [this.config.cert, this.config.key]
          : await ensureStateCertificate(this.config.stateDir, this.config.tunnelListen.host);
      this.certificate = await ListenerCertificate.create(2, crt, key, this.logger);
      const pair: CertificatePair = this.certificate.current;
      this.tunnelServer = createTlsServer({ cert: pair.cert, key: pair.key, allowHalfOpen: true }, onConnection);
      this.tunnelServer.on('tlsClientError', (err) => this.logger.debug(`tunnel listener TLS: ${err.message}`));
    } else {
      this.tunnelServer = createServer({ allowHalfOpen: true }, onConnection);
    }
    const server = this.tunnelServer;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.config.tunnelListen.host || undefined, port: this.config.tunnelListen.port }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error(`tunnel listener: ${err.message}`));
    if (this.config.wsListen) await this.listenWebSocket(this.config.wsListen);
    await this.siteListeners.listen(this.config.httpListen, this.config.httpsListen);
  }

  /** The plain-HTTP listener that takes only WebSocket upgrades (TLS is the reverse proxy's in front of it). */
  private async listenWebSocket(at: { host: string; port: number }): Promise<void> {
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', (err) => this.logger.debug(`WebSocket listener ${socket.remoteAddress}: ${err.message}`));
      this.webSockets.accept(socket);
    });
    this.webSocketServer = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: at.host || undefined, port: at.port }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error(`WebSocket listener: ${err.message}`));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const session of this.sessions.values()) session.close('hub stopping');
    this.webSockets.close();
    this.webSocketServer?.close();
    for (const [port] of this.listeners) this.closeListener(port);
    this.siteListeners.close();
    this.certificate?.stop();
    await new Promise<void>((resolve) => (this.tunnelServer ? this.tunnelServer.close(() => resolve()) : resolve()));
    await this.store.flush();
  }

  // --- connections on the tunnel listener --------------------------------------------------------------------

  /**
   * A connection on the tunnel listener (decrypted, with TLS): the framed protocol, whose first byte is 0x00 (a frame
   * is at most 256 KiB), or an HTTP request, which can only be a WebSocket upgrade carrying the same protocol.
   */
  private onTunnelConnection(socket: Socket): void {
    const address = socket.remoteAddress ?? '';
    socket.on('error', (err) => this.logger.debug(`tunnel connection ${address}: ${err.message}`));
    const timer = setTimeout(() => socket.destroy(), HANDSHAKE_TIMEOUT);
    socket.once('close', () => clearTimeout(timer));
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      socket.pause();
      socket.unshift(chunk);
      if (chunk[0] === 0x00) this.onLink(socket, address);
      else this.webSockets.accept(socket);
    });
  }

  /** A connection that speaks the framed protocol: a TCP/TLS socket, or a WebSocket byte stream. */
  private onLink(link: Duplex, address: string): void {
    link.on('error', (err) => this.logger.debug(`tunnel connection ${address}: ${err.message}`));
    readFrame(link, HANDSHAKE_TIMEOUT).then(
      (frame) => this.dispatch(link, address, frame),
      (err: Error) => {
        this.logger.debug(`tunnel connection from ${address}: ${err.message}`);
        link.destroy();
      },
    );
  }

  private refuse(link: Duplex, address: string, error: string): void {
    this.logger.warn(`refused ${address}: ${error}`);
    link.end(encodeFrame({ type: 'refused', error }));
    setTimeout(() => link.destroy(), 1000).unref();
  }

  private dispatch(link: Duplex, address: string, frame: Frame): void {
    switch (frame.type) {
      case 'register':
        this.onRegister(link, address, frame);
        return;
      case 'hello':
        void this.onHello(link, address, frame);
        return;
      case 'data':
        void this.onData(link, frame);
        return;
      default:
        this.refuse(link, address, `unexpected first message "${frame.type}"`);
    }
  }

  private onRegister(socket: Duplex, address: string, frame: MessageOf<'register'>): void {
    try {
      const info = {
        name: text(frame.name) || 'connector',
        hostname: text(frame.hostname),
        version: text(frame.version, 64),
        os: text(frame.os, 64),
        arch: text(frame.arch, 64),
      };
      const renew =
        frame.renew && typeof frame.renew === 'object'
          ? { tunnelId: text(frame.renew.tunnelId, 64), secret: text(frame.renew.secret, 128) }
          : undefined;
      const old = renew && this.registry.tunnels.get(renew.tunnelId);
      // Renewing a tunnel adds none: the cap does not apply (with a wrong secret it would, as a new registration).
      const known = old !== undefined && renew !== undefined && sameHex(renew.secret, old.secret);
      if (this.config.maxTunnels > 0 && !known && this.registry.tunnels.size >= this.config.maxTunnels) {
        throw new RegistrationError(`the hub holds its maximum of ${this.config.maxTunnels} tunnels`);
      }
      const { tunnel, renewed } = this.registry.register(text(frame.token), info, normalizeAddress(address), renew);
      this.store.save().then(
        () => {
          this.logger.info(
            `${renewed ? 'renewed' : 'registered'} tunnel ${tunnel.id} (${tunnel.name}) from ${address}`,
          );
          socket.end(encodeFrame({ type: 'registered', tunnelId: tunnel.id, secret: tunnel.secret }));
        },
        () => this.refuse(socket, address, 'the hub could not save its state'),
      );
    } catch (err) {
      this.refuse(socket, address, (err as Error).message);
    }
  }

  private async onHello(socket: Duplex, address: string, hello: MessageOf<'hello'>): Promise<void> {
    const tunnel = this.registry.tunnels.get(text(hello.tunnelId));
    // Challenge even an unknown tunnel id, so the answer does not tell which ids exist before authentication.
    const nonce = randomHex(32);
    socket.write(encodeFrame({ type: 'challenge', nonce }));
    let auth: Frame;
    try {
      auth = await readFrame(socket, HANDSHAKE_TIMEOUT);
    } catch (err) {
      this.logger.debug(`handshake from ${address}: ${(err as Error).message}`);
      socket.destroy();
      return;
    }
    // The nonce lives only in this function: a recorded `auth` answers a nonce that is never issued again.
    const expected = tunnel ? challengeResponse(tunnel.secret, nonce, tunnel.id) : randomHex(32);
    if (auth.type !== 'auth' || typeof auth.mac !== 'string' || !sameHex(auth.mac, expected) || !tunnel) {
      return this.refuse(
        socket,
        address,
        'authentication failed (unknown tunnel or wrong secret; run connector configure)',
      );
    }
    if (tunnel.shutdown) return this.refuse(socket, address, `tunnel ${tunnel.id} was shut down by the hub admin`);
    if (this.stopping) return this.refuse(socket, address, 'hub stopping');
    this.sessions.get(tunnel.id)?.close('replaced by a new session');
    tunnel.name = text(hello.name) || tunnel.name;
    tunnel.hostname = text(hello.hostname);
    tunnel.version = text(hello.version, 64);
    tunnel.os = text(hello.os, 64);
    tunnel.arch = text(hello.arch, 64);
    tunnel.address = normalizeAddress(address);
    tunnel.lastActive = new Date().toISOString();
    const session = new Session(tunnel, socket, address, {
      pingInterval: this.pingInterval,
      logger: this.logger,
      onRequest: (s, r) => void this.onRequest(s, r),
      onRules: (s, ports) => this.onRules(s, ports),
      onSites: (s, sites) => this.onSites(s, sites),
      onClose: (s) => this.onSessionClose(s),
    });
    this.sessions.set(tunnel.id, session);
    this.sessionsById.set(session.id, session);
    session.send({
      type: 'welcome',
      sessionId: session.id,
      dataToken: session.dataToken,
      ports: tunnel.ports,
      pool: this.config.pool,
    });
    this.logger.info(`tunnel ${tunnel.id} (${tunnel.name}) online from ${address}, session ${session.id}`);
    this.store.saveLazily(1000);
    await this.syncListeners();
  }

  private async onData(socket: Duplex, frame: MessageOf<'data'>): Promise<void> {
    const session = this.sessionsById.get(text(frame.sessionId));
    if (!session || session.isClosed || typeof frame.token !== 'string' || !sameHex(frame.token, session.dataToken)) {
      socket.destroy();
      return;
    }
    const id = text(frame.id, 64);
    if (frame.role === 'inbound') {
      session.addData(id, socket);
      return;
    }
    // Outbound: a connection the connector keeps ready for its port mappings; it names its target when used.
    session.track(socket);
    let connect: Frame;
    try {
      connect = await readFrame(socket, 0);
    } catch {
      socket.destroy();
      return;
    }
    if (connect.type !== 'connect') {
      socket.destroy();
      return;
    }
    await this.routePortmap(session, socket, connect);
  }

  // --- control requests ---------------------------------------------------------------------------------------

  private async onRequest(session: Session, request: MessageOf<'request'>): Promise<void> {
    const reply = (m: Omit<MessageOf<'reply'>, 'type' | 'id'>) => session.send({ type: 'reply', id: request.id, ...m });
    try {
      if (request.op === 'allocate') {
        const port = await this.allocate(session.tunnel);
        reply({ ok: true, port, message: 'new port allocated' });
      } else if (request.op === 'release') {
        await this.release(session.tunnel, Number(request.port));
        reply({ ok: true, port: Number(request.port), message: 'port released' });
      } else reply({ ok: false, error: `unknown request "${String(request.op)}"` });
    } catch (err) {
      reply({ ok: false, error: (err as Error).message });
    }
  }

  /** The connector's forwarding rules (from its config): applied to the ports this tunnel holds. */
  private onRules(session: Session, ports: unknown[]): void {
    const rules: Port[] = [];
    for (const p of ports) {
      try {
        const rule = checkPort(p);
        if (this.registry.ports.owner(rule.port) === session.tunnel.id) rules.push(rule);
      } catch (err) {
        this.logger.warn(`tunnel ${session.tunnel.id}: ignored an invalid port rule: ${(err as Error).message}`);
      }
    }
    this.registry.updatePorts(session.tunnel, rules);
    void this.persistAndSync();
  }

  /**
   * The connector's sites: routed from now on and reserved for its tunnel, except domains another tunnel owns or
   * its token does not allow (refused).
   */
  private onSites(session: Session, sites: unknown[]): void {
    const tunnel = session.tunnel;
    const { refused, changed } = this.sites.claim(tunnel.id, sites, this.registry.domainPatterns(tunnel));
    this.siteClaims.set(session, { sites, refused });
    if (refused.length > 0) session.send({ type: 'sites-refused', refused });
    if (changed) this.store.save().catch(() => {});
  }

  /**
   * A domain the admin released goes to the first online tunnel whose sites name it (it was refused there), at once
   * rather than at that tunnel's next site change; the connector hears so (and may now order its certificate).
   */
  offerReleased(domain: string): void {
    for (const [session, { sites }] of this.siteClaims) {
      if (this.sites.lookup(domain) || this.sessions.get(session.tunnel.id) !== session) continue;
      const names = sites.map((s) => normalizeDomain(String((s as { domain?: unknown })?.domain ?? '')));
      if (!names.includes(domain)) continue;
      this.onSites(session, sites);
      if (this.sites.lookup(domain)?.tunnelId === session.tunnel.id) {
        session.send({ type: 'sites-accepted', domains: [domain] });
        this.logger.info(`domain ${domain} now served by tunnel ${session.tunnel.id}, which claimed it before`);
      }
    }
  }

  /** Listeners (and their firewalls) follow the rules at once; the state write follows. */
  private async persistAndSync(): Promise<void> {
    await this.syncListeners();
    await this.store.save().catch(() => {});
  }

  // --- operations shared by the control requests and the admin API -------------------------------------------

  async allocate(tunnel: StoredTunnel): Promise<number> {
    const port = await this.registry.allocate(tunnel);
    await this.store.save();
    return port;
  }

  async release(tunnel: StoredTunnel, port: number): Promise<void> {
    this.registry.release(tunnel, port);
    await this.syncListeners();
    await this.store.save();
  }

  /** Admin changes to the forwarding rules: applied here and pushed to the connector, whose config keeps them. */
  async updatePorts(tunnel: StoredTunnel, rules: Port[]): Promise<void> {
    const session = this.requireOnline(tunnel);
    this.registry.updatePorts(tunnel, rules);
    session.send({ type: 'ports', ports: tunnel.ports });
    await this.persistAndSync();
  }

  async updatePortmaps(tunnel: StoredTunnel, update: PortMapRule[], remove: number[]): Promise<void> {
    this.requireOnline(tunnel).send({ type: 'portmaps', update, remove });
  }

  /** Admin changes to a tunnel's sites: validated here, applied and saved by the connector, which claims them. */
  async updateSites(tunnel: StoredTunnel, update: unknown[], remove: string[]): Promise<void> {
    this.requireOnline(tunnel).send({ type: 'https', update, remove });
  }

  requireOnline(tunnel: StoredTunnel): Session {
    const session = this.sessions.get(tunnel.id);
    if (!session) {
      throw new TunnelOfflineError(
        `tunnel ${tunnel.id} is offline; its traffic rules live in the connector's config and change only while it is connected`,
      );
    }
    return session;
  }

  /** Ends the tunnel's session and refuses new ones until it is configured again. */
  async shutdown(tunnel: StoredTunnel): Promise<void> {
    tunnel.shutdown = true;
    const session = this.sessions.get(tunnel.id);
    session?.send({ type: 'shutdown', reason: 'shut down by the hub admin' });
    session?.close('shut down by the hub admin');
    await this.store.save();
  }

  private onSessionClose(session: Session): void {
    this.sessionsById.delete(session.id);
    this.siteClaims.delete(session);
    if (this.sessions.get(session.tunnel.id) === session) {
      this.sessions.delete(session.tunnel.id);
      this.sites.unroute(session.tunnel.id);
      session.tunnel.lastActive = new Date().toISOString();
      this.store.saveLazily(1000);
      if (!this.stopping) void this.syncListeners();
    }
  }

  // --- public port listeners ----------------------------------------------------------------------------------

  /**
   * A public listener exists exactly for each port whose tunnel is online and has a forwarding rule: a cleared
   * rule or an offline tunnel means connection refused, not an accepted connection that goes nowhere.
   */
  async syncListeners(): Promise<void> {
    if (this.stopping) return;
    const wanted = new Map<number, Port>();
    for (const session of this.sessions.values()) {
      for (const p of session.tunnel.ports) if (p.destination !== '' && p.dstPort > 0) wanted.set(p.port, p);
    }
    for (const [port] of this.listeners) if (!wanted.has(port)) this.closeListener(port);
    // Firewall changes of open listeners first, in this tick: they must not wait behind a new listener's bind.
    const toOpen: Array<[number, Port, string]> = [];
    for (const [port, rule] of wanted) {
      const key = JSON.stringify(rule.firewall ?? []);
      const current = this.listeners.get(port);
      if (!current) toOpen.push([port, rule, key]);
      else if (current.key !== key) {
        current.firewall = new Firewall(rule.firewall);
        current.key = key;
      }
    }
    for (const [port, rule, key] of toOpen) await this.openListener(port, rule, key);
  }

  private async openListener(port: number, rule: Port, key: string): Promise<void> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) =>
      this.onPublicConnection(port, socket),
    );
    const entry: PortListener = { server, firewall: new Firewall(rule.firewall), key };
    this.listeners.set(port, entry);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port, host: this.config.publicBind || undefined }, () => {
          server.removeListener('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => this.logger.error(`port ${port}: ${err.message}`));
      this.logger.info(`port ${port} listening for tunnel ${this.registry.ports.owner(port)}`);
    } catch (err) {
      this.listeners.delete(port);
      this.logger.error(`port ${port} cannot listen: ${(err as Error).message}`);
    }
  }

  private closeListener(port: number): void {
    const entry = this.listeners.get(port);
    if (!entry) return;
    this.listeners.delete(port);
    entry.server.close();
    this.logger.info(`port ${port} closed`);
  }

  private onPublicConnection(port: number, socket: Socket): void {
    socket.on('error', () => {});
    const address = socket.remoteAddress ?? '';
    const entry = this.listeners.get(port);
    if (!entry || !entry.firewall.allows(address)) {
      this.logger.debug(`port ${port}: firewall dropped ${address}`);
      socket.resetAndDestroy();
      return;
    }
    const owner = this.registry.ports.owner(port);
    const session = owner ? this.sessions.get(owner) : undefined;
    if (!session) {
      socket.destroy();
      return;
    }
    session.openStream('tcp', port, 'tcp', { address: normalizeAddress(address), port: socket.remotePort ?? 0 }).then(
      (stream) => this.relay(socket, stream, [session.tunnel]),
      (err: Error) => {
        this.logger.warn(`port ${port}: no stream to tunnel ${session.tunnel.id}: ${err.message}`);
        socket.destroy();
      },
    );
  }

  /** `counted`: bytes already forwarded outside the relay (a site's routing head), added to the bandwidth. */
  private relay(user: Duplex, target: Duplex, tunnels: StoredTunnel[], counted = 0): void {
    const flow = this.flowFor(tunnels);
    if (counted > 0) flow.count(counted);
    const relay = new Relay(user, target, { up: flow, down: flow, idleTimeout: 0 });
    relay.startUp();
    relay.startDown();
  }

  private flowFor(tunnels: StoredTunnel[]): Flow {
    const flows = tunnels.map((t) => this.registry.bandwidthFlow(t, () => this.store.saveLazily(30_000)));
    return flows.length === 1
      ? (flows[0] as Flow)
      : {
          bucket: undefined,
          count: (n) => {
            for (const f of flows) f.count(n);
          },
        };
  }

  // --- port mappings ------------------------------------------------------------------------------------------

  private async routePortmap(from: Session, stream: Duplex, request: MessageOf<'connect'>): Promise<void> {
    const dstPort = Number(request.dstPort);
    const destination = text(request.destination).trim();
    const transport = request.transport === 'udp' ? 'udp' : 'tcp';
    const fail = (why: string) => {
      this.logger.warn(`portmap from tunnel ${from.tunnel.id} to ${destination || 'port'} ${dstPort}: ${why}`);
      stream.destroy();
    };
    if (!Number.isInteger(dstPort) || dstPort < 1 || dstPort > 65535) return fail('bad port');
    if (destination === '') {
      const owner = this.registry.ports.owner(dstPort);
      const tunnel = owner ? this.registry.tunnels.get(owner) : undefined;
      const rule = tunnel?.ports.find((p) => p.port === dstPort);
      if (!tunnel || !rule) return fail('the port is not allocated on this hub');
      if (rule.destination === '') return fail('the port has no forwarding rule');
      if (!new Firewall(rule.firewall).allows(from.tunnel.address)) return fail('firewall of the port');
      const session = this.sessions.get(tunnel.id);
      if (!session) return fail(`tunnel ${tunnel.id} is offline`);
      try {
        const target = await session.openStream('portmap', dstPort, transport, {
          address: from.tunnel.address,
          port: 0,
        });
        this.relay(stream, target, tunnel === from.tunnel ? [tunnel] : [from.tunnel, tunnel]);
      } catch (err) {
        fail((err as Error).message);
      }
      return;
    }
    if (!this.policy.allows(destination, dstPort)) return fail('destination not allowed by the hub policy');
    if (transport === 'tcp') {
      const target = connect({ host: destination, port: dstPort, allowHalfOpen: true });
      target.once('error', (err) => fail(err.message));
      target.once('connect', () => this.relay(stream, target, [from.tunnel]));
      return;
    }
    const udp = createSocket(isIP(destination) === 6 ? 'udp6' : 'udp4');
    const flow = this.flowFor([from.tunnel]);
    udp.once('error', (err) => {
      fail(err.message);
      udp.close();
    });
    udp.connect(dstPort, destination, () => {
      // The stream stays paused until now, so no datagram is lost while the UDP socket connects.
      const datagrams = new DatagramStream(stream, UDP_IDLE);
      datagrams.onDatagram = (d) => {
        flow.count(d.length);
        udp.send(d);
      };
      udp.on('message', (d) => {
        flow.count(d.length);
        datagrams.send(d);
      });
      stream.once('close', () => udp.close());
    });
  }

  // --- views ---------------------------------------------------------------------------------------------------

  tunnelView(t: StoredTunnel) {
    const session = this.sessions.get(t.id);
    const state = t.shutdown ? 4 : session ? 2 : 3;
    return {
      id: t.id,
      name: t.name,
      hostname: t.hostname,
      state,
      created: t.created,
      lastActive: session ? new Date().toISOString() : t.lastActive,
      uptime: session ? Math.floor((Date.now() - session.startedAt) / 1000) : 0,
      bandwidth: { daily: t.bandwidth.daily, monthly: t.bandwidth.monthly },
      address: t.address,
      version: t.version,
      os: t.os,
      arch: t.arch,
      https: this.siteStates(t),
      ports: t.ports,
      rtt: session ? session.rtt : -1,
      streams: session ? session.activeStreams : 0,
    };
  }

  /**
   * The tunnel's domains as the hub sees them: routed here, reserved for it (offline, or no longer served), or
   * claimed by its connector and refused (with the reason).
   */
  siteStates(t: StoredTunnel): Array<{ domain: string; state: 'routed' | 'reserved' | 'refused'; error?: string }> {
    const states: Array<{ domain: string; state: 'routed' | 'reserved' | 'refused'; error?: string }> = [];
    for (const r of this.sites.reservations()) {
      if (r.tunnelId !== t.id) continue;
      states.push({ domain: r.domain, state: this.sites.lookup(r.domain)?.tunnelId === t.id ? 'routed' : 'reserved' });
    }
    const session = this.sessions.get(t.id);
    for (const r of (session && this.siteClaims.get(session)?.refused) || []) {
      states.push({ domain: r.domain, state: 'refused', error: r.error });
    }
    return states;
  }

  /** The sites the tunnel's connector claimed last (domain and firewall), or its reserved domains while offline. */
  siteClaimsOf(t: StoredTunnel): unknown[] {
    const session = this.sessions.get(t.id);
    const claims = session && this.siteClaims.get(session);
    if (claims) return claims.sites;
    return this.sites
      .reservations()
      .filter((r) => r.tunnelId === t.id)
      .map((r) => ({ domain: r.domain }));
  }

  describeTunnelListen(): string {
    return formatEndpoint({ host: this.config.tunnelListen.host || '0.0.0.0', port: this.tunnelPort });
  }
}

import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../common/logger.js';
import type { MessageOf, PortRule } from '../hub/protocol.js';
import { checkHttp, checkPort, checkPortMap, type Http, type PortMap, RuleError } from '../hub/rules.js';
import { AcmeCertificates } from './acme-certificates.js';
import { AcmeIssuer, LETS_ENCRYPT_DIRECTORY } from './acme-issuer.js';
import { AcmeStore } from './acme-store.js';
import { acmeStateDir, type ConnectorConfig, saveConfig } from './config.js';
import { ListenError, NotConnectedError, PortNotOwnedError, RuleConflictError, RuleNotFoundError } from './errors.js';
import { HubDialer } from './hub-dialer.js';
import { SessionKeeper } from './keeper.js';
import { PortmapListeners } from './portmaps.js';
import type { HubSession } from './session.js';
import type { CertificateStatus } from './site-tls.js';
import { SiteStreams } from './sites.js';
import { type StreamCounters, serveStream } from './streams.js';

/** The body of traffic/create, traffic/update and traffic/delete. */
export interface TrafficBody {
  https?: unknown[];
  ports?: unknown[];
  portmaps?: unknown[];
}

export interface HealthService {
  flowID: number;
  available: boolean;
  type: 'http' | 'port';
  domain?: string;
  port?: number;
  destination: string;
  error?: string;
  /** A secure site's certificate: where it comes from and, for Let's Encrypt, its state. */
  certificate?: CertificateStatus;
}

const PROBE_TIMEOUT = 3000;

/** A stable id per rule (the seed's `flowID`), kept within JSON's exact integer range. */
export function flowId(key: string): number {
  return createHash('sha256').update(key).digest().readUIntBE(0, 6);
}

function probeTcp(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(`no answer within ${PROBE_TIMEOUT}ms`);
    }, PROBE_TIMEOUT);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(undefined);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      resolve(err.message);
    });
  });
}

function arrayField(body: TrafficBody, field: keyof TrafficBody): unknown[] {
  const value = body[field];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new RuleError(`${field} must be an array`);
  return value;
}

/** The identifying key of a rule for traffic/delete: only it is needed. */
function keyOf(field: 'https' | 'ports' | 'portmaps', item: unknown): string | number {
  const o = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
  if (field === 'https') {
    if (typeof o.domain !== 'string' || o.domain === '') throw new RuleError('https: each entry needs its domain');
    return o.domain.toLowerCase();
  }
  const port = field === 'portmaps' ? (o.port ?? o.listenPort) : o.port;
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) {
    throw new RuleError(`${field}: each entry needs its port (1-65535)`);
  }
  return port as number;
}

/**
 * The connector: its config (rules, persisted atomically on every change), the session with the hub, the streams
 * the hub opens to it, and the port-mapping listeners. Rule changes apply live and all-or-nothing.
 */
export class Connector {
  readonly keeper: SessionKeeper;
  readonly portmaps: PortmapListeners;
  readonly sites: SiteStreams;
  readonly counters: StreamCounters = { tcpStreams: 0, udpStreams: 0, httpStreams: 0, bytesIn: 0, bytesOut: 0 };
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly config: ConnectorConfig,
    readonly path: string,
    readonly logger: Logger,
    /** Where ACME state is cached (default: `acme/` beside the config file). */
    acmeDir = acmeStateDir(path),
  ) {
    const dialer = new HubDialer(config.hub, config);
    this.portmaps = new PortmapListeners(() => this.keeper.session, logger);
    const directoryUrl = process.env.PORTHOLE_ACME_DIRECTORY || config.acme?.directoryUrl || LETS_ENCRYPT_DIRECTORY;
    const acmeStore = new AcmeStore(acmeDir, directoryUrl);
    const acme = new AcmeCertificates(
      new AcmeIssuer(directoryUrl, config.acme?.email, acmeStore, logger),
      acmeStore,
      logger,
    );
    this.sites = new SiteStreams(() => this.config.https, logger, config.secret, acme, this.counters);
    this.keeper = new SessionKeeper(
      dialer,
      { tunnelId: config.tunnelId, secret: config.secret, name: config.name },
      config.reconnect,
      {
        onPorts: (ports, atWelcome) => this.onHubPorts(ports, atWelcome),
        onPortmaps: (m) => void this.serial(() => this.onHubPortmaps(m)).catch(() => {}),
        onSites: (m) => void this.serial(() => this.onHubSites(m)).catch(() => {}),
        onStream: (open, socket) => this.onStream(open, socket),
        sites: () => this.siteClaims(),
        // No certificate order for a domain the hub will not route to us: it could only fail at the CA.
        onSitesRefused: (domains) => this.sites.certificates.acme.refused(domains),
        onSitesAccepted: (domains) => this.sites.certificates.accepted(domains, this.config.https),
      },
      logger,
    );
    this.keeper.onConnected = (session) => {
      if (this.portmaps.size > 0) session.enableOutbound();
      // Certificates are ordered once the hub routes our domains, so the CA's challenge request reaches us.
      this.sites.certificates.sync(this.config.https);
    };
  }

  get session(): HubSession | undefined {
    return this.keeper.session;
  }

  /** Opens the port-mapping listeners and starts session maintenance. */
  async start(): Promise<void> {
    for (const rule of this.config.portmaps) {
      try {
        await this.portmaps.start(rule);
      } catch (err) {
        this.logger.error(`portmap ${rule.port}: cannot listen: ${(err as Error).message}`);
      }
    }
    this.keeper.start();
  }

  stop(): void {
    this.keeper.stop();
    this.portmaps.stopAll();
    this.sites.proxy.close();
    this.sites.certificates.acme.stop();
  }

  /** Runs config mutations one at a time, so concurrent API calls cannot interleave their writes. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }

  private async persist(): Promise<void> {
    await saveConfig(this.path, this.config);
    this.session?.sendRules(this.config.ports);
    this.session?.sendSites(this.siteClaims());
    if (this.session && !this.session.isClosed) this.sites.certificates.sync(this.config.https);
  }

  /** What the hub needs of our sites to route to us: the domain and its firewall. */
  private siteClaims() {
    return this.config.https.map((h) => ({
      domain: h.domain,
      ...(h.firewall?.length ? { firewall: h.firewall } : {}),
    }));
  }

  // --- from the hub ---------------------------------------------------------------------------------------------

  private onHubPorts(hubPorts: PortRule[], atWelcome: boolean): PortRule[] | undefined {
    const normalized: PortRule[] = [];
    for (const p of hubPorts) {
      try {
        normalized.push(checkPort(p));
      } catch (err) {
        this.logger.warn(`hub sent an invalid port rule: ${(err as Error).message}`);
      }
    }
    let next: PortRule[];
    if (atWelcome) {
      // The hub decides which ports this tunnel holds; this config decides their forwarding rules.
      next = normalized.map((hp) => this.config.ports.find((p) => p.port === hp.port) ?? hp);
      for (const p of this.config.ports) {
        if (!next.some((n) => n.port === p.port))
          this.logger.warn(`port ${p.port} is no longer held on the hub; dropped`);
      }
    } else next = normalized;
    const changed = JSON.stringify(next) !== JSON.stringify(this.config.ports);
    this.config.ports = next;
    if (changed) {
      void this.serial(() => saveConfig(this.path, this.config)).catch((err: Error) =>
        this.logger.error(`saving ${this.path}: ${err.message}`),
      );
    }
    return atWelcome ? next : undefined;
  }

  private async onHubPortmaps(message: MessageOf<'portmaps'>): Promise<void> {
    try {
      const updates = (Array.isArray(message.update) ? message.update : []).map(checkPortMap);
      const removals = Array.isArray(message.remove) ? message.remove.filter((p) => Number.isInteger(p)) : [];
      for (const port of removals) {
        this.portmaps.stop(port);
        this.config.portmaps = this.config.portmaps.filter((m) => m.port !== port);
      }
      for (const rule of updates) {
        await this.portmaps.start(rule);
        this.config.portmaps = [...this.config.portmaps.filter((m) => m.port !== rule.port), rule];
      }
      await saveConfig(this.path, this.config);
      this.logger.info(`port mappings changed by the hub admin (${updates.length} set, ${removals.length} removed)`);
    } catch (err) {
      this.logger.error(`port mappings from the hub admin not applied: ${(err as Error).message}`);
    }
  }

  /** Site changes from the hub admin: all or nothing, saved, then claimed at the hub. */
  private async onHubSites(message: MessageOf<'https'>): Promise<void> {
    try {
      const updates = (Array.isArray(message.update) ? message.update : []).map(checkHttp);
      const removals = (Array.isArray(message.remove) ? message.remove : []).map((d) => String(d).toLowerCase());
      const kept = this.config.https.filter(
        (h) =>
          !removals.includes(h.domain.toLowerCase()) &&
          !updates.some((u) => u.domain.toLowerCase() === h.domain.toLowerCase()),
      );
      this.config.https = [...kept, ...updates];
      await this.persist();
      this.logger.info(`sites changed by the hub admin (${updates.length} set, ${removals.length} removed)`);
    } catch (err) {
      this.logger.error(`sites from the hub admin not applied: ${(err as Error).message}`);
    }
  }

  private onStream(open: MessageOf<'open'>, socket: Duplex): void {
    if (open.kind === 'http' || open.kind === 'https-sni') {
      this.sites.serve(open, socket);
      return;
    }
    const port = Number(open.port);
    serveStream(
      open,
      socket,
      this.config.ports.find((p) => p.port === port),
      this.counters,
      this.logger,
    );
  }

  // --- rule changes (admin API and CLI) -------------------------------------------------------------------------

  private owned(port: number): PortRule {
    const rule = this.config.ports.find((p) => p.port === port);
    if (!rule) {
      throw new PortNotOwnedError(`port ${port} is not allocated to this tunnel (allocate it first: ports/allocate)`);
    }
    return rule;
  }

  private static unique<T>(items: T[], key: (t: T) => string | number, what: string): void {
    const seen = new Set<string | number>();
    for (const item of items) {
      const k = key(item);
      if (seen.has(k)) throw new RuleConflictError(`${what} ${k} appears twice in the request`);
      seen.add(k);
    }
  }

  private parse(body: TrafficBody): { https: Http[]; ports: PortRule[]; portmaps: PortMap[] } {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new RuleError('the body must be an object with https, ports and/or portmaps arrays');
    }
    const https = arrayField(body, 'https').map(checkHttp);
    const ports = arrayField(body, 'ports').map(checkPort);
    const portmaps = arrayField(body, 'portmaps').map(checkPortMap);
    Connector.unique(https, (h) => h.domain.toLowerCase(), 'domain');
    Connector.unique(ports, (p) => p.port, 'port');
    Connector.unique(portmaps, (m) => m.port, 'portmap port');
    return { https, ports, portmaps };
  }

  /** Binds the listeners of `maps`; on any failure closes the ones it opened and throws. */
  private async bindAll(maps: PortMap[], previous: PortMap[]): Promise<void> {
    const started: PortMap[] = [];
    try {
      for (const rule of maps) {
        await this.portmaps.start(rule);
        started.push(rule);
      }
    } catch (err) {
      for (const rule of started) this.portmaps.stop(rule.port);
      // Updates replaced a running listener: bring the previous one back.
      for (const rule of previous) await this.portmaps.start(rule).catch(() => {});
      throw new ListenError(`port mapping listener: ${(err as Error).message}`);
    }
  }

  create(body: TrafficBody): Promise<void> {
    return this.serial(async () => {
      const { https, ports, portmaps } = this.parse(body);
      for (const site of https) {
        if (this.config.https.some((h) => h.domain.toLowerCase() === site.domain.toLowerCase())) {
          throw new RuleConflictError(`site ${site.domain} already exists (use traffic/update)`);
        }
      }
      for (const rule of ports) {
        const current = this.owned(rule.port);
        if (current.destination !== '') {
          throw new RuleConflictError(`port ${rule.port} already has a forwarding rule (use traffic/update)`);
        }
      }
      for (const map of portmaps) {
        if (this.config.portmaps.some((m) => m.port === map.port)) {
          throw new RuleConflictError(`port mapping on local port ${map.port} already exists (use traffic/update)`);
        }
      }
      await this.bindAll(portmaps, []);
      this.config.https.push(...https);
      this.config.ports = this.config.ports.map((p) => ports.find((r) => r.port === p.port) ?? p);
      this.config.portmaps.push(...portmaps);
      await this.persist();
    });
  }

  update(body: TrafficBody): Promise<void> {
    return this.serial(async () => {
      const { https, ports, portmaps } = this.parse(body);
      for (const site of https) {
        if (!this.config.https.some((h) => h.domain.toLowerCase() === site.domain.toLowerCase())) {
          throw new RuleNotFoundError(`no site ${site.domain} (use traffic/create)`);
        }
      }
      for (const rule of ports) this.owned(rule.port);
      const previous: PortMap[] = [];
      for (const map of portmaps) {
        const old = this.config.portmaps.find((m) => m.port === map.port);
        if (!old) throw new RuleNotFoundError(`no port mapping on local port ${map.port} (use traffic/create)`);
        previous.push(old);
      }
      await this.bindAll(portmaps, previous);
      this.config.https = this.config.https.map(
        (h) => https.find((s) => s.domain.toLowerCase() === h.domain.toLowerCase()) ?? h,
      );
      this.config.ports = this.config.ports.map((p) => ports.find((r) => r.port === p.port) ?? p);
      this.config.portmaps = this.config.portmaps.map((m) => portmaps.find((r) => r.port === m.port) ?? m);
      await this.persist();
    });
  }

  /** Sites and mappings are removed; port rules are reset (the port stays allocated). */
  delete(body: TrafficBody): Promise<void> {
    return this.serial(async () => {
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new RuleError('the body must be an object with https, ports and/or portmaps arrays');
      }
      const domains = arrayField(body, 'https').map((i) => keyOf('https', i) as string);
      const ports = arrayField(body, 'ports').map((i) => keyOf('ports', i) as number);
      const maps = arrayField(body, 'portmaps').map((i) => keyOf('portmaps', i) as number);
      for (const d of domains) {
        if (!this.config.https.some((h) => h.domain.toLowerCase() === d)) throw new RuleNotFoundError(`no site ${d}`);
      }
      for (const p of ports) this.owned(p);
      for (const p of maps) {
        if (!this.config.portmaps.some((m) => m.port === p)) throw new RuleNotFoundError(`no port mapping on ${p}`);
      }
      this.config.https = this.config.https.filter((h) => !domains.includes(h.domain.toLowerCase()));
      this.config.ports = this.config.ports.map((p) =>
        ports.includes(p.port) ? { port: p.port, destination: '', dstPort: 0 } : p,
      );
      for (const p of maps) this.portmaps.stop(p);
      this.config.portmaps = this.config.portmaps.filter((m) => !maps.includes(m.port));
      await this.persist();
    });
  }

  private live(): HubSession {
    const session = this.session;
    if (!session || session.isClosed) throw new NotConnectedError('the tunnel is not connected to the hub');
    return session;
  }

  allocate(): Promise<{ port: number; message: string }> {
    return this.serial(async () => {
      const reply = await this.live().request('allocate');
      if (!reply.ok || typeof reply.port !== 'number') throw new NotConnectedError(reply.error ?? 'allocation failed');
      if (!this.config.ports.some((p) => p.port === reply.port)) {
        this.config.ports.push({ port: reply.port, destination: '', dstPort: 0 });
        this.config.ports.sort((a, b) => a.port - b.port);
      }
      await saveConfig(this.path, this.config);
      return { port: reply.port, message: reply.message ?? 'new port allocated' };
    });
  }

  release(port: number): Promise<void> {
    return this.serial(async () => {
      this.owned(port);
      const reply = await this.live().request('release', port);
      if (!reply.ok) throw new RuleNotFoundError(reply.error ?? 'release failed');
      this.config.ports = this.config.ports.filter((p) => p.port !== port);
      await saveConfig(this.path, this.config);
    });
  }

  /** Per rule: can its destination be reached (TCP connect), or its webRoot read. Port mappings are not probed. */
  async health(): Promise<HealthService[]> {
    const checks: Array<Promise<HealthService>> = [];
    for (const site of this.config.https) {
      checks.push(
        (async () => {
          let destination =
            site.upstreamURL || (site.destination ? `${site.destination}:${site.port || site.tls}` : '');
          let error: string | undefined;
          if (site.webRoot) {
            destination = site.webRoot;
            error = await access(site.webRoot, constants.R_OK | constants.X_OK).then(
              () => undefined,
              (e: Error) => e.message,
            );
          } else if (site.upstreamURL) {
            const u = new URL(site.upstreamURL);
            error = await probeTcp(
              u.hostname.replace(/^\[|\]$/g, ''),
              Number(u.port) || (u.protocol === 'https:' ? 443 : 80),
            );
          } else if (site.destination) {
            error = await probeTcp(site.destination, (site.port || site.tls) as number);
          }
          const certificate = this.sites.certificates.status(site);
          return {
            flowID: flowId(`http:${site.domain}`),
            available: error === undefined,
            type: 'http' as const,
            domain: site.domain,
            destination,
            ...(error ? { error } : {}),
            ...(certificate ? { certificate } : {}),
          };
        })(),
      );
    }
    for (const rule of this.config.ports) {
      if (rule.destination === '') continue;
      checks.push(
        probeTcp(rule.destination, rule.dstPort).then((error) => ({
          flowID: flowId(`port:${rule.port}`),
          available: error === undefined,
          type: 'port' as const,
          port: rule.port,
          destination: `${rule.destination}:${rule.dstPort}`,
          ...(error ? { error } : {}),
        })),
      );
    }
    return Promise.all(checks);
  }
}

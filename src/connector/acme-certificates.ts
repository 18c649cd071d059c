import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from '../common/logger.js';
import type { AcmeIssuer } from './acme-issuer.js';
import type { AcmeStore, IssuedCertificate } from './acme-store.js';

const DAY = 24 * 3600 * 1000;
/** setTimeout's limit (~24.8 days): longer waits are chained. */
const MAX_TIMER = 2 ** 31 - 1;

export interface AcmeTiming {
  /**
   * Wait between claiming a site at the hub and ordering its certificate: a refusal from the hub (the domain is
   * another tunnel's) arrives within it and cancels the order, which could only fail validation at the CA.
   */
  startDelay: number;
  /** First retry after a failed issuance; doubles per failure up to `maxRetry`. */
  firstRetry: number;
  maxRetry: number;
}

export const ACME_TIMING: AcmeTiming = { startDelay: 2000, firstRetry: 60_000, maxRetry: 6 * 3600 * 1000 };

/**
 * When to renew: 30 days before expiry, or at two thirds of the lifetime for shorter-lived certificates
 * (Let's Encrypt's 90 days renew at day 60).
 */
export function renewalTime(cert: { notBefore: Date; notAfter: Date }): number {
  const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
  return cert.notAfter.getTime() - Math.min(30 * DAY, lifetime / 3);
}

interface DomainState {
  current: { issued: IssuedCertificate; context: SecureContext } | undefined;
  timer: NodeJS.Timeout | undefined;
  /** When the timer fires (renewal or retry). */
  next: Date | undefined;
  failures: number;
  lastError: string | undefined;
}

/** What the health API shows of a domain's Let's Encrypt certificate. */
export interface AcmeStatus {
  /**
   * valid: serving it; pending: first order running; failed: none yet, retrying (the site serves self-signed);
   * refused: the hub does not route the domain to this tunnel, so nothing is ordered.
   */
  state: 'valid' | 'pending' | 'failed' | 'refused';
  notAfter?: string;
  /** The next renewal or retry. */
  next?: string;
  /** The last failure, until an order succeeds. */
  error?: string;
}

/**
 * The Let's Encrypt certificates of this connector's `useLetsEnc` sites: loaded from the cache or issued at site
 * start (in the background, one domain never waiting for another), renewed before expiry, retried with backoff.
 * Until a domain has its certificate `context()` is undefined and the site serves a self-signed one; a new
 * certificate replaces the context for the next TLS connection, no listener restarts.
 */
export class AcmeCertificates {
  private readonly domains = new Map<string, DomainState>();
  /** Domains the hub refused at the last claim; cleared when they are claimed again. */
  private readonly refusedDomains = new Set<string>();

  constructor(
    private readonly issuer: AcmeIssuer,
    private readonly store: AcmeStore,
    private readonly logger: Logger,
    private readonly timing: AcmeTiming = ACME_TIMING,
  ) {}

  context(domain: string): SecureContext | undefined {
    return this.domains.get(domain.toLowerCase())?.current?.context;
  }

  challengeResponse(domain: string, token: string): string | undefined {
    return this.issuer.challengeResponse(domain, token);
  }

  status(domain: string): AcmeStatus | undefined {
    const state = this.domains.get(domain.toLowerCase());
    if (!state) {
      return this.refusedDomains.has(domain.toLowerCase())
        ? { state: 'refused', error: 'the hub does not route this domain to this tunnel (see the connector log)' }
        : undefined;
    }
    return {
      state: state.current ? 'valid' : state.lastError ? 'failed' : 'pending',
      ...(state.current ? { notAfter: state.current.issued.notAfter.toISOString() } : {}),
      ...(state.next ? { next: state.next.toISOString() } : {}),
      ...(state.lastError ? { error: state.lastError } : {}),
    };
  }

  /** Starts managing each of `wanted` not managed yet, stops managing the others (their files stay cached). */
  sync(wanted: string[]): void {
    const names = new Set(wanted.map((d) => d.toLowerCase()));
    for (const [domain, state] of this.domains) {
      if (names.has(domain)) continue;
      if (state.timer) clearTimeout(state.timer);
      this.domains.delete(domain);
    }
    for (const domain of names) if (!this.domains.has(domain)) this.manage(domain);
  }

  /** Domains the hub refused and now routes to us after all: managed from now on. */
  accepted(domains: string[]): void {
    for (const name of domains) {
      const domain = name.toLowerCase();
      if (this.refusedDomains.has(domain) && !this.domains.has(domain)) this.manage(domain);
    }
  }

  private manage(domain: string): void {
    this.refusedDomains.delete(domain);
    const state: DomainState = {
      current: undefined,
      timer: undefined,
      next: undefined,
      failures: 0,
      lastError: undefined,
    };
    this.domains.set(domain, state);
    void this.start(domain, state).catch((err: Error) => this.logger.error(`site ${domain}: ${err.message}`));
  }

  /**
   * The hub refused to route these domains to us: stop managing them (no order, no retry). The next claim of the
   * sites (a rule change or a reconnect) starts over, with the start delay again.
   */
  refused(domains: string[]): void {
    for (const name of domains) {
      const domain = name.toLowerCase();
      const state = this.domains.get(domain);
      if (!state) continue;
      if (state.timer) clearTimeout(state.timer);
      this.domains.delete(domain);
      this.refusedDomains.add(domain);
      this.logger.warn(
        `site ${domain}: no Let's Encrypt certificate ordered: the hub does not route the domain to this tunnel`,
      );
    }
  }

  stop(): void {
    for (const state of this.domains.values()) if (state.timer) clearTimeout(state.timer);
    this.domains.clear();
  }

  private async start(domain: string, state: DomainState): Promise<void> {
    try {
      const cached = await this.store.loadCertificate(domain);
      if (cached && cached.notAfter.getTime() > Date.now()) {
        this.install(state, cached);
        this.logger.info(
          `site ${domain}: using the cached Let's Encrypt certificate (valid until ${cached.notAfter.toISOString()})`,
        );
        this.schedule(domain, state, renewalTime(cached) - Date.now(), 'renewal');
        return;
      }
      if (cached)
        this.logger.info(`site ${domain}: the cached certificate expired on ${cached.notAfter.toISOString()}`);
    } catch (err) {
      this.logger.warn(`site ${domain}: ignoring the cached certificate: ${(err as Error).message}`);
    }
    this.logger.info(
      `site ${domain}: requesting a certificate from ${this.issuer.directoryUrl}; serving a self-signed one until it arrives`,
    );
    await new Promise((resolve) => setTimeout(resolve, this.timing.startDelay).unref());
    // Refused by the hub, removed, or the connector stopped meanwhile.
    if (this.domains.get(domain) !== state) return;
    await this.issue(domain, state);
  }

  private install(state: DomainState, issued: IssuedCertificate): void {
    state.current = { issued, context: createSecureContext({ cert: issued.cert, key: issued.key }) };
  }

  private async issue(domain: string, state: DomainState): Promise<void> {
    let issued: IssuedCertificate;
    try {
      issued = await this.issuer.issue(domain);
    } catch (err) {
      if (this.domains.get(domain) !== state) return;
      state.failures++;
      state.lastError = (err as Error).message;
      const delay = Math.min(this.timing.firstRetry * 2 ** (state.failures - 1), this.timing.maxRetry);
      this.logger.error(
        `site ${domain}: Let's Encrypt certificate not obtained (attempt ${state.failures}): ${(err as Error).message}; ` +
          `${state.current ? 'keeping the current certificate' : 'still serving a self-signed certificate'}, retrying in ${Math.round(delay / 1000)}s`,
      );
      this.schedule(domain, state, delay, 'retry');
      return;
    }
    // The site may have been removed (or re-added, a new state) while the order ran: its result is not ours to install.
    if (this.domains.get(domain) !== state) return;
    state.failures = 0;
    state.lastError = undefined;
    try {
      await this.store.saveCertificate(domain, issued);
    } catch (err) {
      this.logger.error(
        `site ${domain}: caching the certificate failed (${(err as Error).message}); serving it anyway`,
      );
    }
    const renewed = state.current !== undefined;
    this.install(state, issued);
    this.logger.info(
      `site ${domain}: ${renewed ? 'renewed' : 'obtained'} the Let's Encrypt certificate (valid until ${issued.notAfter.toISOString()}); serving it now`,
    );
    this.schedule(domain, state, renewalTime(issued) - Date.now(), 'renewal');
  }

  private schedule(domain: string, state: DomainState, delay: number, what: 'renewal' | 'retry'): void {
    if (state.timer) clearTimeout(state.timer);
    const wait = Math.max(0, delay);
    state.next = new Date(Date.now() + wait);
    if (what === 'renewal') {
      this.logger.debug(`site ${domain}: certificate renewal at ${new Date(Date.now() + wait).toISOString()}`);
    }
    state.timer = setTimeout(
      () => {
        state.timer = undefined;
        if (this.domains.get(domain) !== state) return;
        if (wait <= MAX_TIMER) state.next = undefined;
        if (wait > MAX_TIMER) {
          this.schedule(domain, state, wait - MAX_TIMER, what);
          return;
        }
        if (what === 'renewal') this.logger.info(`site ${domain}: renewing the Let's Encrypt certificate`);
        void this.issue(domain, state).catch((err: Error) => this.logger.error(`site ${domain}: ${err.message}`));
      },
      Math.min(wait, MAX_TIMER),
    );
    state.timer.unref();
  }
}

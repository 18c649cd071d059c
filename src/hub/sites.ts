import type { Logger } from '../common/logger.js';
import { Firewall } from './firewall.js';
import type { SiteClaim } from './protocol.js';
import { checkFirewall, isHost } from './rules.js';

export interface SiteRoute {
  domain: string;
  tunnelId: string;
  firewall: Firewall;
}

/**
 * Which tunnel serves which domain (Host / SNI name), for the hub's HTTP and HTTPS listeners. A domain belongs to
 * one tunnel: while its tunnel is online another tunnel's claim of it is refused. Claims live with the session (the
 * connector's config is authoritative for its sites and sends them again after every welcome).
 */
export class SiteTable {
  private readonly routes = new Map<string, SiteRoute>();

  constructor(private readonly logger: Logger) {}

  /** Replaces the sites of `tunnelId` with `claims`; returns the refused ones with the reason. */
  claim(tunnelId: string, claims: unknown[]): Array<{ domain: string; error: string }> {
    const refused: Array<{ domain: string; error: string }> = [];
    const wanted = new Map<string, SiteRoute>();
    for (const raw of claims) {
      const claim = (typeof raw === 'object' && raw !== null ? raw : {}) as Partial<SiteClaim>;
      const domain = typeof claim.domain === 'string' ? normalizeDomain(claim.domain) : '';
      if (domain === '' || !isHost(domain)) {
        refused.push({ domain: String(claim.domain ?? ''), error: 'not a host name' });
        continue;
      }
      const owner = this.routes.get(domain);
      if (owner && owner.tunnelId !== tunnelId) {
        refused.push({ domain, error: `domain ${domain} is served by another tunnel (${owner.tunnelId})` });
        continue;
      }
      const problem = checkFirewall(claim.firewall);
      if (problem) {
        refused.push({ domain, error: problem });
        continue;
      }
      wanted.set(domain, { domain, tunnelId, firewall: new Firewall(claim.firewall) });
    }
    this.release(tunnelId);
    for (const [domain, route] of wanted) this.routes.set(domain, route);
    for (const r of refused) this.logger.warn(`tunnel ${tunnelId}: site ${r.domain} refused: ${r.error}`);
    return refused;
  }

  release(tunnelId: string): void {
    for (const [domain, route] of this.routes) if (route.tunnelId === tunnelId) this.routes.delete(domain);
  }

  lookup(name: string): SiteRoute | undefined {
    return this.routes.get(normalizeDomain(name));
  }

  domainsOf(tunnelId: string): string[] {
    return [...this.routes.values()].filter((r) => r.tunnelId === tunnelId).map((r) => r.domain);
  }
}

/** Lower case, without a trailing dot or a :port (Host header form). */
export function normalizeDomain(name: string): string {
  let host = name.trim().toLowerCase();
  if (host.startsWith('[')) return host; // an IP literal: never a site
  const colon = host.lastIndexOf(':');
  if (colon >= 0) host = host.slice(0, colon);
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

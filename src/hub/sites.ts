import type { Logger } from '../common/logger.js';
import { domainAllowed } from './domain-policy.js';
import { Firewall } from './firewall.js';
import type { SiteClaim } from './protocol.js';
import { checkFirewall, isHost } from './rules.js';
import type { StoredDomain } from './store.js';

export interface SiteRoute {
  domain: string;
  tunnelId: string;
  firewall: Firewall;
}

export class DomainNotFoundError extends Error {
  override readonly name = 'DomainNotFoundError';
}

/**
 * Which tunnel serves which domain (Host / SNI name), for the hub's HTTP and HTTPS listeners, and which tunnel owns
 * it. A domain belongs to the tunnel that claimed it first: the reservation is kept in the hub's state (`owners`,
 * persisted by the caller) across disconnects and hub restarts, so no other tunnel can take it while its owner is
 * offline. It ends when the owner's site list no longer names it, or when the admin releases it. Routes live with
 * the session (the connector's config is authoritative for its sites and sends them again after every welcome).
 */
export class SiteTable {
  private readonly routes = new Map<string, SiteRoute>();

  constructor(
    private readonly logger: Logger,
    /** domain → reservation; shared with the registry, which persists it. */
    private readonly owners: Map<string, StoredDomain>,
  ) {}

  /** Why `tunnelId` may not claim `domain` (forbidden: its token does not allow it), or undefined when it may. */
  check(
    tunnelId: string,
    name: string,
    allowed: readonly string[] | undefined,
  ): { error: string; forbidden: boolean } | undefined {
    const domain = normalizeDomain(name);
    if (!domainAllowed(allowed, domain)) {
      return {
        error: `domain ${domain} is not allowed by this tunnel's registration token (allowed: ${allowed?.join(', ')})`,
        forbidden: true,
      };
    }
    const owner = this.owners.get(domain);
    if (owner && owner.tunnelId !== tunnelId) {
      const online = this.routes.get(domain)?.tunnelId === owner.tunnelId;
      return {
        error: online
          ? `domain ${domain} is served by another tunnel (${owner.tunnelId})`
          : `domain ${domain} is reserved for another tunnel (${owner.tunnelId}, offline); the hub admin can release it (domain/release)`,
        forbidden: false,
      };
    }
    return undefined;
  }

  /**
   * Replaces the sites of `tunnelId` with `claims`: routes them and reserves their domains. Returns the refused
   * ones with the reason, and whether the reservations changed (the caller saves the state then).
   */
  claim(
    tunnelId: string,
    claims: unknown[],
    allowed?: readonly string[],
  ): { refused: Array<{ domain: string; error: string }>; changed: boolean } {
    const refused: Array<{ domain: string; error: string }> = [];
    const wanted = new Map<string, SiteRoute>();
    const named = new Set<string>();
    for (const raw of claims) {
      const claim = (typeof raw === 'object' && raw !== null ? raw : {}) as Partial<SiteClaim>;
      const domain = typeof claim.domain === 'string' ? normalizeDomain(claim.domain) : '';
      if (domain === '' || !isHost(domain)) {
        refused.push({ domain: String(claim.domain ?? ''), error: 'not a host name' });
        continue;
      }
      named.add(domain);
      const problem = this.check(tunnelId, domain, allowed)?.error ?? checkFirewall(claim.firewall);
      if (problem) {
        refused.push({ domain, error: problem });
        continue;
      }
      wanted.set(domain, { domain, tunnelId, firewall: new Firewall(claim.firewall) });
    }
    this.unroute(tunnelId);
    let changed = false;
    // A domain the tunnel owns but no longer names was removed from its sites: free it.
    for (const [domain, owner] of this.owners) {
      if (owner.tunnelId === tunnelId && !named.has(domain)) {
        this.owners.delete(domain);
        changed = true;
      }
    }
    for (const [domain, route] of wanted) {
      this.routes.set(domain, route);
      if (!this.owners.has(domain)) {
        this.owners.set(domain, { domain, tunnelId, claimed: new Date().toISOString() });
        changed = true;
      }
    }
    for (const r of refused) this.logger.warn(`tunnel ${tunnelId}: site ${r.domain} refused: ${r.error}`);
    return { refused, changed };
  }

  /** The tunnel went offline: its domains stop routing but stay reserved for it. */
  unroute(tunnelId: string): void {
    for (const [domain, route] of this.routes) if (route.tunnelId === tunnelId) this.routes.delete(domain);
  }

  /** Ends a reservation (admin) and its route. */
  releaseDomain(name: string): StoredDomain {
    const domain = normalizeDomain(name);
    const owner = this.owners.get(domain);
    if (!owner) throw new DomainNotFoundError(`domain ${domain} is not reserved by any tunnel`);
    this.owners.delete(domain);
    this.routes.delete(domain);
    return owner;
  }

  isRouted(name: string): boolean {
    return this.routes.has(normalizeDomain(name));
  }

  reservations(): StoredDomain[] {
    return [...this.owners.values()].sort((a, b) => a.domain.localeCompare(b.domain));
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

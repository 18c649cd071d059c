import { randomBytes } from 'node:crypto';
import type { Flow } from '../tunnel/traffic.js';
import type { PortAllocator } from './port-allocator.js';
import { randomHex, sameHex, type TunnelInfo } from './protocol.js';
import type { Port } from './rules.js';
import type { HubState, StoredDomain, StoredToken, StoredTunnel } from './store.js';

export class RegistrationError extends Error {
  override readonly name = 'RegistrationError';
}
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

const DAY_MS = 86_400_000;
let cachedDay = '';
let cachedDayStart = Number.NaN;

/** Today's UTC date (YYYY-MM-DD). Called for every relayed chunk, so the string is only rebuilt when the day turns. */
function utcDay(now = Date.now()): string {
  if (!(now >= cachedDayStart && now < cachedDayStart + DAY_MS)) {
    cachedDayStart = now - (now % DAY_MS);
    cachedDay = new Date(cachedDayStart).toISOString().slice(0, 10);
  }
  return cachedDay;
}

/** Tokens and tunnels as the hub keeps them (the persistent part of its state). */
export class Registry {
  adminKey: string;
  readonly tokens = new Map<string, StoredToken>();
  readonly tunnels = new Map<string, StoredTunnel>();
  /** Domain → its reservation (SiteTable decides claims; the registry keeps them with the rest of the state). */
  readonly domains = new Map<string, StoredDomain>();

  constructor(
    state: HubState | undefined,
    readonly ports: PortAllocator,
  ) {
    this.adminKey = state?.adminKey ?? randomHex(16);
    for (const t of state?.tokens ?? []) this.tokens.set(t.id, t);
    for (const t of state?.tunnels ?? []) {
      this.tunnels.set(t.id, t);
      for (const p of t.ports) ports.claim(p.port, t.id);
    }
    for (const d of state?.domains ?? []) this.domains.set(d.domain, d);
  }

  snapshot(): HubState {
    return {
      version: 1,
      adminKey: this.adminKey,
      tokens: [...this.tokens.values()],
      tunnels: [...this.tunnels.values()],
      domains: [...this.domains.values()],
    };
  }

  /** The domain patterns a tunnel's claims must match: its token's now, else those it registered with. */
  domainPatterns(tunnel: StoredTunnel): string[] | undefined {
    const token = this.tokens.get(tunnel.tokenId);
    return token ? token.domains : tunnel.domains;
  }

  /**
   * Bootstrap tokens from the hub config: present and active, whatever the admin did to them before, with the
   * config's domain restrictions (none given = any domain).
   */
  ensureBootstrapTokens(tokens: Array<{ token: string; domains?: string[] | undefined }>): boolean {
    let changed = false;
    for (const { token, domains } of tokens) {
      const existing = [...this.tokens.values()].find((t) => t.token === token);
      if (existing) {
        if (!existing.active) {
          existing.active = true;
          changed = true;
        }
        if (JSON.stringify(existing.domains ?? []) !== JSON.stringify(domains ?? [])) {
          if (domains?.length) existing.domains = domains;
          else delete existing.domains;
          changed = true;
        }
        continue;
      }
      this.createToken('bootstrap token from the hub config', true, token, domains);
      changed = true;
    }
    return changed;
  }

  createToken(
    description: string,
    active: boolean,
    token = randomBytes(24).toString('base64url'),
    domains?: string[],
  ): StoredToken {
    const record: StoredToken = {
      id: randomHex(8),
      token,
      description,
      active,
      created: new Date().toISOString(),
      uses: 0,
      ...(domains?.length ? { domains } : {}),
    };
    this.tokens.set(record.id, record);
    return record;
  }

  token(id: string): StoredToken {
    const t = this.tokens.get(id);
    if (t === undefined) throw new NotFoundError(`no registration token with id "${id}"`);
    return t;
  }

  /**
   * Registers a tunnel with an active token; returns its id and the per-tunnel secret. `renew` names the tunnel the
   * connector had: when it exists, is not shut down and the secret matches, that tunnel is kept (its ports and
   * domains with it) under the new token's policy, rather than a new one left to compete with the old one's
   * reservations.
   */
  register(
    token: string,
    info: TunnelInfo,
    address: string,
    renew?: { tunnelId: string; secret: string },
  ): { tunnel: StoredTunnel; renewed: boolean } {
    const record = [...this.tokens.values()].find((t) => t.token === token);
    if (record === undefined) throw new RegistrationError('unknown registration token');
    if (!record.active) throw new RegistrationError('registration token is not active');
    record.uses += 1;
    const now = new Date().toISOString();
    const old = renew ? this.tunnels.get(renew.tunnelId) : undefined;
    if (old && renew && !old.shutdown && sameHex(renew.secret, old.secret)) {
      Object.assign(old, { ...info, tokenId: record.id, lastActive: now, address });
      if (record.domains?.length) old.domains = [...record.domains];
      else delete old.domains;
      return { tunnel: old, renewed: true };
    }
    const tunnel: StoredTunnel = {
      id: randomHex(8),
      name: info.name,
      hostname: info.hostname,
      secret: randomHex(32),
      tokenId: record.id,
      created: now,
      lastActive: now,
      address,
      version: info.version,
      os: info.os,
      arch: info.arch,
      shutdown: false,
      bandwidth: { daily: 0, monthly: 0, day: utcDay(), month: utcDay().slice(0, 7) },
      ports: [],
      ...(record.domains?.length ? { domains: [...record.domains] } : {}),
    };
    this.tunnels.set(tunnel.id, tunnel);
    return { tunnel, renewed: false };
  }

  tunnel(id: string): StoredTunnel {
    const t = this.tunnels.get(id);
    if (t === undefined) throw new NotFoundError(`no tunnel with id "${id}"`);
    return t;
  }

  portOf(tunnel: StoredTunnel, port: number): Port {
    const p = tunnel.ports.find((x) => x.port === port);
    if (p === undefined) {
      const owner = this.ports.owner(port);
      throw new NotFoundError(
        owner === undefined ? `port ${port} is not allocated` : `port ${port} is not allocated to tunnel ${tunnel.id}`,
      );
    }
    return p;
  }

  async allocate(tunnel: StoredTunnel): Promise<number> {
    const port = await this.ports.allocate(tunnel.id);
    tunnel.ports.push({ port, destination: '', dstPort: 0 });
    tunnel.ports.sort((a, b) => a.port - b.port);
    return port;
  }

  release(tunnel: StoredTunnel, port: number): void {
    this.portOf(tunnel, port);
    tunnel.ports = tunnel.ports.filter((p) => p.port !== port);
    this.ports.release(port);
  }

  /** Replaces the forwarding rules of ports the tunnel holds; a port it does not hold fails the whole update. */
  updatePorts(tunnel: StoredTunnel, rules: Port[]): void {
    for (const rule of rules) this.portOf(tunnel, rule.port);
    for (const rule of rules) {
      const i = tunnel.ports.findIndex((p) => p.port === rule.port);
      tunnel.ports[i] = rule;
    }
  }

  /** A relay flow that adds to the tunnel's daily and monthly bandwidth, rolling the periods over in UTC. */
  bandwidthFlow(tunnel: StoredTunnel, onCount: () => void): Flow {
    return {
      bucket: undefined,
      count: (n) => {
        const b = tunnel.bandwidth;
        const day = utcDay();
        if (b.day !== day) {
          b.day = day;
          b.daily = 0;
          if (b.month !== day.slice(0, 7)) {
            b.month = day.slice(0, 7);
            b.monthly = 0;
          }
        }
        b.daily += n;
        b.monthly += n;
        onCount();
      },
    };
  }
}

import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/**
 * Resolves target hostnames, caching each answer for `ttlMs` (NodePass's `dns` parameter; 0 = no cache).
 * `family` 4 or 6 restricts answers to that family (to match a `dial` source address).
 */
export type LookupAll = (host: string, family: 0 | 4 | 6) => Promise<ResolvedAddress[]>;

const systemLookup: LookupAll = async (host, family) =>
  (await lookup(host, { all: true, family })).map((a) => ({ address: a.address, family: a.family as 4 | 6 }));

export class DnsCache {
  private readonly entries = new Map<string, { addresses: ResolvedAddress[]; expires: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly lookupAll: LookupAll = systemLookup,
    private readonly now: () => number = Date.now,
  ) {}

  async resolve(host: string, family: 0 | 4 | 6 = 0): Promise<ResolvedAddress> {
    const literal = isIP(host);
    if (literal !== 0) return { address: host, family: literal as 4 | 6 };
    const name = host === '' ? 'localhost' : host;
    const key = `${family}/${name}`;
    const now = this.now();
    const cached = this.entries.get(key);
    let addresses = cached !== undefined && cached.expires > now ? cached.addresses : undefined;
    if (addresses === undefined) {
      addresses = await this.lookupAll(name, family);
      if (addresses.length === 0) throw new Error(`no address for ${name}`);
      if (this.ttlMs > 0) this.entries.set(key, { addresses, expires: now + this.ttlMs });
    }
    return addresses[0] as ResolvedAddress;
  }
}

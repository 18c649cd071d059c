import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../config/errors.js';

interface Entry {
  /** Lower-case host name, or undefined for an address/CIDR entry. */
  host?: string;
  list?: BlockList;
  /** 0 = any port. */
  port: number;
}

function parseEntry(text: string): Entry {
  const t = text.trim();
  let hostPart = t;
  let port = 0;
  const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(t);
  if (v6) {
    hostPart = v6[1] as string;
    port = v6[2] ? Number(v6[2]) : 0;
  } else if ((t.match(/:/g) ?? []).length === 1) {
    const [h, p] = t.split(':') as [string, string];
    hostPart = h;
    port = /^\d{1,5}$/.test(p) ? Number(p) : Number.NaN;
  }
  if (!(port >= 0 && port <= 65535)) throw new ConfigError(`portmapAllow: bad port in "${text}"`, 'portmapAllow');
  const [address = '', prefix] = hostPart.split('/');
  const family = isIP(address);
  if (family !== 0) {
    const max = family === 4 ? 32 : 128;
    const bits = prefix === undefined ? max : Number(prefix);
    if (!(Number.isInteger(bits) && bits >= 0 && bits <= max)) {
      throw new ConfigError(`portmapAllow: bad prefix in "${text}"`, 'portmapAllow');
    }
    const list = new BlockList();
    list.addSubnet(address, bits, family === 4 ? 'ipv4' : 'ipv6');
    return { list, port };
  }
  if (prefix !== undefined || !/^[a-z0-9.-]+$/i.test(address)) {
    throw new ConfigError(`portmapAllow: "${text}" is not a host, host:port or CIDR`, 'portmapAllow');
  }
  return { host: address.toLowerCase(), port };
}

/**
 * The hub's policy for port mappings that name an outside destination: allowed only if an entry of the allow-list
 * matches (`host`, `host:port`, `CIDR`, `[v6]:port`; no port = any port). The default, an empty list, denies all:
 * a hub must not become an open proxy for whoever holds a registration token.
 */
export class PortmapPolicy {
  private readonly entries: Entry[];

  constructor(allow: readonly string[]) {
    this.entries = allow.map(parseEntry);
  }

  allows(destination: string, port: number): boolean {
    const host = destination.toLowerCase();
    const family = isIP(host);
    return this.entries.some((e) => {
      if (e.port !== 0 && e.port !== port) return false;
      if (e.host !== undefined) return e.host === host;
      return family !== 0 && (e.list as BlockList).check(host, family === 4 ? 'ipv4' : 'ipv6');
    });
  }
}

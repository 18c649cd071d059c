import { isIP } from 'node:net';
import { isHost } from './rules.js';

/**
 * Which domains a registration token lets its tunnels claim: none given = any; else each entry is an exact host
 * name (`app.example.com`) or `*.suffix`, which allows every name below suffix at any depth
 * (`*.example.com` allows `a.example.com` and `a.b.example.com`, not `example.com` itself).
 */
export class DomainPatternError extends Error {
  override readonly name = 'DomainPatternError';
}

/** Lower-cased patterns; throws on one that is neither a host name nor `*.host`. */
export function checkDomainPatterns(patterns: readonly string[]): string[] {
  return patterns.map((raw) => {
    const p = raw.trim().toLowerCase().replace(/\.$/, '');
    const host = p.startsWith('*.') ? p.slice(2) : p;
    if (host === '' || !isHost(host) || isIP(host) !== 0 || host.includes('*')) {
      throw new DomainPatternError(`domain pattern "${raw}": expected a host name or *.suffix`);
    }
    return p;
  });
}

export function domainAllowed(patterns: readonly string[] | undefined, domain: string): boolean {
  if (patterns === undefined || patterns.length === 0) return true;
  const d = domain.toLowerCase();
  return patterns.some((p) => (p.startsWith('*.') ? d.endsWith(p.slice(1)) && d.length > p.length - 1 : d === p));
}

import { BlockList, isIP } from 'node:net';
import type { FwRule } from './protocol.js';

export class FirewallRuleError extends Error {
  override readonly name = 'FirewallRuleError';
}

interface CompiledRule {
  action: 'allow' | 'drop';
  list: BlockList;
}

/** `::ffff:1.2.3.4` (an IPv4 client on a dual-stack socket) is 1.2.3.4 for the rules. */
export function normalizeAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? (m[1] as string) : address;
}

/** Checks one rule; returns the reason it is invalid, or undefined. */
export function explainRule(rule: FwRule): string | undefined {
  if (!Number.isInteger(rule.sequence) || rule.sequence < 0) return 'sequence must be an integer >= 0';
  if (rule.action !== 'allow' && rule.action !== 'drop') return 'action must be "allow" or "drop"';
  const parsed = parseNetwork(rule.network);
  return typeof parsed === 'string' ? parsed : undefined;
}

function parseNetwork(network: unknown): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | string {
  if (typeof network !== 'string') return 'network must be a CIDR string';
  const [address = '', prefixText, ...extra] = network.trim().split('/');
  const version = isIP(address);
  if (version === 0 || extra.length > 0) return `network "${network}" is not an IPv4/IPv6 address or CIDR`;
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d+$/.test(prefixText ?? String(max)) || prefix > max) {
    return `network "${network}" has an invalid prefix length (0-${max})`;
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/**
 * FwRule semantics of the reference: rules are evaluated in `sequence` order (0 = unspecified: after the numbered
 * ones, in array order), the first rule whose network contains the client decides. Without a match the default is
 * the opposite of the rule types: only `allow` rules → deny; only `drop` rules → allow; a mixed list → the opposite
 * of the last rule's action (a list ending in "drop everything else" allows by default and vice versa). No rules →
 * allow everyone.
 */
export class Firewall {
  private readonly rules: CompiledRule[];
  readonly defaultAllow: boolean;

  constructor(rules: readonly FwRule[] = []) {
    const ordered = rules
      .map((rule, index) => ({ rule, index }))
      .sort((a, b) => {
        const sa = a.rule.sequence > 0 ? a.rule.sequence : Number.MAX_SAFE_INTEGER;
        const sb = b.rule.sequence > 0 ? b.rule.sequence : Number.MAX_SAFE_INTEGER;
        return sa - sb || a.index - b.index;
      })
      .map(({ rule }) => rule);
    this.rules = ordered.map((rule) => {
      const why = explainRule(rule);
      if (why !== undefined) throw new FirewallRuleError(why);
      const net = parseNetwork(rule.network) as Exclude<ReturnType<typeof parseNetwork>, string>;
      const list = new BlockList();
      list.addSubnet(net.address, net.prefix, net.family);
      return { action: rule.action, list };
    });
    const last = ordered[ordered.length - 1];
    this.defaultAllow = last === undefined ? true : last.action === 'drop';
  }

  /** Whether a client at `address` (IPv4, IPv6 or IPv4-mapped IPv6) may pass. */
  allows(address: string): boolean {
    const ip = normalizeAddress(address);
    const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    for (const rule of this.rules) {
      if (rule.list.check(ip, family)) return rule.action === 'allow';
    }
    return this.defaultAllow;
  }
}

import { isIP } from 'node:net';
import { formatGoDuration, parseGoDuration } from './duration.js';
import { ConfigError } from './errors.js';

export type Role = 'server' | 'client' | 'master';
export type LogLevel = 'none' | 'debug' | 'info' | 'warn' | 'error' | 'event';
export type BlockedProtocol = 'socks' | 'http' | 'tls';

/** Every NodePass query parameter, parsed. Durations are in milliseconds. */
export interface TunnelParams {
  log: LogLevel;
  tls: 0 | 1 | 2;
  crt: string;
  key: string;
  dns: number;
  sni: string;
  lbs: 0 | 1 | 2;
  min: number;
  max: number;
  mode: 0 | 1 | 2;
  type: 0 | 1 | 2 | 3;
  dial: string;
  read: number;
  rate: number;
  slot: number;
  proxy: 0 | 1;
  block: ReadonlySet<BlockedProtocol>;
  notcp: 0 | 1;
  noudp: 0 | 1;
}

export type ParamName = keyof TunnelParams;

interface ParamSpec {
  roles: readonly Role[];
  /** The raw value used when the parameter is absent; undefined when the default depends on the URL. */
  default: string | undefined;
  parse(raw: string): unknown;
  /** The value as written in the canonical `config` string. */
  canonical(raw: string): string;
}

const TUNNEL: readonly Role[] = ['server', 'client'];
const ALL: readonly Role[] = ['server', 'client', 'master'];

function choice<T extends string | number>(name: string, values: readonly T[]): ParamSpec['parse'] {
  return (raw) => {
    const found = values.find((v) => String(v) === raw);
    if (found === undefined) {
      throw new ConfigError(`${name}: invalid value "${raw}" (accepted: ${values.join(', ')})`, name);
    }
    return found;
  };
}

function integer(name: string, min: number, max: number, meaning: string): ParamSpec['parse'] {
  return (raw) => {
    const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new ConfigError(
        `${name}: invalid value "${raw}" (accepted: an integer from ${min} to ${max}, ${meaning})`,
        name,
      );
    }
    return n;
  };
}

function duration(name: string): ParamSpec['parse'] {
  return (raw) => parseGoDuration(raw, name) / 1e6;
}

const asIs = (raw: string) => raw;
const canonicalInt = (raw: string) => String(Number(raw));
const canonicalDuration = (name: string) => (raw: string) => formatGoDuration(parseGoDuration(raw, name));

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

export function isHostname(text: string): boolean {
  return HOSTNAME.test(text);
}

export const PARAMS: Record<ParamName, ParamSpec> = {
  log: {
    roles: ALL,
    default: 'info',
    parse: choice('log', ['none', 'debug', 'info', 'warn', 'error', 'event']),
    canonical: asIs,
  },
  tls: { roles: ALL, default: '0', parse: (raw) => Number(choice('tls', ['0', '1', '2'])(raw)), canonical: asIs },
  crt: { roles: ALL, default: undefined, parse: asIs, canonical: asIs },
  key: { roles: ALL, default: undefined, parse: asIs, canonical: asIs },
  dns: { roles: TUNNEL, default: '5m', parse: duration('dns'), canonical: canonicalDuration('dns') },
  sni: {
    roles: TUNNEL,
    default: undefined,
    parse: (raw) => {
      if (raw !== 'none' && !isHostname(raw)) {
        throw new ConfigError(`sni: invalid value "${raw}" (accepted: a DNS hostname, or none)`, 'sni');
      }
      return raw;
    },
    canonical: asIs,
  },
  lbs: { roles: TUNNEL, default: '0', parse: (raw) => Number(choice('lbs', ['0', '1', '2'])(raw)), canonical: asIs },
  min: { roles: TUNNEL, default: '64', parse: integer('min', 1, 65536, 'minimum pool size'), canonical: canonicalInt },
  max: {
    roles: TUNNEL,
    default: '1024',
    parse: integer('max', 1, 65536, 'maximum pool size'),
    canonical: canonicalInt,
  },
  mode: { roles: TUNNEL, default: '0', parse: (raw) => Number(choice('mode', ['0', '1', '2'])(raw)), canonical: asIs },
  type: {
    roles: TUNNEL,
    default: '0',
    parse: (raw) => Number(choice('type', ['0', '1', '2', '3'])(raw)),
    canonical: asIs,
  },
  dial: {
    roles: TUNNEL,
    default: 'auto',
    parse: (raw) => {
      if (raw !== 'auto' && isIP(raw) === 0) {
        throw new ConfigError(`dial: invalid value "${raw}" (accepted: auto, or a local IPv4/IPv6 address)`, 'dial');
      }
      return raw;
    },
    canonical: asIs,
  },
  read: { roles: TUNNEL, default: '0', parse: duration('read'), canonical: canonicalDuration('read') },
  rate: {
    roles: TUNNEL,
    default: '0',
    parse: integer('rate', 0, 1_000_000, 'Mbps per direction, 0 = unlimited'),
    canonical: canonicalInt,
  },
  slot: {
    roles: TUNNEL,
    default: '65536',
    parse: integer('slot', 0, 1_000_000_000, 'concurrent sessions, 0 = unlimited'),
    canonical: canonicalInt,
  },
  proxy: { roles: TUNNEL, default: '0', parse: (raw) => Number(choice('proxy', ['0', '1'])(raw)), canonical: asIs },
  block: {
    roles: TUNNEL,
    default: '0',
    parse: (raw) => {
      if (!/^[0-3]+$/.test(raw)) {
        throw new ConfigError(
          `block: invalid value "${raw}" (accepted: 0, or digits 1 = SOCKS, 2 = HTTP, 3 = TLS, e.g. 23)`,
          'block',
        );
      }
      const blocked = new Set<BlockedProtocol>();
      if (raw.includes('1')) blocked.add('socks');
      if (raw.includes('2')) blocked.add('http');
      if (raw.includes('3')) blocked.add('tls');
      return blocked;
    },
    canonical: asIs,
  },
  notcp: { roles: TUNNEL, default: '0', parse: (raw) => Number(choice('notcp', ['0', '1'])(raw)), canonical: asIs },
  noudp: { roles: TUNNEL, default: '0', parse: (raw) => Number(choice('noudp', ['0', '1'])(raw)), canonical: asIs },
};

export function isParamName(name: string): name is ParamName {
  return Object.hasOwn(PARAMS, name);
}

/** Keys that the canonical `config` string always carries for a role (NodePass master's format). */
export const CONFIG_KEYS: Record<'server' | 'client', readonly ParamName[]> = {
  client: [
    'block',
    'dial',
    'dns',
    'lbs',
    'log',
    'min',
    'mode',
    'noudp',
    'notcp',
    'proxy',
    'rate',
    'read',
    'slot',
    'sni',
  ],
  server: [
    'block',
    'dial',
    'dns',
    'lbs',
    'log',
    'max',
    'mode',
    'noudp',
    'notcp',
    'proxy',
    'rate',
    'read',
    'slot',
    'tls',
    'type',
  ],
};

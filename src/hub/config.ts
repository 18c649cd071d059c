import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Static, Type } from 'typebox';
import { Value } from 'typebox/value';
import { ConfigError } from '../config/errors.js';
import type { LogLevel } from '../config/params.js';
import { type Endpoint, parseEndpoint } from '../config/url.js';
import { checkDomainPatterns, DomainPatternError } from './domain-policy.js';

/** hub.json; every field optional, flags override it. */
const HubFile = Type.Object(
  {
    tunnelListen: Type.Optional(Type.String()),
    wsListen: Type.Optional(Type.String()),
    tls: Type.Optional(Type.Boolean()),
    cert: Type.Optional(Type.String()),
    key: Type.Optional(Type.String()),
    publicBind: Type.Optional(Type.String()),
    httpListen: Type.Optional(Type.String()),
    httpsListen: Type.Optional(Type.String()),
    portRange: Type.Optional(
      Type.Object({
        begin: Type.Integer({ minimum: 1, maximum: 65535 }),
        end: Type.Integer({ minimum: 1, maximum: 65535 }),
      }),
    ),
    stateDir: Type.Optional(Type.String()),
    adminListen: Type.Optional(Type.String()),
    adminKey: Type.Optional(Type.String({ minLength: 16 })),
    /** A token, or a token whose tunnels may only claim `domains` (host names or `*.suffix`). */
    tokens: Type.Optional(
      Type.Array(
        Type.Union([
          Type.String({ minLength: 8 }),
          Type.Object(
            { token: Type.String({ minLength: 8 }), domains: Type.Optional(Type.Array(Type.String())) },
            { additionalProperties: false },
          ),
        ]),
      ),
    ),
    portmapAllow: Type.Optional(Type.Array(Type.String())),
    pool: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    maxTunnels: Type.Optional(Type.Integer({ minimum: 0 })),
    log: Type.Optional(Type.Union(['none', 'debug', 'info', 'warn', 'error', 'event'].map((l) => Type.Literal(l)))),
  },
  { additionalProperties: false },
);
type HubFile = Static<typeof HubFile>;

export interface HubConfig {
  /** Where connectors connect (TLS unless tls is false). Port 0 = any free port (tests). */
  tunnelListen: Endpoint;
  tls: boolean;
  /**
   * A plain-HTTP listener that takes only WebSocket upgrades on HUB_WEBSOCKET_PATH, for a TLS-terminating reverse
   * proxy in front of the hub; undefined = off (the tunnel listener takes WebSocket upgrades too, in its TLS).
   */
  wsListen: Endpoint | undefined;
  cert: string;
  key: string;
  /** The public HTTP listener of sites (routed by Host); undefined = off. */
  httpListen: Endpoint | undefined;
  /** The public HTTPS listener of sites (routed by SNI, TLS passed through); undefined = off. */
  httpsListen: Endpoint | undefined;
  /** Address the allocated TCP ports listen on ('' = all interfaces). */
  publicBind: string;
  portRange: { begin: number; end: number };
  stateDir: string;
  adminListen: Endpoint;
  /** Fixed admin key; when empty the hub generates one, keeps it in its state and prints it at start. */
  adminKey: string;
  /** Bootstrap registration tokens (active, never expire), optionally restricted to some domains. */
  tokens: Array<{ token: string; domains?: string[] }>;
  /** Destinations a port mapping may name (host, host:port, or CIDR); empty = deny every outside destination. */
  portmapAllow: string[];
  /** Idle data connections each connector keeps open to the hub. */
  pool: number;
  /** 0 = no limit. */
  maxTunnels: number;
  log: LogLevel;
}

export const HUB_DEFAULTS: HubConfig = {
  tunnelListen: { host: '', port: 7443 },
  tls: true,
  wsListen: undefined,
  cert: '',
  key: '',
  httpListen: { host: '', port: 80 },
  httpsListen: { host: '', port: 443 },
  publicBind: '',
  portRange: { begin: 22000, end: 22999 },
  stateDir: './hub-data',
  adminListen: { host: '127.0.0.1', port: 7080 },
  adminKey: '',
  tokens: [],
  portmapAllow: [],
  pool: 8,
  maxTunnels: 0,
  log: 'info',
};

/** host:port where port 0 means "any free port". */
export function parseListen(text: string, what: string): Endpoint {
  if (/:0$/.test(text)) return { ...parseEndpoint(`${text.slice(0, -1)}1`, what), port: 0 };
  return parseEndpoint(text, what);
}

/** A site listener: host:port (port 0 = any free port), a bare port, or "off". */
function siteListen(text: string | undefined, fallback: Endpoint | undefined, what: string): Endpoint | undefined {
  if (text === undefined) return fallback;
  if (text === 'off') return undefined;
  if (/^\d{1,5}$/.test(text)) return parseListen(`:${text}`, what);
  return parseListen(text, what);
}

function parseRange(text: string): { begin: number; end: number } {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text);
  if (!m) throw new ConfigError(`--port-range: expected BEGIN-END, got "${text}"`, 'portRange');
  return { begin: Number(m[1]), end: Number(m[2]) };
}

const FLAGS: Record<string, keyof HubFile | 'config'> = {
  '--config': 'config',
  '--tunnel-listen': 'tunnelListen',
  '--ws-listen': 'wsListen',
  '--public-bind': 'publicBind',
  '--http-listen': 'httpListen',
  '--https-listen': 'httpsListen',
  '--port-range': 'portRange',
  '--state-dir': 'stateDir',
  '--admin-listen': 'adminListen',
  '--admin-key': 'adminKey',
  '--token': 'tokens',
  '--portmap-allow': 'portmapAllow',
  '--tls': 'tls',
  '--cert': 'cert',
  '--key': 'key',
  '--pool': 'pool',
  '--log': 'log',
};

/** `porthole hub [--config hub.json] [--flag value ...]`: the file first, then flags on top. */
export async function readHubConfig(args: string[]): Promise<HubConfig> {
  const flags: Record<string, unknown> = {};
  let configPath: string | undefined;
  /** --token-domains TOKEN=PATTERN[,PATTERN...]: the domains a token's tunnels may claim. */
  const tokenDomains = new Map<string, string[]>();
  for (let i = 0; i < args.length; i++) {
    const [name = '', inline] = (args[i] as string).split(/=(.*)/s, 2);
    if (name === '--token-domains') {
      const value = inline ?? args[++i] ?? '';
      const at = value.lastIndexOf('=');
      if (at <= 0 || at === value.length - 1) {
        throw new ConfigError('--token-domains: expected TOKEN=PATTERN[,PATTERN...]', 'tokens');
      }
      tokenDomains.set(value.slice(0, at), value.slice(at + 1).split(','));
      continue;
    }
    const field = FLAGS[name];
    if (field === undefined) throw new ConfigError(`hub: unknown option "${name}" (see porthole --help)`, name);
    const value = inline ?? args[++i];
    if (value === undefined) throw new ConfigError(`hub: ${name} needs a value`, name);
    if (field === 'config') configPath = value;
    else if (field === 'tokens' || field === 'portmapAllow') {
      flags[field] = [...((flags[field] as unknown[] | undefined) ?? []), value];
    } else if (field === 'portRange') flags[field] = parseRange(value);
    else if (field === 'tls') {
      if (value !== '0' && value !== '1') throw new ConfigError('--tls: 0 or 1', name);
      flags[field] = value === '1';
    } else if (field === 'pool') flags[field] = Number(value);
    else flags[field] = value;
  }
  let file: HubFile = {};
  if (configPath !== undefined) {
    let text: string;
    try {
      text = await readFile(configPath, 'utf8');
    } catch (err) {
      throw new ConfigError(`hub config ${configPath}: ${(err as Error).message}`, 'config');
    }
    try {
      file = JSON.parse(text) as HubFile;
    } catch (err) {
      throw new ConfigError(`hub config ${configPath} is not JSON: ${(err as Error).message}`, 'config');
    }
  }
  const merged = { ...file, ...flags };
  if (tokenDomains.size > 0) {
    const tokens = (merged.tokens ?? []).map((t) => (typeof t === 'string' ? { token: t } : t));
    for (const [token, domains] of tokenDomains) {
      const entry = tokens.find((t) => t.token === token);
      if (!entry) throw new ConfigError(`--token-domains: no token "${token}" (give it with --token)`, 'tokens');
      entry.domains = domains;
    }
    merged.tokens = tokens;
  }
  if (!Value.Check(HubFile, merged)) {
    const first = Value.Errors(HubFile, merged)[0];
    throw new ConfigError(
      `hub config: ${first ? `${first.instancePath || '/'} ${first.message}` : 'invalid'}`,
      'config',
    );
  }
  const range = merged.portRange ?? HUB_DEFAULTS.portRange;
  if (range.begin > range.end)
    throw new ConfigError(`hub config: port range ${range.begin}-${range.end} is empty`, 'portRange');
  const tls = merged.tls ?? true;
  if ((merged.cert ?? '') !== '' && (merged.key ?? '') === '')
    throw new ConfigError('hub config: cert needs key', 'key');
  return {
    tunnelListen: merged.tunnelListen ? parseListen(merged.tunnelListen, 'tunnelListen') : HUB_DEFAULTS.tunnelListen,
    wsListen: merged.wsListen ? parseListen(merged.wsListen, 'wsListen') : undefined,
    httpListen: siteListen(merged.httpListen, HUB_DEFAULTS.httpListen, 'httpListen'),
    httpsListen: siteListen(merged.httpsListen, HUB_DEFAULTS.httpsListen, 'httpsListen'),
    tls,
    cert: merged.cert ?? '',
    key: merged.key ?? '',
    publicBind: merged.publicBind ?? '',
    portRange: range,
    stateDir: resolve(merged.stateDir ?? HUB_DEFAULTS.stateDir),
    adminListen: merged.adminListen ? parseListen(merged.adminListen, 'adminListen') : HUB_DEFAULTS.adminListen,
    adminKey: merged.adminKey ?? '',
    tokens: (merged.tokens ?? []).map((t) => {
      if (typeof t === 'string') return { token: t };
      try {
        return t.domains?.length ? { token: t.token, domains: checkDomainPatterns(t.domains) } : { token: t.token };
      } catch (err) {
        if (err instanceof DomainPatternError) throw new ConfigError(`hub config: tokens: ${err.message}`, 'tokens');
        throw err;
      }
    }),
    portmapAllow: merged.portmapAllow ?? [],
    pool: merged.pool ?? HUB_DEFAULTS.pool,
    maxTunnels: merged.maxTunnels ?? 0,
    log: (merged.log ?? 'info') as LogLevel,
  };
}

import { isIP } from 'node:net';
import { ConfigError } from './errors.js';
import {
  CONFIG_KEYS,
  isHostname,
  isParamName,
  type LogLevel,
  PARAMS,
  type ParamName,
  type Role,
  type TunnelParams,
} from './params.js';
import { deriveTunnelKey } from './tunnel-key.js';

/** host '' means all interfaces (when listening) or the local host (when dialing). */
export interface Endpoint {
  host: string;
  port: number;
}

/** The pieces of a `scheme://[user@]host:port/path?query` URL, as written. */
export interface UrlParts {
  role: Role;
  userinfo: string | undefined;
  hostport: string;
  path: string;
  /** Query pairs in the order given, values decoded. */
  query: Array<[string, string]>;
}

export interface TunnelUrl {
  role: 'server' | 'client';
  parts: UrlParts;
  key: string;
  tunnel: Endpoint;
  targets: Endpoint[];
  params: TunnelParams;
}

export interface MasterUrl {
  role: 'master';
  parts: UrlParts;
  listen: Endpoint;
  prefix: string;
  params: { log: LogLevel; tls: 0 | 1 | 2; crt: string; key: string };
}

export type PortholeUrl = TunnelUrl | MasterUrl;

export function formatEndpoint(e: Endpoint): string {
  return isIP(e.host) === 6 ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/** Percent-decodes; `plusIsSpace` for query text (as Go's url.ParseQuery), not for the userinfo. */
function decode(text: string, what: string, plusIsSpace = true): string {
  try {
    return decodeURIComponent(plusIsSpace ? text.replace(/\+/g, ' ') : text);
  } catch {
    throw new ConfigError(`${what}: invalid percent-encoding in "${text}"`, what);
  }
}

export function splitUrl(text: string): UrlParts {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?$/.exec(text.trim());
  if (!m) {
    throw new ConfigError(`invalid URL "${text}" (expected scheme://[key@]host:port/target?params)`, 'url');
  }
  const scheme = (m[1] as string).toLowerCase();
  if (scheme !== 'server' && scheme !== 'client' && scheme !== 'master') {
    throw new ConfigError(`invalid URL scheme "${scheme}" (accepted: server, client, master)`, 'scheme');
  }
  const authority = m[2] as string;
  const at = authority.lastIndexOf('@');
  const query: Array<[string, string]> = [];
  for (const piece of (m[4] ?? '').split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const name = decode(eq < 0 ? piece : piece.slice(0, eq), 'query');
    const value = eq < 0 ? '' : decode(piece.slice(eq + 1), name);
    query.push([name, value]);
  }
  return {
    role: scheme,
    userinfo: at >= 0 ? authority.slice(0, at) : undefined,
    hostport: at >= 0 ? authority.slice(at + 1) : authority,
    path: m[3] as string,
    query,
  };
}

/** Parses `host:port`, `[v6]:port` or `:port` (empty host). */
export function parseEndpoint(text: string, what: string): Endpoint {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') {
      throw new ConfigError(`${what}: invalid address "${text}" (expected [ipv6]:port)`, what);
    }
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (isIP(host) !== 6) throw new ConfigError(`${what}: invalid IPv6 address "${host}"`, what);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw new ConfigError(`${what}: "${text}" has no port (expected host:port)`, what);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) {
      throw new ConfigError(
        `${what}: IPv6 address "${host}" must be written in brackets, e.g. [::1]:${portText}`,
        what,
      );
    }
    if (host !== '' && isIP(host) === 0 && !isHostname(host)) {
      throw new ConfigError(`${what}: invalid host "${host}"`, what);
    }
  }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new ConfigError(`${what}: invalid port "${portText}" in "${text}" (accepted: 1 to 65535)`, what);
  }
  return { host, port };
}

/** Reads the query into raw values per parameter, rejecting unknown, misplaced and repeated parameters. */
function readQuery(parts: UrlParts): Map<ParamName, string> {
  const values = new Map<ParamName, string>();
  for (const [name, value] of parts.query) {
    if (!isParamName(name)) {
      throw new ConfigError(`unknown parameter "${name}" (accepted: ${Object.keys(PARAMS).join(', ')})`, name);
    }
    if (!PARAMS[name].roles.includes(parts.role)) {
      throw new ConfigError(`parameter "${name}" does not apply to ${parts.role}:// URLs`, name);
    }
    if (values.has(name)) throw new ConfigError(`parameter "${name}" is given more than once`, name);
    // An empty value means "default", as in NodePass (dashboards send empty fields).
    if (value !== '') values.set(name, value);
  }
  return values;
}

function parseParams(parts: UrlParts, raw: Map<ParamName, string>, sniDefault: string): TunnelParams {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(PARAMS) as ParamName[]) {
    const spec = PARAMS[name];
    const value = raw.get(name) ?? (name === 'sni' ? sniDefault : spec.default);
    out[name] = value === undefined ? '' : spec.parse(value);
  }
  const params = out as unknown as TunnelParams;
  const tlsApplies = parts.role !== 'client' || params.mode !== 2;
  if (tlsApplies && params.tls === 2 && (params.crt === '' || params.key === '')) {
    throw new ConfigError('tls=2 needs both crt and key (paths to a PEM certificate and its private key)', 'tls');
  }
  if (params.notcp === 1 && params.noudp === 1) {
    throw new ConfigError('notcp=1 and noudp=1 together leave nothing to forward', 'notcp');
  }
  return params;
}

const LOOPBACK = (host: string) =>
  host === 'localhost' || host === '::1' || /^127\./.test(host) || /^::ffff:127\./i.test(host);
const UNSPECIFIED = (host: string) => host === '' || host === '0.0.0.0' || host === '::';

export function parseTunnelUrl(parts: UrlParts): TunnelUrl {
  if (parts.role === 'master') throw new ConfigError('expected a server:// or client:// URL', 'scheme');
  const tunnel = parseEndpoint(parts.hostport, 'tunnel address');
  const targetText = parts.path.replace(/^\//, '');
  if (targetText === '') {
    throw new ConfigError(`target address is required (${parts.role}://host:port/target-host:port)`, 'target');
  }
  const targets = targetText.split(',').map((t) => parseEndpoint(decode(t.trim(), 'target'), 'target address'));
  for (const t of targets) {
    // NodePass's guard (a loopback target, or any target when the tunnel listens on all interfaces), plus a target
    // that names the tunnel address itself.
    const sameHost = t.host === tunnel.host;
    if (t.port === tunnel.port && (LOOPBACK(t.host) || UNSPECIFIED(t.host) || UNSPECIFIED(tunnel.host) || sameHost)) {
      throw new ConfigError(`tunnel port conflicts with target ${formatEndpoint(t)}`, 'target');
    }
  }
  const username = parts.userinfo === undefined ? '' : decode(parts.userinfo.split(':')[0] as string, 'key', false);
  // NodePass hashes the port as written ("01080", not "1080").
  const portText = parts.hostport.slice(parts.hostport.lastIndexOf(':') + 1);
  const sniDefault = isIP(tunnel.host) !== 0 || tunnel.host === '' ? 'none' : tunnel.host;
  return {
    role: parts.role,
    parts,
    key: deriveTunnelKey(username, portText),
    tunnel,
    targets,
    params: parseParams(parts, readQuery(parts), sniDefault),
  };
}

export function parseMasterUrl(parts: UrlParts): MasterUrl {
  if (parts.role !== 'master') throw new ConfigError('expected a master:// URL', 'scheme');
  const listen = parseEndpoint(parts.hostport, 'master address');
  const prefix = parts.path.replace(/\/+$/, '') || '/api';
  if (!/^(\/[A-Za-z0-9._~-]+)+$/.test(prefix)) {
    throw new ConfigError(`invalid API prefix "${parts.path}" (expected a path such as /api)`, 'prefix');
  }
  const raw = readQuery(parts);
  const tunnelLike = parseParams(parts, raw, 'none');
  return {
    role: 'master',
    parts,
    listen,
    prefix,
    params: { log: tunnelLike.log, tls: tunnelLike.tls, crt: tunnelLike.crt, key: tunnelLike.key },
  };
}

/** Parses and fully validates any porthole URL; throws ConfigError with the reason. */
export function parsePortholeUrl(text: string): PortholeUrl {
  const parts = splitUrl(text);
  return parts.role === 'master' ? parseMasterUrl(parts) : parseTunnelUrl(parts);
}

/** Master defaults that an instance URL inherits when it does not set them. */
export interface InheritedSettings {
  log: LogLevel;
  tls: 0 | 1 | 2;
  crt: string;
  key: string;
}

/** Go's url.QueryEscape: everything but A-Z a-z 0-9 - _ . ~ is escaped, space as '+'. */
function goQueryEscape(text: string): string {
  return encodeURIComponent(text)
    .replace(/[!'()*]/g, (c) => `%${(c.charCodeAt(0) as number).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

/** Rebuilds the URL with `query` encoded as Go's url.Values.Encode does (keys sorted, values escaped). */
function serialize(parts: UrlParts, query: Array<[string, string]>): string {
  const sorted = [...query].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const userinfo = parts.userinfo === undefined ? '' : `${parts.userinfo}@`;
  const qs = sorted.map(([k, v]) => `${goQueryEscape(k)}=${goQueryEscape(v)}`).join('&');
  return `${parts.role}://${userinfo}${parts.hostport}${parts.path}${qs === '' ? '' : `?${qs}`}`;
}

/**
 * The instance `url` the NodePass master stores: the submitted URL with the master's `log` added when absent and,
 * for servers, the master's `tls` (when not 0) and `crt`/`key` (tls 2); query keys sorted.
 */
export function canonicalUrl(url: TunnelUrl, inherited: InheritedSettings): string {
  // An empty value counts as absent, as NodePass's `query.Get(k) == ""` does.
  const query = url.parts.query.filter(([, v]) => v !== '');
  const has = (k: string) => query.some(([name]) => name === k);
  if (!has('log')) query.push(['log', inherited.log]);
  if (url.role === 'server' && inherited.tls !== 0 && !has('tls')) {
    query.push(['tls', String(inherited.tls)]);
    if (inherited.tls === 2) {
      if (!has('crt')) query.push(['crt', inherited.crt]);
      if (!has('key')) query.push(['key', inherited.key]);
    }
  }
  return serialize(url.parts, query);
}

/** The instance `config` string: `url` with every default filled in, durations in Go form, keys sorted. */
export function canonicalConfig(url: TunnelUrl): string {
  const given = new Map(url.parts.query.filter(([, v]) => v !== ''));
  const keys = new Set<string>([...CONFIG_KEYS[url.role], ...given.keys()]);
  const query: Array<[string, string]> = [];
  for (const key of keys) {
    if (!isParamName(key)) continue;
    const spec = PARAMS[key];
    const raw = given.get(key) ?? (key === 'sni' ? url.params.sni : spec.default);
    if (raw === undefined) continue;
    query.push([key, spec.canonical(raw)]);
  }
  return serialize(url.parts, query);
}

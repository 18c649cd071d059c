/**
 * The instance form's model: the fields of a `server://` / `client://` URL, and the two directions between fields
 * and URL text. Pure (no DOM), so the round trip with the master's canonical `config` string is unit-tested.
 */
import { PARAM_DOCS, paramDoc, type TunnelRole } from '../../src/config/param-docs.js';

export interface UrlFields {
  role: TunnelRole;
  /** The tunnel key (the URL's user part); '' derives it from the port, as NodePass does. */
  key: string;
  /** Without brackets; '' = all interfaces (listening) or this host (dialing). */
  tunnelHost: string;
  tunnelPort: string;
  /** Comma-separated `host:port` list. */
  targets: string;
  /** Only parameters with a value; an absent one takes its default. */
  params: Record<string, string>;
}

export function emptyFields(role: TunnelRole = 'client'): UrlFields {
  return { role, key: '', tunnelHost: '', tunnelPort: '', targets: '', params: {} };
}

/** Go's url.QueryEscape, as the master writes `url` and `config`: so a rebuilt config string is byte-identical. */
export function queryEscape(text: string): string {
  return encodeURIComponent(text)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

function hostPart(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** The URL text for `fields`; parameters sorted by name (as the master stores them), empty ones left out. */
export function buildUrl(fields: UrlFields): string {
  const user = fields.key === '' ? '' : `${encodeURIComponent(fields.key)}@`;
  const targets = fields.targets
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')
    .join(',');
  const query = Object.entries(fields.params)
    .filter(([, v]) => v.trim() !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${queryEscape(k)}=${queryEscape(v.trim())}`)
    .join('&');
  const tunnel = `${hostPart(fields.tunnelHost.trim())}:${fields.tunnelPort.trim()}`;
  return `${fields.role}://${user}${tunnel}/${targets}${query === '' ? '' : `?${query}`}`;
}

export class UrlParseError extends Error {
  override name = 'UrlParseError';
  constructor(
    message: string,
    /** The form field the problem belongs to (see fieldOfError). */
    readonly field: string,
  ) {
    super(message);
  }
}

function decodeQuery(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    throw new UrlParseError(`invalid percent-encoding in "${text}"`, 'url');
  }
}

/**
 * Reads a pasted URL (or an instance's `url` / `config`) into fields. Checks the shape and the parameter names; the
 * values are the master's to judge (its 400 answer is shown beside the field).
 */
export function parseUrl(text: string): UrlFields {
  const m = /^(server|client):\/\/([^/?#]*)\/?([^?#]*)(?:\?([^#]*))?$/i.exec(text.trim());
  if (!m) {
    throw new UrlParseError('expected server://[key@]host:port/target-host:port?params or client://…', 'url');
  }
  const role = (m[1] as string).toLowerCase() as TunnelRole;
  const authority = m[2] as string;
  const at = authority.lastIndexOf('@');
  let key = '';
  if (at >= 0) {
    try {
      key = decodeURIComponent(authority.slice(0, at));
    } catch {
      throw new UrlParseError('invalid percent-encoding in the key', 'key');
    }
  }
  const hostport = at >= 0 ? authority.slice(at + 1) : authority;
  const colon = hostport.lastIndexOf(':');
  if (colon < 0) throw new UrlParseError(`tunnel address "${hostport}" has no port`, 'tunnelPort');
  let tunnelHost = hostport.slice(0, colon);
  if (tunnelHost.startsWith('[') && tunnelHost.endsWith(']')) tunnelHost = tunnelHost.slice(1, -1);
  const params: Record<string, string> = {};
  for (const piece of (m[4] ?? '').split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const name = decodeQuery(eq < 0 ? piece : piece.slice(0, eq));
    if (!paramDoc(name)) throw new UrlParseError(`unknown parameter "${name}"`, 'url');
    const value = eq < 0 ? '' : decodeQuery(piece.slice(eq + 1));
    if (value !== '') params[name] = value;
  }
  return {
    role,
    key,
    tunnelHost,
    tunnelPort: hostport.slice(colon + 1),
    targets: decodeQuery(m[3] as string),
    params,
  };
}

/** Parameters that matter for `role` (the form hides the others), in the catalogue's order. */
export function paramsFor(role: TunnelRole) {
  return PARAM_DOCS.filter((p) => p.roles.includes(role));
}

/**
 * The form field an error of the master's URL validation belongs to: a parameter name, `tunnelHost`, `tunnelPort`,
 * `targets`, `key`, or `url` (the whole URL) when the message names no field.
 */
export function fieldOfError(message: string): string {
  const text = message.replace(/^Invalid URL:\s*/, '');
  if (/^tunnel address/i.test(text)) return /has no port|invalid port/.test(text) ? 'tunnelPort' : 'tunnelHost';
  if (/^target address|^tunnel port conflicts with target/i.test(text)) return 'targets';
  if (/^key:/.test(text)) return 'key';
  if (/^tls=2 needs/.test(text)) return 'crt';
  if (/^notcp=1 and noudp=1/.test(text)) return 'notcp';
  const param = /^parameter "([a-z]+)"/.exec(text)?.[1] ?? /^([a-z]+): /.exec(text)?.[1];
  if (param && paramDoc(param)) return param;
  return 'url';
}

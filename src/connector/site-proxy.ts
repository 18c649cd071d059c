import {
  createServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { Logger } from '../common/logger.js';
import type { Http } from '../hub/rules.js';
import { normalizeDomain } from '../hub/sites.js';

/** Who a stream from the hub is for: the site (domain the hub routed by), the client, and the scheme it used. */
export interface StreamContext {
  domain: string;
  client: string;
  proto: 'http' | 'https';
}

/** Headers that describe one connection, not the message: never forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Client-supplied fields an upstream may read as what a proxy vouches for: dropped, so only ours arrive. Underscore
 * spellings too: CGI-style servers map `X_Forwarded_For` to the same variable as `X-Forwarded-For`.
 */
const FORWARDING_FIELDS = new Set([
  'forwarded',
  'x-real-ip',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
]);

/** Whether a request field (lower-case name) is one of those, in any spelling. */
export function isForwardingField(lowerName: string): boolean {
  return FORWARDING_FIELDS.has(lowerName.includes('_') ? lowerName.replaceAll('_', '-') : lowerName);
}

/**
 * The hub routes a connection by its first request: a later one naming another site would reach this one's upstream
 * without that site's password or firewall (RFC 9110 §15.5.20: 421). A request without Host (HTTP/1.0) is this site's.
 */
export function misdirected(host: string | undefined, ctx: StreamContext): boolean {
  return host !== undefined && normalizeDomain(host) !== normalizeDomain(ctx.domain);
}

interface Upstream {
  secure: boolean;
  host: string;
  port: number;
  /** upstreamURL's path, prefixed to every request path ('' for none). */
  base: string;
}

export function upstreamOf(site: Http): Upstream | undefined {
  if (site.upstreamURL) {
    const url = new URL(site.upstreamURL);
    const secure = url.protocol === 'https:';
    return {
      secure,
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port) || (secure ? 443 : 80),
      base: url.pathname === '/' ? '' : url.pathname.replace(/\/$/, ''),
    };
  }
  if (site.destination && site.port) return { secure: false, host: site.destination, port: site.port, base: '' };
  return undefined;
}

/** The request headers for the upstream: hop-by-hop ones dropped, Host rewritten, X-Forwarded-* added. */
export function forwardHeaders(
  req: IncomingMessage,
  site: Http,
  ctx: StreamContext,
): Record<string, string | string[]> {
  const connectionTokens = new Set(
    String(req.headers.connection ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase()),
  );
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || connectionTokens.has(name)) continue;
    // The client's own Forwarded / X-Real-IP / X-Forwarded-* (any spelling) would pass for ours.
    if (isForwardingField(name)) continue;
    headers[name] = value;
  }
  const host = req.headers.host ?? ctx.domain;
  if (site.rewriteHost) headers.host = site.rewriteHost;
  const prior = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = prior ? `${String(prior)}, ${ctx.client}` : ctx.client;
  headers['x-forwarded-proto'] = ctx.proto;
  headers['x-forwarded-host'] = host;
  return headers;
}

/**
 * Reverse proxy of one connector's sites: streams from the hub are handed to an HTTP server that listens on no port
 * (node:http parses, keeps connections alive and pipelines), and each request is forwarded to the site's upstream
 * over keep-alive agents. Bodies stream both ways with backpressure; WebSocket (and any) upgrades become a raw
 * byte relay after the upstream's 101.
 */
export class SiteProxy {
  readonly server: Server;
  private readonly contexts = new WeakMap<Duplex, StreamContext>();
  private readonly httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 256 });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 256 });
  private readonly insecureAgent = new HttpsAgent({ keepAlive: true, maxSockets: 256, rejectUnauthorized: false });

  constructor(
    private readonly siteOf: (domain: string) => Http | undefined,
    private readonly logger: Logger,
    /** Requests the proxy does not forward (static files, redirects, auth): true when handled. */
    private readonly before: (req: IncomingMessage, res: ServerResponse, site: Http, ctx: StreamContext) => boolean,
  ) {
    this.server = createServer({ keepAliveTimeout: 60_000 } as object, (req, res) => this.onRequest(req, res));
    this.server.keepAliveTimeout = 60_000;
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.onUpgrade(req, socket, head),
    );
    this.server.on('clientError', (_err, socket: Duplex) => {
      if ((socket as Socket).writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  /** Serves HTTP on a stream (the hub's, or a TLS socket terminated on it). */
  serve(stream: Duplex, ctx: StreamContext): void {
    this.contexts.set(stream, ctx);
    this.server.emit('connection', stream);
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.insecureAgent.destroy();
  }

  private context(req: IncomingMessage): StreamContext | undefined {
    return this.contexts.get(req.socket);
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const ctx = this.context(req);
    const site = ctx ? this.siteOf(ctx.domain) : undefined;
    if (!ctx || !site) {
      simple(res, 404, `No site ${ctx?.domain ?? ''} on this connector.`);
      return;
    }
    if (misdirected(req.headers.host, ctx)) {
      simple(res, 421, `This connection is for ${ctx.domain}.`, { connection: 'close' });
      return;
    }
    if (this.before(req, res, site, ctx)) return;
    const upstream = upstreamOf(site);
    if (!upstream) {
      simple(res, 404, 'Not found.');
      return;
    }
    const options = {
      host: upstream.host,
      port: upstream.port,
      method: req.method,
      path: upstream.base + (req.url ?? '/'),
      headers: forwardHeaders(req, site, ctx),
      agent: upstream.secure ? (site.insecureUpstream ? this.insecureAgent : this.httpsAgent) : this.httpAgent,
      ...(upstream.secure ? { servername: site.rewriteHost || upstream.host } : {}),
    };
    const outgoing = (upstream.secure ? httpsRequest : httpRequest)(options, (answer) => {
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(answer.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
      }
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, headers);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    outgoing.on('error', (err) => {
      this.logger.warn(`site ${site.domain}: upstream ${upstream.host}:${upstream.port}: ${err.message}`);
      if (!res.headersSent) simple(res, 502, 'The site\u2019s upstream did not answer.');
      else res.destroy();
    });
    // The client left mid-request: stop the upstream request too.
    res.on('close', () => {
      if (!res.writableFinished) outgoing.destroy();
    });
    req.pipe(outgoing);
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const ctx = this.context(req);
    const site = ctx ? this.siteOf(ctx.domain) : undefined;
    const upstream = site ? upstreamOf(site) : undefined;
    if (!ctx || !site || !upstream) {
      socket.end('HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (misdirected(req.headers.host, ctx)) {
      socket.end('HTTP/1.1 421 Misdirected Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const headers = forwardHeaders(req, site, ctx);
    // An upgrade keeps its Connection/Upgrade pair.
    headers.connection = 'Upgrade';
    if (req.headers.upgrade) headers.upgrade = req.headers.upgrade;
    let text = `${req.method} ${upstream.base}${req.url} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(headers)) {
      for (const v of Array.isArray(value) ? value : [value]) text += `${name}: ${v}\r\n`;
    }
    text += '\r\n';
    const target = upstream.secure
      ? tlsConnect({
          host: upstream.host,
          port: upstream.port,
          servername: site.rewriteHost || upstream.host,
          rejectUnauthorized: !site.insecureUpstream,
        })
      : netConnect({ host: upstream.host, port: upstream.port });
    target.once('error', (err) => {
      this.logger.warn(`site ${site.domain}: upgrade to ${upstream.host}:${upstream.port}: ${err.message}`);
      socket.destroy();
    });
    target.once(upstream.secure ? 'secureConnect' : 'connect', () => {
      target.setNoDelay(true);
      target.write(text);
      if (head.length > 0) target.write(head);
      target.pipe(socket);
      socket.pipe(target);
      socket.once('close', () => target.destroy());
      target.once('close', () => socket.destroy());
    });
  }
}

export function simple(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  const body = `${message}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

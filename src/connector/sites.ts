import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { Logger } from '../common/logger.js';
import type { MessageOf } from '../hub/protocol.js';
import type { Http } from '../hub/rules.js';
import { Relay } from '../tunnel/relay.js';
import type { AcmeCertificates } from './acme-certificates.js';
import { guard } from './site-auth.js';
import { ForwardedConnection, type ForwarderHooks, isForwardable } from './site-forwarder.js';
import { SiteProxy, type StreamContext, simple } from './site-proxy.js';
import { SiteCertificates } from './site-tls.js';
import { serveStatic } from './static-files.js';
import type { StreamCounters } from './streams.js';

const DIAL_TIMEOUT = 10_000;
const ACME_CHALLENGE = '/.well-known/acme-challenge/';
/** PORTHOLE_SITE_FORWARDER=0 serves every site through node:http (to compare, or to rule the fast path out). */
const FORWARDER = process.env.PORTHOLE_SITE_FORWARDER !== '0';
/** Forwarded connections per site; more go to node:http, whose agent keeps at most 256 upstream connections. */
const MAX_FORWARDED = 256;

/**
 * The connector's side of HTTP/HTTPS sites: streams of kind `http` (plain HTTP the hub routed by Host) and
 * `https-sni` (still-encrypted TLS the hub routed by SNI). TLS ends here with the site's certificate (`secure`), or
 * is passed through untouched to `destination:tls`.
 */
export class SiteStreams {
  readonly proxy: SiteProxy;
  readonly certificates: SiteCertificates;
  private readonly forwarderHooks: ForwarderHooks;
  /** Live forwarded connections per site (each holds at most one upstream connection). */
  private readonly forwarded = new Map<string, number>();

  constructor(
    private readonly sites: () => Http[],
    private readonly logger: Logger,
    /** Keys the login cookies of password-protected sites (the tunnel secret). */
    private readonly secret: string,
    acme: AcmeCertificates,
    private readonly counters: StreamCounters,
  ) {
    this.certificates = new SiteCertificates(logger, acme);
    this.proxy = new SiteProxy(
      (domain) => this.find(domain),
      logger,
      (req, res, site, ctx) => this.before(req, res, site, ctx),
    );
    this.forwarderHooks = {
      site: (domain) => this.find(domain),
      // A challenge of ours is answered by the full proxy; other tokens go on to the upstream like any request.
      needsProxy: (site, ctx, head) =>
        ctx.proto === 'http' &&
        head.target.startsWith(ACME_CHALLENGE) &&
        this.certificates.acme.challengeResponse(site.domain, head.target.slice(ACME_CHALLENGE.length)) !== undefined,
      handOver: (client, ctx) => this.proxy.serve(client, ctx),
    };
  }

  /**
   * Serves an HTTP connection: plain proxy sites on the forwarder (bytes passed through, heads rewritten), the rest
   * (static files, redirects, auth, a removed site's 404) on node:http.
   */
  private serveHttp(stream: Duplex, site: Http | undefined, ctx: StreamContext): void {
    const domain = ctx.domain.toLowerCase();
    const forwarded = this.forwarded.get(domain) ?? 0;
    if (FORWARDER && site && isForwardable(site, ctx.proto) && forwarded < MAX_FORWARDED) {
      // Each forwarded connection may hold an upstream connection: past the cap, node:http's pooled agent serves.
      this.forwarded.set(domain, forwarded + 1);
      stream.once('close', () => {
        const n = (this.forwarded.get(domain) ?? 1) - 1;
        if (n > 0) this.forwarded.set(domain, n);
        else this.forwarded.delete(domain);
      });
      new ForwardedConnection(stream, ctx, site, this.forwarderHooks, this.logger);
    } else this.proxy.serve(stream, ctx);
  }

  find(domain: string): Http | undefined {
    const d = domain.toLowerCase();
    return this.sites().find((s) => s.domain.toLowerCase() === d);
  }

  /**
   * Adds a served connection to the traffic counters when it closes (node:http and TLS own its reads and writes,
   * so its totals are taken then; TLS ones count the plaintext).
   */
  private count(stream: Duplex & { bytesRead?: number; bytesWritten?: number }): void {
    this.counters.httpStreams++;
    stream.once('close', () => {
      this.counters.bytesIn += stream.bytesRead ?? 0;
      this.counters.bytesOut += stream.bytesWritten ?? 0;
    });
  }

  /** A site stream from the hub: a socket, or a stream over a WebSocket hub link (which counts bytes alike). */
  serve(open: MessageOf<'open'>, socket: Duplex): void {
    socket.on('error', () => {});
    const domain = typeof open.domain === 'string' ? open.domain : '';
    const site = this.find(domain);
    const client = typeof open.client?.address === 'string' ? open.client.address : '';
    if (open.kind === 'http') {
      this.count(socket);
      // A site removed a moment ago may still be routed here until the hub has our new claims: the proxy answers 404.
      this.serveHttp(socket, site, { domain: site?.domain ?? domain, client, proto: 'http' });
      return;
    }
    if (!site) {
      this.logger.warn(`TLS stream for site "${domain}": no such site here; closed`);
      socket.destroy();
      return;
    }
    if (site.tls && site.destination) {
      this.passThrough(socket, site.destination, site.tls);
      return;
    }
    if (!site.secure) {
      this.logger.warn(`site ${site.domain}: an HTTPS connection, but the site is not secure; closed`);
      socket.destroy();
      return;
    }
    this.certificates.context(site).then(
      (secureContext) => {
        const tls = new TLSSocket(socket, { isServer: true, secureContext, ALPNProtocols: ['http/1.1'] });
        tls.on('error', (err) => this.logger.debug(`site ${site.domain}: TLS: ${err.message}`));
        this.count(tls);
        this.serveHttp(tls, site, { domain: site.domain, client, proto: 'https' });
      },
      (err: Error) => {
        this.logger.error(err.message);
        socket.destroy();
      },
    );
  }

  /** `tls: <port>`: the client's TLS goes to the destination untouched (it holds the certificate). */
  private passThrough(socket: Duplex, host: string, port: number): void {
    const target = connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => target.destroy(new Error(`no answer within ${DIAL_TIMEOUT}ms`)), DIAL_TIMEOUT);
    target.once('error', (err) => {
      clearTimeout(timer);
      this.logger.warn(`TLS pass-through to ${host}:${port}: ${err.message}`);
      socket.destroy();
    });
    target.once('connect', () => {
      clearTimeout(timer);
      target.removeAllListeners('error');
      this.counters.httpStreams++;
      const up = {
        bucket: undefined,
        count: (n: number) => {
          this.counters.bytesIn += n;
        },
      };
      const down = {
        bucket: undefined,
        count: (n: number) => {
          this.counters.bytesOut += n;
        },
      };
      const relay = new Relay(socket, target, { up, down, idleTimeout: 0 });
      relay.startUp();
      relay.startDown();
    });
  }

  /**
   * Answers that need no upstream, in order: a pending ACME HTTP-01 challenge, HTTP→HTTPS redirect, redirectURL,
   * basic auth / password, webRoot. True when the request was answered here.
   */
  private before(req: IncomingMessage, res: ServerResponse, site: Http, ctx: StreamContext): boolean {
    if (this.answerChallenge(req, res, site)) return true;
    if (site.redirect && ctx.proto === 'http') {
      const host = req.headers.host ?? site.domain;
      simple(res, 301, 'Moved to HTTPS.', { location: `https://${host.replace(/:\d+$/, '')}${req.url ?? '/'}` });
      return true;
    }
    if (site.redirectURL) {
      simple(res, 302, `Moved to ${site.redirectURL}.`, { location: site.redirectURL });
      return true;
    }
    if (guard(req, res, site, this.secret, ctx.proto === 'https')) return true;
    if (site.webRoot) {
      serveStatic(req, res, site.webRoot).catch((err: Error) => {
        this.logger.warn(`site ${site.domain}: ${err.message}`);
        if (!res.headersSent) simple(res, 500, 'Internal error.');
        else res.destroy();
      });
      return true;
    }
    return false;
  }

  /**
   * The CA fetches `http://<domain>/.well-known/acme-challenge/<token>` through the hub like any request; it is
   * answered before redirects and auth would turn it away. Tokens this connector did not ask for go on to the site
   * (its upstream may run its own ACME client).
   */
  private answerChallenge(req: IncomingMessage, res: ServerResponse, site: Http): boolean {
    const url = req.url ?? '';
    if (!url.startsWith(ACME_CHALLENGE) || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    const token = url.slice(ACME_CHALLENGE.length);
    const answer = this.certificates.acme.challengeResponse(site.domain, token);
    if (answer === undefined) return false;
    this.logger.info(`site ${site.domain}: answered the ACME HTTP-01 challenge (token ${token})`);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(answer) });
    res.end(req.method === 'HEAD' ? undefined : answer);
    return true;
  }
}

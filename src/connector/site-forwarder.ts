import { isIP, connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import type { Logger } from '../common/logger.js';
import type { Http } from '../hub/rules.js';
import { BodyScanner } from './http1-body.js';
import {
  fieldTokens,
  fieldValues,
  HttpMessageError,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  requestFraming,
  responseFraming,
} from './http1-head.js';
import { type StreamContext, upstreamOf } from './site-proxy.js';

/** An idle keep-alive connection (no request in flight) is closed after this long, as node:http's keepAliveTimeout. */
const IDLE_TIMEOUT = 60_000;
/** How long a connection we ended waits for the client's FIN before it is closed anyway. */
const LINGER = 5_000;
/** Requests forwarded ahead of their responses (pipelining) before the client is no longer read. */
const MAX_PIPELINE = 64;
const EMPTY = Buffer.alloc(0);

/** Request fields meant for us as a proxy, never forwarded. */
const PROXY_FIELDS = new Set(['proxy-connection', 'proxy-authorization', 'proxy-authenticate']);
/** Fields the message's framing and routing rest on: a Connection option may not name them (RFC 9110 §7.6.1). */
const MESSAGE_FIELDS = new Set(['content-length', 'transfer-encoding', 'host']);
/** Connection options that keep their meaning on the 1:1 upstream connection; other tokens name fields to drop. */
const CONNECTION_OPTIONS = new Set(['close', 'keep-alive', 'upgrade']);

/** The settings a forwarded connection is bound to: a change of any of them hands it to the full proxy. */
const UPSTREAM_FIELDS = ['destination', 'port', 'upstreamURL', 'rewriteHost', 'insecureUpstream'] as const;

export interface ForwarderHooks {
  /** The site a domain is served by now (sites change while connections live). */
  site(domain: string): Http | undefined;
  /** True when a request needs the full proxy (an ACME challenge, say) although the site is forwardable. */
  needsProxy(site: Http, ctx: StreamContext, head: RequestHead): boolean;
  /** Takes over a connection the forwarder gives up (unread bytes already unshifted onto it). */
  handOver(client: Duplex, ctx: StreamContext): void;
}

/**
 * True when every request of a site is a plain forward to its upstream, so the forwarder may serve it: nothing is
 * answered here (static files, redirects, auth pages), only headers are added.
 */
export function isForwardable(site: Http, proto: 'http' | 'https'): boolean {
  return (
    upstreamOf(site) !== undefined &&
    !site.webRoot &&
    !site.basicHttpAuth &&
    !site.password &&
    !site.redirectURL &&
    !(site.redirect && proto === 'http')
  );
}

interface InFlight {
  method: string;
  upgrade: boolean;
}

/**
 * The fast path of plain proxy sites: one client connection ↔ one upstream connection, bytes passed through as they
 * arrive. Only request heads are rewritten (X-Forwarded-*, Host for rewriteHost, upstreamURL's path, Connection
 * options); bodies and responses are not parsed into objects or copied, only scanned for where each message ends, so
 * that responses pair with requests (pipelining, HEAD, 1xx, upgrades) and errors can be answered between them.
 * node:http's parse-and-reissue cost the connector ~3/4 of a request's CPU (bench:sites); this does not.
 *
 * Requests it cannot vouch for never reach the upstream: ambiguous framing (RFC 9112 §6.3) gets 400 once the
 * responses before it are out, then the connection closes. When the site stops being forwardable (auth added, say)
 * or a request needs the full proxy, the connection is handed to it between responses with no byte lost.
 */
export class ForwardedConnection {
  private readonly upstream: Socket;
  /** Client bytes not yet forwarded: an incomplete head, or what waits while reading is held. */
  private pending: Buffer = EMPTY;
  private requestBody: BodyScanner | undefined;
  private readonly inFlight: InFlight[] = [];
  /** Upstream bytes of an incomplete response head. */
  private responsePending: Buffer = EMPTY;
  private responseBody: BodyScanner | undefined;
  /** Responses the upstream has completed on this connection. */
  private served = 0;
  /** Bytes of the current response already sent to the client. */
  private responseStarted = false;
  /** Client input waits (an upgrade's answer, a hand-over or an error after the responses in flight). */
  private holding = false;
  private whenIdle: (() => void) | undefined;
  private upstreamFull = false;
  private tunnel = false;
  private done = false;
  /** The client sent its FIN: the upstream gets one too once everything before it is forwarded. */
  private clientEnded = false;

  constructor(
    private readonly client: Duplex,
    private readonly ctx: StreamContext,
    private site: Http,
    private readonly hooks: ForwarderHooks,
    private readonly logger: Logger,
  ) {
    const upstream = upstreamOf(site);
    if (!upstream) throw new Error(`site ${site.domain} has no upstream`);
    const servername = site.rewriteHost || upstream.host;
    this.upstream = upstream.secure
      ? tlsConnect({
          host: upstream.host,
          port: upstream.port,
          ...(isIP(servername) ? {} : { servername }),
          rejectUnauthorized: !site.insecureUpstream,
          ALPNProtocols: ['http/1.1'],
          allowHalfOpen: true,
        } as ConnectionOptions)
      : netConnect({ host: upstream.host, port: upstream.port, allowHalfOpen: true });
    this.upstream.setNoDelay(true);
    this.upstream.setTimeout(IDLE_TIMEOUT);
    this.upstream.on('timeout', () => {
      // Only an idle keep-alive connection times out; a slow response (long poll) does not.
      if (this.inFlight.length === 0 && !this.requestBody) this.destroy();
    });
    this.upstream.on('data', this.onUpstreamData);
    this.upstream.on('drain', () => {
      this.upstreamFull = false;
      this.updateFlow();
    });
    this.upstream.on('end', this.onUpstreamEnd);
    this.upstream.on('error', (err) => this.upstreamGone(err));
    this.upstream.on('close', () => this.upstreamGone());
    client.on('data', this.onClientData);
    client.on('end', this.onClientEnd);
    client.on('close', this.onClientClose);
    client.on('drain', this.onClientDrain);
  }

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.done) return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    if (!this.holding) this.forwardRequests();
  };

  private readonly onClientEnd = (): void => {
    // Half-close: the upstream still answers what it has (an unfinished head is dropped); held bytes go first.
    this.clientEnded = true;
    if (!this.holding) this.upstream.end();
  };

  private readonly onClientClose = (): void => {
    this.done = true;
    this.upstream.destroy();
  };

  private readonly onClientDrain = (): void => {
    this.upstream.resume();
  };

  /** Forwards every complete request in `pending`, rewriting heads, until it runs out or must hold. */
  private forwardRequests(): void {
    this.upstream.cork();
    try {
      while (!this.holding && this.pending.length > 0) {
        if (this.requestBody) {
          const end = this.requestBody.scan(this.pending, 0);
          if (end < 0) {
            this.writeUpstream(this.pending);
            this.pending = EMPTY;
            break;
          }
          this.writeUpstream(this.pending.subarray(0, end));
          this.pending = this.pending.subarray(end);
          this.requestBody = undefined;
          // An upgrade: nothing after it is HTTP until its answer says whether it switched protocols.
          if (this.inFlight.at(-1)?.upgrade) this.holding = true;
          continue;
        }
        const head = parseRequestHead(this.pending, 0);
        if (!head) break;
        if (!this.stillForwardable() || this.hooks.needsProxy(this.site, this.ctx, head)) {
          this.holding = true;
          this.whenIdleThen(() => this.handOver());
          break;
        }
        if (head.method === 'CONNECT') throw new HttpMessageError(405, 'CONNECT is not served by sites');
        const framing = requestFraming(head);
        const upgrade = fieldValues(head, 'upgrade').length > 0 && fieldTokens(head, 'connection').includes('upgrade');
        this.writeUpstream(this.rewriteHead(head), 'latin1');
        this.pending = this.pending.subarray(head.length);
        this.inFlight.push({ method: head.method, upgrade });
        if (framing.kind !== 'none') this.requestBody = new BodyScanner(framing);
        else if (upgrade) this.holding = true;
      }
    } catch (err) {
      if (!(err instanceof HttpMessageError)) throw err;
      this.refuse(err);
    } finally {
      this.upstream.uncork();
    }
    if (this.clientEnded && !this.holding && !this.done) this.upstream.end();
    this.updateFlow();
  }

  /**
   * Whether the site, as configured now, is still a plain proxy to the same upstream. A config change elsewhere may
   * give it a new object with the same settings: the connection then goes on here.
   */
  private stillForwardable(): boolean {
    const now = this.hooks.site(this.ctx.domain);
    if (now === this.site) return true;
    if (!now || !isForwardable(now, this.ctx.proto)) return false;
    const same = UPSTREAM_FIELDS.every((k) => now[k] === this.site[k]);
    if (same) this.site = now;
    return same;
  }

  /** A request we will not forward: answered (once the responses before it are out) and the connection closed. */
  private refuse(err: HttpMessageError): void {
    this.logger.debug(`site ${this.ctx.domain}: request refused (${err.status}): ${err.message}`);
    this.pending = EMPTY;
    if (this.requestBody) {
      // Half of the body is already upstream: no answer can follow it cleanly.
      this.destroy();
      return;
    }
    this.holding = true;
    this.whenIdleThen(() => {
      this.finishWith(err.status, err.message);
    });
  }

  /** Answers the client with a short error response (nothing of another response is pending) and closes. */
  private finishWith(status: number, message: string): void {
    const reason = REASONS[status] ?? 'Error';
    const body = `${message}\n`;
    this.upstream.destroy();
    this.client.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    this.linger();
  }

  /**
   * Ends the connection from our side and keeps reading (and dropping) what the client still sends until it closes
   * too: closing with unread bytes would reset the connection and could take the last response with it.
   */
  private linger(): void {
    this.done = true;
    this.client.resume();
    this.client.once('end', () => this.client.destroy());
    setTimeout(() => this.client.destroy(), LINGER).unref();
  }

  private rewriteHead(head: RequestHead): string {
    const { site, ctx } = this;
    const dropped = new Set<string>();
    const kept: string[] = [];
    for (const token of fieldTokens(head, 'connection')) {
      if (CONNECTION_OPTIONS.has(token)) kept.push(token);
      else if (MESSAGE_FIELDS.has(token)) {
        // Dropping one would change how the upstream reads the message (its length, its target) from how we did.
        throw new HttpMessageError(400, `Connection names the ${token} field`);
      } else dropped.add(token);
    }
    let target = head.target;
    const absolute = /^https?:\/\/[^/?#]*(.*)$/i.exec(target);
    if (absolute) target = absolute[1] || '/';
    const base = upstreamOf(site)?.base ?? '';
    if (base && target.startsWith('/')) target = base + target;
    let text = `${head.method} ${target} HTTP/1.${head.minor}\r\n`;
    let host: string | undefined;
    let forwardedFor = '';
    for (const [name, value] of head.headers) {
      const lower = name.toLowerCase();
      if (lower === 'x-forwarded-for') {
        forwardedFor = forwardedFor ? `${forwardedFor}, ${value}` : value;
        continue;
      }
      if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-host') continue;
      if (PROXY_FIELDS.has(lower) || dropped.has(lower)) continue;
      if (lower === 'connection') {
        if (kept.length > 0) text += `Connection: ${kept.join(', ')}\r\n`;
        continue;
      }
      if (lower === 'host') {
        if (host !== undefined) throw new HttpMessageError(400, 'more than one Host header');
        host = value;
        text += `Host: ${site.rewriteHost || value}\r\n`;
        continue;
      }
      text += `${name}: ${value}\r\n`;
    }
    if (host === undefined) {
      if (head.minor === 1) throw new HttpMessageError(400, 'an HTTP/1.1 request without Host');
      if (site.rewriteHost) text += `Host: ${site.rewriteHost}\r\n`;
    }
    text += `X-Forwarded-For: ${forwardedFor ? `${forwardedFor}, ${ctx.client}` : ctx.client}\r\n`;
    text += `X-Forwarded-Proto: ${ctx.proto}\r\nX-Forwarded-Host: ${host ?? ctx.domain}\r\n\r\n`;
    return text;
  }

  private readonly onUpstreamEnd = (): void => this.upstreamGone();

  private readonly onUpstreamData = (chunk: Buffer): void => {
    if (this.tunnel) return;
    let data = this.responsePending.length === 0 ? chunk : Buffer.concat([this.responsePending, chunk]);
    this.responsePending = EMPTY;
    let from = 0;
    try {
      while (from < data.length) {
        if (this.responseBody) {
          const end = this.responseBody.scan(data, from);
          if (end < 0) {
            from = data.length;
            break;
          }
          from = end;
          this.responseBody = undefined;
          this.responseDone();
          continue;
        }
        const request = this.inFlight[0];
        if (!request) {
          // Bytes nobody asked for (an upstream's 408 on an idle connection, say): passed on, then the connection ends.
          this.writeClient(data);
          this.endClient();
          return;
        }
        const head = parseResponseHead(data, from);
        if (!head) {
          this.responsePending = data.subarray(from);
          data = data.subarray(0, from);
          break;
        }
        from += head.length;
        this.responseStarted = true;
        if (head.status === 101 && request.upgrade) {
          this.writeClient(data);
          this.inFlight.shift();
          this.startTunnel();
          return;
        }
        if (head.status < 200) continue; // 100 Continue and other interim answers precede the final one.
        const framing = responseFraming(head, request.method);
        if (request.upgrade) {
          // Upgrade declined: the client's next bytes are requests again (with their own X-Forwarded-*).
          request.upgrade = false;
          this.holding = false;
          setImmediate(() => this.resumeRequests());
        }
        if (framing.kind === 'none') this.responseDone();
        else this.responseBody = new BodyScanner(framing);
      }
    } catch (err) {
      if (!(err instanceof HttpMessageError)) throw err;
      this.logger.warn(`site ${this.ctx.domain}: ${err.message}`);
      if (this.responseStarted) this.destroy();
      else {
        if (from > 0) this.writeClient(data.subarray(0, from));
        this.finishWith(502, err.message);
      }
      return;
    }
    if (data.length > 0) this.writeClient(data);
  };

  private responseDone(): void {
    this.inFlight.shift();
    this.served++;
    this.responseStarted = false;
    if (this.inFlight.length === 0 && this.whenIdle) {
      const then = this.whenIdle;
      this.whenIdle = undefined;
      setImmediate(then);
    } else if (this.inFlight.length === MAX_PIPELINE - 1) this.updateFlow();
  }

  /**
   * The upstream connection ended (FIN, error or close) while the client's is still ours: what the client gets
   * depends on where the exchange stood.
   */
  private upstreamGone(err?: Error): void {
    if (this.done) return;
    if (err) this.logger.warn(`site ${this.ctx.domain}: upstream: ${err.message}`);
    if (this.tunnel) {
      if (err) this.destroy();
      return;
    }
    if (this.responseBody?.closeDelimited && !err) {
      // That response ends here; requests pipelined behind it go unanswered (the client retries them).
      this.endClient();
    } else if (this.inFlight.length === 0) {
      this.endClient(); // an idle keep-alive connection the upstream closed: the client's closes alike
    } else if (this.responseStarted) {
      this.destroy(); // cut off mid-response: the client must see it was truncated
    } else if (this.served === 0) {
      this.finishWith(502, 'The site\u2019s upstream did not answer.');
    } else {
      // The upstream closed a reused connection as a request arrived (its keep-alive timeout): close the client's
      // without an answer, as the upstream did, so that it retries on a new connection rather than see a 502.
      this.endClient();
    }
  }

  private endClient(): void {
    this.upstream.destroy();
    this.client.end();
    this.linger();
  }

  /** After a 101: both ways are raw bytes from here on. */
  private startTunnel(): void {
    this.tunnel = true;
    this.holding = false;
    this.upstream.setTimeout(0);
    this.upstream.removeListener('data', this.onUpstreamData);
    this.upstream.removeListener('end', this.onUpstreamEnd);
    this.client.removeListener('data', this.onClientData);
    this.client.removeListener('end', this.onClientEnd);
    this.client.removeListener('drain', this.onClientDrain);
    if (this.pending.length > 0) this.upstream.write(this.pending);
    this.pending = EMPTY;
    this.upstream.pipe(this.client);
    if (this.clientEnded) this.upstream.end();
    else this.client.pipe(this.upstream);
    this.upstream.resume();
  }

  private handOver(): void {
    if (this.done) return;
    this.done = true;
    this.client.removeListener('data', this.onClientData);
    this.client.removeListener('end', this.onClientEnd);
    this.client.removeListener('close', this.onClientClose);
    this.client.removeListener('drain', this.onClientDrain);
    this.client.pause();
    if (this.pending.length > 0) this.client.unshift(this.pending);
    this.pending = EMPTY;
    this.upstream.destroy();
    this.hooks.handOver(this.client, this.ctx);
    // node:http reads the socket's handle directly; what was unshifted flows only once the stream is resumed.
    this.client.resume();
  }

  private resumeRequests(): void {
    if (!this.holding && !this.done) this.forwardRequests();
  }

  private whenIdleThen(then: () => void): void {
    if (this.inFlight.length === 0) setImmediate(then);
    else this.whenIdle = then;
  }

  private writeUpstream(data: Buffer | string, encoding?: BufferEncoding): void {
    const ok = typeof data === 'string' ? this.upstream.write(data, encoding ?? 'latin1') : this.upstream.write(data);
    if (!ok) this.upstreamFull = true;
  }

  private writeClient(data: Buffer): void {
    if (!this.client.write(data)) this.upstream.pause();
  }

  /** Reads the client only while its bytes can go somewhere. */
  private updateFlow(): void {
    if (this.done || this.tunnel) return;
    if (this.holding || this.upstreamFull || this.inFlight.length >= MAX_PIPELINE) this.client.pause();
    else this.client.resume();
  }

  private destroy(): void {
    this.done = true;
    this.upstream.destroy();
    this.client.destroy();
  }
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
};

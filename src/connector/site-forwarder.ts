import { STATUS_CODES } from 'node:http';
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
import { PendingBytes } from './pending-bytes.js';
import { ReplayedInput } from './replayed-input.js';
import { isForwardingField, misdirected, type StreamContext, upstreamOf } from './site-proxy.js';

/** An idle keep-alive connection (no request in flight) is closed after this long, as node:http's keepAliveTimeout. */
const IDLE_TIMEOUT = 60_000;
/** An upstream that has not accepted the connection by then is answered for with a 502. */
const CONNECT_TIMEOUT = 10_000;
/** How long a connection we ended waits for the client's FIN before it is closed anyway. */
const LINGER = 5_000;
/** Requests forwarded ahead of their responses (pipelining) before the client is no longer read. */
const MAX_PIPELINE = 64;

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
  /** Takes over a connection the forwarder gives up (what it held back is readable from the stream first). */
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
 * The fast path of plain proxy sites: one client connection ↔ one upstream connection (opened at the first request),
 * bytes passed through as they arrive. Only request heads are rewritten (X-Forwarded-*, Host for rewriteHost,
 * upstreamURL's path, Connection options); bodies and responses are not parsed into objects or copied, only scanned
 * for where each message ends, so that responses pair with requests (pipelining, HEAD, 1xx, upgrades) and errors can
 * be answered between them. node:http's parse-and-reissue cost the connector ~3/4 of a request's CPU (bench:sites).
 *
 * Requests it cannot vouch for never reach the upstream: ambiguous framing (RFC 9112 §6.3) gets 400, a Host of
 * another site 421, once the responses before them are out; then the connection closes. When the site stops being
 * forwardable (auth added, say) or a request needs the full proxy, the connection is handed to it between
 * responses with no byte lost.
 */
export class ForwardedConnection {
  private upstream: Socket | undefined;
  /** Client bytes not yet forwarded: an incomplete head, or what waits while reading is held. */
  private readonly pending = new PendingBytes();
  /** How much of an incomplete head in `pending` was searched already. */
  private pendingScanned = 0;
  private requestBody: BodyScanner | undefined;
  private readonly inFlight: InFlight[] = [];
  /** Upstream bytes of an incomplete response head. */
  private readonly responsePending = new PendingBytes();
  /** How much of an incomplete response head in `responsePending` was searched already. */
  private pendingResponseScanned = 0;
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
  /** The client sent its FIN: the connection ends once the requests before it are answered. */
  private clientEnded = false;
  private readonly idleTimer: NodeJS.Timeout;

  constructor(
    private readonly client: Duplex,
    private readonly ctx: StreamContext,
    private site: Http,
    private readonly hooks: ForwarderHooks,
    private readonly logger: Logger,
  ) {
    this.idleTimer = setTimeout(() => this.onIdle(), IDLE_TIMEOUT);
    this.idleTimer.unref();
    client.on('data', this.onClientData);
    client.on('end', this.onClientEnd);
    client.on('close', this.onClientClose);
    client.on('drain', this.onClientDrain);
  }

  /** The upstream connection, opened for the first request (a client that never sends one costs the upstream nothing). */
  private connectUpstream(): Socket {
    if (this.upstream) return this.upstream;
    const upstream = upstreamOf(this.site);
    if (!upstream) throw new Error(`site ${this.site.domain} has no upstream`);
    const servername = this.site.rewriteHost || upstream.host;
    const socket = upstream.secure
      ? tlsConnect({
          host: upstream.host,
          port: upstream.port,
          ...(isIP(servername) ? {} : { servername }),
          rejectUnauthorized: !this.site.insecureUpstream,
          ALPNProtocols: ['http/1.1'],
          allowHalfOpen: true,
        } as ConnectionOptions)
      : netConnect({ host: upstream.host, port: upstream.port, allowHalfOpen: true });
    socket.setNoDelay(true);
    const connectTimer = setTimeout(
      () => socket.destroy(new Error(`no connection within ${CONNECT_TIMEOUT / 1000} s`)),
      CONNECT_TIMEOUT,
    );
    socket.once(upstream.secure ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer));
    socket.once('close', () => clearTimeout(connectTimer));
    socket.on('data', this.onUpstreamData);
    socket.on('drain', () => {
      this.upstreamFull = false;
      this.updateFlow();
    });
    socket.on('end', this.onUpstreamEnd);
    socket.on('error', (err) => this.upstreamGone(err));
    socket.on('close', () => this.upstreamGone());
    this.upstream = socket;
    return socket;
  }

  /** Only an idle keep-alive connection times out; a slow response (long poll) or a streaming upgrade does not. */
  private onIdle(): void {
    if (this.done || this.tunnel) return;
    if (this.inFlight.length === 0 && !this.requestBody) this.destroy();
    else this.idleTimer.refresh();
  }

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.done) return;
    this.idleTimer.refresh();
    this.pending.append(chunk);
    if (!this.holding) this.forwardRequests();
  };

  private readonly onClientEnd = (): void => {
    this.clientEnded = true;
    if (this.requestBody) {
      this.destroy(); // a request body cut short can never complete
      return;
    }
    // What came before the FIN is answered first (as node:http does); then both connections close.
    if (!this.holding) this.endWhenIdle();
  };

  private readonly onClientClose = (): void => {
    this.done = true;
    clearTimeout(this.idleTimer);
    this.upstream?.destroy();
  };

  private readonly onClientDrain = (): void => {
    this.upstream?.resume();
  };

  /** Forwards every complete request in `pending`, rewriting heads, until it runs out or must hold. */
  private forwardRequests(): void {
    this.upstream?.cork();
    try {
      while (!this.holding && this.pending.length > 0 && this.inFlight.length < MAX_PIPELINE) {
        const data = this.pending.view();
        if (this.requestBody) {
          const end = this.requestBody.scan(data, 0);
          const body = end < 0 ? data : data.subarray(0, end);
          this.writeUpstream(body);
          this.pending.consume(body.length);
          if (end < 0) break;
          this.requestBody = undefined;
          // An upgrade: nothing after it is HTTP until its answer says whether it switched protocols.
          if (this.inFlight.at(-1)?.upgrade) this.holding = true;
          continue;
        }
        const head = parseRequestHead(data, 0, this.pendingScanned);
        if (!head) {
          this.pendingScanned = data.length;
          break;
        }
        this.pendingScanned = 0;
        if (!this.stillForwardable() || this.hooks.needsProxy(this.site, this.ctx, head)) {
          this.holding = true;
          this.whenIdleThen(() => this.handOver());
          break;
        }
        if (head.method === 'CONNECT') throw new HttpMessageError(405, 'CONNECT is not served by sites');
        const framing = requestFraming(head);
        const connection = fieldTokens(head, 'connection');
        const upgrade = fieldValues(head, 'upgrade').length > 0 && connection.includes('upgrade');
        const text = this.rewriteHead(head, connection);
        if (!this.upstream) this.connectUpstream().cork();
        this.writeUpstream(text);
        this.pending.consume(head.length);
        this.inFlight.push({ method: head.method, upgrade });
        if (framing.kind !== 'none') this.requestBody = new BodyScanner(framing);
        else if (upgrade) this.holding = true;
      }
    } catch (err) {
      if (!(err instanceof HttpMessageError)) throw err;
      this.refuse(err);
    } finally {
      this.upstream?.uncork();
    }
    if (this.clientEnded && !this.holding) this.endWhenIdle();
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
    this.pending.clear();
    if (this.requestBody) {
      // Part of the body is already upstream: no answer can follow it cleanly.
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
    const reason = STATUS_CODES[status] ?? 'Error';
    const body = `${message}\n`;
    this.upstream?.destroy();
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
    clearTimeout(this.idleTimer);
    if (this.clientEnded) return;
    this.client.resume();
    this.client.once('end', () => this.client.destroy());
    setTimeout(() => this.client.destroy(), LINGER).unref();
  }

  /** Once nothing is in flight: the client's FIN ends both connections. */
  private endWhenIdle(): void {
    if (this.done) return;
    if (this.inFlight.length === 0) this.endClient();
    else this.whenIdle ??= () => this.endClient();
  }

  /** The head the upstream gets; `connection`: the request's Connection options (fieldTokens), read once by the caller. */
  private rewriteHead(head: RequestHead, connection: string[]): string {
    const { site, ctx } = this;
    const dropped = new Set<string>();
    const kept: string[] = [];
    for (const token of connection) {
      if (CONNECTION_OPTIONS.has(token)) kept.push(token);
      else if (MESSAGE_FIELDS.has(token)) {
        // Dropping one would change how the upstream reads the message (its length, its target) from how we did.
        throw new HttpMessageError(400, `Connection names the ${token} field`);
      } else dropped.add(token);
    }
    let target = head.target;
    const absolute = /^https?:\/\/[^/?#]*(.*)$/i.exec(target);
    if (absolute) target = (absolute[1] as string).startsWith('/') ? (absolute[1] as string) : `/${absolute[1]}`;
    if (!target.startsWith('/') && !(target === '*' && head.method === 'OPTIONS')) {
      throw new HttpMessageError(400, 'the request target is not a path');
    }
    const base = upstreamOf(site)?.base ?? '';
    if (base && target.startsWith('/')) target = base + target;
    let text = `${head.method} ${target} HTTP/1.${head.minor}\r\n`;
    let host: string | undefined;
    let forwardedFor = '';
    for (const [name, value] of head.headers) {
      const lower = name.toLowerCase();
      if (lower === 'x-forwarded-for') forwardedFor = forwardedFor ? `${forwardedFor}, ${value}` : value;
      if (isForwardingField(lower)) continue;
      if (PROXY_FIELDS.has(lower) || dropped.has(lower)) continue;
      if (lower === 'connection') {
        if (kept.length > 0) text += `Connection: ${kept.join(', ')}\r\n`;
        continue;
      }
      if (lower === 'host') {
        if (host !== undefined) throw new HttpMessageError(400, 'more than one Host header');
        if (misdirected(value, ctx)) {
          throw new HttpMessageError(421, `this connection is for ${ctx.domain}, not ${value}`);
        }
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
    if (this.tunnel || this.done) return;
    this.idleTimer.refresh();
    this.responsePending.append(chunk);
    const data = this.responsePending.view();
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
          // Bytes nobody asked for: a front proxy could pair them with its next request. Dropped; the connection ends.
          this.logger.warn(`site ${this.ctx.domain}: the upstream sent bytes no request asked for; connection closed`);
          this.writeClient(data.subarray(0, from));
          this.endClient();
          return;
        }
        const head = parseResponseHead(data, from, from === 0 ? this.pendingResponseScanned : 0);
        if (!head) {
          this.pendingResponseScanned = data.length - from;
          break;
        }
        this.pendingResponseScanned = 0;
        if (head.status === 101) {
          if (!request.upgrade) throw new HttpMessageError(502, 'a 101 answer to a request that asked for no upgrade');
          this.writeClient(data);
          this.responsePending.clear();
          this.inFlight.shift();
          this.startTunnel();
          return;
        }
        if (head.status < 200) {
          from += head.length; // 100 Continue and other interim answers precede the final one
          this.responseStarted = true;
          continue;
        }
        const framing = responseFraming(head, request.method);
        from += head.length;
        this.responseStarted = true;
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
        this.writeClient(data.subarray(0, from));
        this.finishWith(502, err.message);
      }
      return;
    }
    // Whole messages and body bytes go on now; an incomplete head waits for the rest.
    this.writeClient(data.subarray(0, from));
    this.responsePending.consume(from);
  };
  private responseDone(): void {
    this.inFlight.shift();
    this.served++;
    this.responseStarted = false;
    if (this.inFlight.length === 0 && this.whenIdle) {
      const then = this.whenIdle;
      this.whenIdle = undefined;
      setImmediate(then);
    } else if (this.inFlight.length === MAX_PIPELINE - 1 && !this.holding) {
      // Room in the pipeline again: requests already received go on.
      setImmediate(() => this.resumeRequests());
    }
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
      this.writeClient(this.responsePending.view());
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
    this.upstream?.destroy();
    this.client.end();
    this.linger();
  }

  /** After a 101: both ways are raw bytes from here on. */
  private startTunnel(): void {
    const upstream = this.upstream as Socket;
    this.tunnel = true;
    this.holding = false;
    clearTimeout(this.idleTimer);
    upstream.removeListener('data', this.onUpstreamData);
    upstream.removeListener('end', this.onUpstreamEnd);
    this.client.removeListener('data', this.onClientData);
    this.client.removeListener('end', this.onClientEnd);
    this.client.removeListener('drain', this.onClientDrain);
    if (this.pending.length > 0) upstream.write(this.pending.view());
    this.pending.clear();
    upstream.pipe(this.client);
    if (this.clientEnded) upstream.end();
    else this.client.pipe(upstream);
    upstream.resume();
  }

  private handOver(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.idleTimer);
    this.client.removeListener('data', this.onClientData);
    this.client.removeListener('end', this.onClientEnd);
    this.client.removeListener('close', this.onClientClose);
    this.client.removeListener('drain', this.onClientDrain);
    this.upstream?.destroy();
    const held = Buffer.from(this.pending.view());
    this.pending.clear();
    if (this.clientEnded) {
      this.hooks.handOver(new ReplayedInput(this.client, held), this.ctx);
      return;
    }
    this.client.pause();
    if (held.length > 0) this.client.unshift(held);
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

  private writeUpstream(data: Buffer | string): void {
    const upstream = this.upstream ?? this.connectUpstream();
    const ok = typeof data === 'string' ? upstream.write(data, 'latin1') : upstream.write(data);
    if (!ok) this.upstreamFull = true;
  }

  private writeClient(data: Buffer): void {
    if (data.length > 0 && !this.client.write(data)) this.upstream?.pause();
  }

  /** Reads the client only while its bytes can go somewhere. */
  private updateFlow(): void {
    if (this.done || this.tunnel) return;
    if (this.holding || this.upstreamFull || this.inFlight.length >= MAX_PIPELINE) this.client.pause();
    else this.client.resume();
  }

  private destroy(): void {
    this.done = true;
    clearTimeout(this.idleTimer);
    this.upstream?.destroy();
    this.client.destroy();
  }
}

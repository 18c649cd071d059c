import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../common/logger.js';
import type { Endpoint } from '../config/url.js';
import { normalizeAddress } from './firewall.js';
import type { StreamKind } from './protocol.js';
import type { Session } from './session.js';
import type { SiteRoute, SiteTable } from './sites.js';
import { MAX_HELLO, readSni } from './sni.js';

/** Time a client has to send its request head (HTTP) or ClientHello (HTTPS). */
const HEAD_TIMEOUT = 10_000;
/** The request head the hub reads to find the Host header; larger heads are refused (431). */
const MAX_HEAD = 16 * 1024;

export interface SiteListenerDeps {
  sites: SiteTable;
  logger: Logger;
  sessionOf(tunnelId: string): Session | undefined;
  /** Relays the client's socket and the stream to the connector, counting the tunnel's bandwidth. */
  /** `head`: the bytes read to route the connection, already written to the stream (they count as traffic too). */
  relay(client: Socket, stream: Duplex, session: Session, head: Buffer): void;
}

function page(status: number, reason: string, body: string): string {
  const html = `<!doctype html><html><head><title>${status} ${reason}</title></head><body><h1>${status} ${reason}</h1><p>${body}</p><hr><p>porthole hub</p></body></html>\n`;
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(html)}\r\nConnection: close\r\n\r\n${html}`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The hub's public HTTP and HTTPS listeners. HTTP: the first request head is read for its Host header and the bytes
 * go, unchanged, to the connector serving that site (which speaks HTTP from there on, keep-alive included; a
 * connection stays with the site of its first request, as browsers keep one connection per origin). HTTPS: the
 * ClientHello is peeked for its SNI name and the still-encrypted stream goes to that connector: TLS ends there and
 * the hub never holds a site's key.
 */
export class SiteListeners {
  private readonly servers: Server[] = [];
  httpPort = 0;
  httpsPort = 0;

  constructor(private readonly deps: SiteListenerDeps) {}

  async listen(http: Endpoint | undefined, https: Endpoint | undefined): Promise<void> {
    if (http) this.httpPort = await this.open(http, 'HTTP', (s) => this.onHttp(s));
    if (https) this.httpsPort = await this.open(https, 'HTTPS', (s) => this.onHttps(s));
  }

  close(): void {
    for (const server of this.servers) server.close();
  }

  private async open(at: Endpoint, what: string, onSocket: (s: Socket) => void): Promise<number> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, onSocket);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: at.host || undefined, port: at.port }, () => {
          server.removeListener('error', reject);
          resolve();
        });
      });
    } catch (err) {
      // Sites are one service of the hub: TCP tunnels keep working without this listener (e.g. :80 needs privileges).
      this.deps.logger.error(
        `${what} listener cannot listen on ${at.host || '*'}:${at.port}: ${(err as Error).message}`,
      );
      return 0;
    }
    server.on('error', (err) => this.deps.logger.error(`${what} listener: ${err.message}`));
    this.servers.push(server);
    return (server.address() as { port: number }).port;
  }

  /** Collects the first bytes until `decide` returns a verdict, within HEAD_TIMEOUT and `max` bytes. */
  private peek(socket: Socket, max: number, decide: (data: Buffer) => 'more' | 'done', onTimeout: () => void): void {
    let data: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.removeListener('data', onData);
      onTimeout();
    }, HEAD_TIMEOUT);
    const onData = (chunk: Buffer) => {
      data = data.length === 0 ? chunk : Buffer.concat([data, chunk]);
      if (decide(data) === 'done' || data.length > max) {
        clearTimeout(timer);
        socket.removeListener('data', onData);
        socket.pause();
      }
    };
    socket.on('data', onData);
    socket.once('close', () => clearTimeout(timer));
  }

  private onHttp(socket: Socket): void {
    socket.on('error', () => {});
    const refuse = (status: number, reason: string, body: string) => socket.end(page(status, reason, body));
    this.peek(
      socket,
      MAX_HEAD,
      (data) => {
        const end = data.indexOf('\r\n\r\n');
        if (end < 0) {
          if (data.length > MAX_HEAD) refuse(431, 'Request Header Fields Too Large', 'The request head is too large.');
          return 'more';
        }
        const head = data.toString('latin1', 0, end + 2);
        const host = /\r\nhost:[ \t]*([^\r\n]*)/i.exec(head)?.[1]?.trim() ?? '';
        if (!/^[A-Z]+ \S+ HTTP\/1\.[01]\r\n/.test(head)) refuse(400, 'Bad Request', 'Not an HTTP/1.x request.');
        else if (host === '') refuse(400, 'Bad Request', 'The request has no Host header.');
        else {
          const route = this.deps.sites.lookup(host);
          if (!route) refuse(404, 'Not Found', `No site ${escapeHtml(host)} on this hub.`);
          else this.forward(socket, data, route, 'http', () => refuse(502, 'Bad Gateway', 'The site is offline.'));
        }
        return 'done';
      },
      () => socket.destroy(),
    );
  }

  private onHttps(socket: Socket): void {
    socket.on('error', () => {});
    this.peek(
      socket,
      MAX_HELLO,
      (data) => {
        const sni = readSni(data);
        if (sni.state === 'incomplete' && data.length <= MAX_HELLO) return 'more';
        const route = sni.state === 'done' && sni.name ? this.deps.sites.lookup(sni.name) : undefined;
        if (!route) {
          this.deps.logger.debug(
            `HTTPS from ${socket.remoteAddress}: ${sni.state === 'invalid' ? sni.why : `no site for SNI "${sni.state === 'done' ? (sni.name ?? '') : ''}"`}; closed`,
          );
          socket.destroy();
        } else this.forward(socket, data, route, 'https-sni', () => socket.destroy());
        return 'done';
      },
      () => socket.destroy(),
    );
  }

  private forward(socket: Socket, head: Buffer, route: SiteRoute, kind: StreamKind, offline: () => void): void {
    const address = socket.remoteAddress ?? '';
    if (!route.firewall.allows(address)) {
      this.deps.logger.debug(`site ${route.domain}: firewall dropped ${address}`);
      socket.resetAndDestroy();
      return;
    }
    const session = this.deps.sessionOf(route.tunnelId);
    if (!session) {
      offline();
      return;
    }
    const client = { address: normalizeAddress(address), port: socket.remotePort ?? 0 };
    session.openStream(kind, 0, 'tcp', client, route.domain).then(
      (stream) => {
        if (socket.destroyed) {
          stream.destroy();
          return;
        }
        // The bytes read to route the connection go first, unchanged.
        stream.write(head);
        this.deps.relay(socket, stream, session, head);
      },
      (err: Error) => {
        this.deps.logger.warn(`site ${route.domain}: no stream to tunnel ${route.tunnelId}: ${err.message}`);
        offline();
      },
    );
  }
}

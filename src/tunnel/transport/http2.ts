import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants,
  createServer as createH2Server,
  type Http2Server,
  type Http2Session,
  connect as h2connect,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { readExactly } from '../read-exactly.js';
import { readMemberId } from './member-id.js';
import type { ClientTransportOptions, ServerTransportOptions } from './options.js';
import { clientTlsOptions, openMemberConnection, peerFingerprint } from './tls.js';
import type { DialedMember, PoolClientTransport, PoolServerTransport } from './types.js';

/**
 * Flow-control windows. HTTP/2's default of 64 KiB per stream caps one stream at 64 KiB per round trip; NodePass's Go
 * transport uses 4 MiB per stream and 1 GiB per connection. We raise both ends' stream window to 4 MiB and the
 * connection window to 64 MiB: one stream runs at full speed, and since Node only hands out window as the reader
 * consumes, a paused stream still buffers at most its window.
 */
export const STREAM_WINDOW = 4 * 1024 * 1024;
export const SESSION_WINDOW = 64 * 1024 * 1024;
const SETTINGS = { initialWindowSize: STREAM_WINDOW, enablePush: false, maxFrameSize: 64 * 1024 };
/**
 * Node's default cap on what one session may hold in memory (10 MB) is below what a few busy members may legitimately
 * hold with these windows; past the cap Node refuses new streams (ENHANCE_YOUR_CALM). The connection window (64 MiB)
 * already bounds what a peer can make us buffer, so the cap (in MB) only needs to sit above it.
 */
const MAX_SESSION_MEMORY = 256;
const MEMBER_PATH = '/stream';

/**
 * Type 3 server side: the tunnel port speaks HTTP/2 over TLS (ALPN `h2`; NodePass forces TLS on for this type). Each
 * `POST /stream` is a pool member: the client's first body byte is 0x00, the server answers 200 and the 4-byte id as
 * the start of the response body. Request body = client → server, response body = server → client; each ends on its
 * own (END_STREAM), so a member half-closes like a TCP connection.
 */
export class Http2ServerTransport implements PoolServerTransport {
  readonly type = 3;
  private readonly server: Http2Server;
  private readonly sessions = new Set<Http2Session>();

  constructor(private readonly options: ServerTransportOptions) {
    this.server = createH2Server({
      settings: { ...SETTINGS, maxConcurrentStreams: 100_000 },
      maxSessionMemory: MAX_SESSION_MEMORY,
    });
    this.server.on('session', (session: Http2Session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => {});
      // The connection window is raised as soon as the session can take it (at once when already connected).
      try {
        session.setLocalWindowSize(SESSION_WINDOW);
      } catch {
        session.once('connect', () => session.setLocalWindowSize(SESSION_WINDOW));
      }
    });
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      void this.onStream(stream, headers);
    });
  }

  accept(raw: Socket): void {
    const rules = { checkAddress: true, checkFull: false, alpn: ['h2'], requireTls: true };
    void openMemberConnection(raw, this.options, rules).then((secure) => {
      if (secure === undefined) return;
      if ((secure as TLSSocket).alpnProtocol !== 'h2') {
        this.options.logger.debug(
          `Pool connection without ALPN h2 (${(secure as TLSSocket).alpnProtocol || 'none'}) refused`,
        );
        secure.destroy();
        return;
      }
      this.server.emit('connection', secure);
    });
  }

  close(): void {
    for (const session of this.sessions) session.destroy();
    this.sessions.clear();
    this.server.close();
  }

  private async onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    const { acceptor, handshakeTimeout, logger } = this.options;
    stream.on('error', () => {});
    const refuse = (status: number, body: string) => {
      stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8' });
      stream.end(`${body}\n`);
    };
    if (headers[':method'] !== 'POST' || headers[':path'] !== MEMBER_PATH) {
      refuse(404, 'not found');
      return;
    }
    if (acceptor.full) {
      refuse(503, 'pool full');
      return;
    }
    let first: Buffer;
    try {
      first = await readExactly(stream, 1, handshakeTimeout);
    } catch (err) {
      logger.debug(`Pool stream without its first byte: ${(err as Error).message}`);
      stream.close(constants.NGHTTP2_CANCEL);
      return;
    }
    if (first[0] !== 0) {
      logger.debug(`Pool stream refused: first byte ${first[0]}, expected 0x00`);
      refuse(400, 'bad request');
      return;
    }
    const id = acceptor.nextId();
    stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
    stream.write(id);
    acceptor.admit(id, stream);
  }
}

/**
 * Type 3 client side: one TLS connection (ALPN h2) per tunnel, opened on the first dial; each member is a
 * `POST https://<authority>/stream` on it. The session is PINGed every keep-alive period; a PING unanswered for two
 * periods, or any session error, closes the session and with it every member (the control channel too, so the
 * tunnel restarts, as with a lost TCP pool).
 */
export class Http2ClientTransport implements PoolClientTransport {
  readonly type = 3;
  private session: Promise<{ session: ClientHttp2Session; fingerprint: string | undefined }> | undefined;
  /** The session being connected or connected, and its TLS socket, for closing them synchronously. */
  private current: { session: ClientHttp2Session; socket: TLSSocket | undefined } | undefined;
  private closed = false;

  constructor(private readonly options: ClientTransportOptions) {}

  async dial(): Promise<DialedMember> {
    const { dialTimeout, authority } = this.options;
    const { session, fingerprint } = await this.connect();
    const stream: ClientHttp2Stream = session.request(
      { ':method': 'POST', ':path': MEMBER_PATH, ':scheme': 'https', ':authority': authority },
      { endStream: false },
    );
    stream.on('error', () => {});
    // NodePass writes the 0x00 right away, without waiting for the response headers.
    stream.write(Buffer.from([0]));
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no response to POST ${MEMBER_PATH} within ${dialTimeout}ms`)),
          dialTimeout,
        );
        stream.once('response', (headers) => {
          clearTimeout(timer);
          resolve(Number(headers[':status']));
        });
        stream.once('close', () => {
          clearTimeout(timer);
          reject(new Error(`pool stream closed before its response (code ${stream.rstCode})`));
        });
      });
      if (status !== 200) {
        const body = await readExactly(stream, 64, 1000).catch(() => Buffer.alloc(0));
        throw new Error(`pool stream refused: ${status} ${body.toString('utf8').trim()}`);
      }
    } catch (err) {
      stream.destroy();
      throw err;
    }
    return readMemberId(stream, dialTimeout, fingerprint);
  }

  /**
   * Destroys the session, and with it every member, now: the socket first, so that nothing more is written into a
   * connection that is going away (one RST_STREAM per member otherwise).
   */
  close(): void {
    this.closed = true;
    this.current?.socket?.destroy();
    this.current?.session.destroy();
    this.current = undefined;
    this.session = undefined;
  }

  /** The shared session, connecting it if there is none (or the last one died). */
  private connect(): Promise<{ session: ClientHttp2Session; fingerprint: string | undefined }> {
    if (this.closed) return Promise.reject(new Error('HTTP/2 pool transport closed'));
    this.session ??= this.openSession();
    const pending = this.session;
    pending.catch(() => {
      if (this.session === pending) this.session = undefined;
    });
    return pending;
  }

  private openSession(): Promise<{ session: ClientHttp2Session; fingerprint: string | undefined }> {
    const { host, port, tls, servername, dialTimeout, keepAlive } = this.options;
    let socket: TLSSocket | undefined;
    const session = h2connect(`https://${host.includes(':') ? `[${host}]` : host}:${port}`, {
      settings: SETTINGS,
      maxSessionMemory: MAX_SESSION_MEMORY,
      createConnection: () => {
        socket = tlsConnect({ host, port, ...clientTlsOptions(tls === 2 ? 2 : 1, servername, ['h2']) });
        socket.setNoDelay(true);
        socket.setKeepAlive(true, keepAlive);
        return socket;
      },
    });
    const current = { session, socket };
    this.current = current;
    const forget = () => {
      if (this.session === opened) this.session = undefined;
      if (this.current === current) this.current = undefined;
    };
    const opened = new Promise<{ session: ClientHttp2Session; fingerprint: string | undefined }>((resolve, reject) => {
      const timer = setTimeout(() => {
        session.destroy();
        reject(new Error(`HTTP/2 connection to ${host}:${port} timed out`));
      }, dialTimeout);
      session.once('connect', () => {
        clearTimeout(timer);
        session.setLocalWindowSize(SESSION_WINDOW);
        resolve({ session, fingerprint: socket ? peerFingerprint(socket) : undefined });
      });
      session.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    session.on('error', () => {});
    session.on('goaway', forget);
    // The socket gone (the server died, the network failed): destroy the whole session at once, see close().
    session.on('close', forget);
    socket?.once('close', () => setImmediate(() => session.destroy()));
    const pinger = setInterval(() => {
      const timeout = setTimeout(() => session.destroy(new Error('HTTP/2 PING unanswered')), 2 * keepAlive);
      const sent = session.ping((err) => {
        clearTimeout(timeout);
        if (err) session.destroy(err);
      });
      if (!sent) clearTimeout(timeout);
    }, keepAlive);
    pinger.unref();
    session.on('close', () => clearInterval(pinger));
    return opened;
  }
}

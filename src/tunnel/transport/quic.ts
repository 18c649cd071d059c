import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from '../../common/logger.js';
import type { CertificatePair } from '../certificates.js';
import { readExactly } from '../read-exactly.js';
import { readMemberId } from './member-id.js';
import type { ClientTransportOptions, ServerTransportOptions } from './options.js';
import {
  clientCrypto,
  loadQuicLibrary,
  openQuicSocket,
  QUIC_LOGGER,
  type QuicConnection,
  type QuicLibrary,
  type QuicStream,
  serverCrypto,
} from './quic-library.js';
import { QuicStreamDuplex } from './quic-stream.js';
import { verifyServerChain } from './quic-verify.js';
import type { DialedMember, PoolClientTransport, PoolServerTransport } from './types.js';

/** NodePass's ALPN for its QUIC pool. */
export const QUIC_ALPN = 'np-quic';

type QuicServer = InstanceType<QuicLibrary['QUICServer']>;
type QuicSocket = InstanceType<QuicLibrary['QUICSocket']>;
type QuicClient = Awaited<ReturnType<QuicLibrary['QUICClient']['createQUICClient']>>;

/**
 * Transport settings both ends use. Flow control: quiche starts a stream at 1 MiB of window and grows it (up to
 * 16 MiB) as the reader keeps up, the connection at 16 MiB (up to 24 MiB); a paused member holds at most its window.
 * Streams: one per pool member and one per relayed session, all concurrent on one connection, so the limit sits above
 * any pool (`max` ≤ 1024 idle) plus the session cap (`slot`, 65536); quiche returns credit as streams finish.
 * Datagrams: the library's 1350-byte payload, safe on any path (quiche does no path-MTU discovery here).
 */
function quicConfig(keepAlive: number) {
  return {
    applicationProtos: [QUIC_ALPN],
    // NodePass: keep-alive 5 s, idle timeout 15 s; the keep-alive follows NP_REPORT_INTERVAL as the other pools' do.
    keepAliveIntervalTime: keepAlive,
    maxIdleTimeout: Math.max(15_000, 3 * keepAlive),
    initialMaxData: 16 * 1024 * 1024,
    initialMaxStreamDataBidiLocal: 1024 * 1024,
    initialMaxStreamDataBidiRemote: 1024 * 1024,
    initialMaxStreamsBidi: 100_000,
    initialMaxStreamsUni: 0,
    // The library preallocates this read buffer for every stream, idle pool members included (1024 × 16 KiB = 16 MiB
    // for a full pool); 16 KiB is NodePass's NP_TCP_DATA_BUF_SIZE and ~12 datagrams per read.
    readableChunkSize: 16 * 1024,
  };
}

/** Options of the instance's QUIC endpoint. */
export interface QuicEndpointOptions {
  /** The tunnel address: UDP on the same host and port as the TCP tunnel listener. '' = every interface. */
  host: string;
  port: number;
  certificate: CertificatePair;
  keepAlive: number;
  logger: Logger;
}

/**
 * The UDP side of a type=1 server: a QUIC server on the tunnel host:port, bound for the instance's whole life (so the
 * port is checked at start, and a client that dials right after its handshake reaches a listener). Connections belong
 * to the session that is current (the QuicServerTransport of the latest handshake); between sessions they are closed
 * as they arrive.
 */
export class QuicEndpoint {
  /** Set by the session's transport; undefined while no client has handshaken. */
  onConnection: ((connection: QuicConnection) => void) | undefined;

  private constructor(
    private readonly server: QuicServer,
    private readonly socket: QuicSocket,
    private readonly quic: QuicLibrary,
    private readonly logger: Logger,
  ) {
    server.addEventListener(quic.events.EventQUICServerConnection.name, (event: Event) => {
      const connection = (event as InstanceType<QuicLibrary['events']['EventQUICServerConnection']>).detail;
      if (this.onConnection) this.onConnection(connection);
      else closeConnection(connection);
    });
    server.addEventListener(quic.events.EventQUICServerError.name, (event: Event) => {
      logger.warn(`QUIC listener error: ${(event as CustomEvent<Error>).detail?.message}`);
    });
  }

  /** Loads the library (TransportUnavailableError when it cannot) and binds the UDP port. */
  static async open(options: QuicEndpointOptions): Promise<QuicEndpoint> {
    const quic = await loadQuicLibrary();
    const { certificate, keepAlive, host, port, logger } = options;
    // '' is every interface: '::' with dual stack, as the TCP listener does.
    const bindHost = host === '' ? '::' : host;
    const socket = await openQuicSocket(quic, { host: bindHost, port, ipv6Only: false }, logger).catch((err) => {
      throw new Error(`QUIC listener cannot bind UDP ${formatHostPort(bindHost, port)}: ${describeQuicError(err)}`);
    });
    const server = new quic.QUICServer({
      crypto: serverCrypto(),
      config: { ...quicConfig(keepAlive), key: certificate.key, cert: certificate.cert, verifyPeer: false },
      socket,
      logger: QUIC_LOGGER,
    });
    try {
      await server.start();
    } catch (err) {
      await socket.stop({ force: true }).catch(() => {});
      throw err;
    }
    return new QuicEndpoint(server, socket, quic, logger);
  }

  get port(): number {
    return this.server.port;
  }

  /** A reloaded tls=2 certificate: new connections get it, established ones keep theirs. */
  updateCertificate(pair: CertificatePair): void {
    this.server.updateConfig({ key: pair.key, cert: pair.cert });
  }

  get events(): QuicLibrary['events'] {
    return this.quic.events;
  }

  async close(): Promise<void> {
    this.onConnection = undefined;
    await this.server.stop({ force: true }).catch((err: Error) => {
      this.logger.debug(`QUIC listener stop: ${err.message}`);
    });
    await this.socket.stop({ force: true }).catch(() => {});
  }
}

/** Closes a connection at once (application error 0), ignoring a connection already going. */
function closeConnection(connection: QuicConnection): void {
  connection.stop({ isApp: true, errorCode: 0, force: true }).catch(() => {});
}

/**
 * Type 1 server side, one per session: every QUIC connection from the handshake's client address is the pool's;
 * each bidirectional stream it opens is a member: the client's first byte is 0x00, the server answers with the 4-byte
 * id and the stream is a byte stream from then on. A stream whose first byte is not 0x00, or that says nothing within
 * NP_HANDSHAKE_TIMEOUT, or that arrives while the pool is full, is reset.
 */
export class QuicServerTransport implements PoolServerTransport {
  readonly type = 1;
  private readonly connections = new Set<QuicConnection>();

  constructor(
    private readonly options: ServerTransportOptions,
    private readonly endpoint: QuicEndpoint,
  ) {
    endpoint.onConnection = (connection) => this.onConnection(connection);
  }

  /** A TCP connection on the tunnel port during a QUIC session is nobody's: the pool is on UDP. */
  accept(raw: Socket): void {
    this.options.logger.debug(`TCP connection from ${raw.remoteAddress} on a QUIC tunnel refused`);
    raw.destroy();
  }

  close(): void {
    if (this.endpoint.onConnection) this.endpoint.onConnection = undefined;
    for (const connection of this.connections) closeConnection(connection);
    this.connections.clear();
  }

  private onConnection(connection: QuicConnection): void {
    const { acceptor, logger } = this.options;
    if (!acceptor.allows(connection.remoteHost)) {
      closeConnection(connection);
      return;
    }
    this.connections.add(connection);
    logger.debug(`QUIC pool connection from ${connection.remoteHost}:${connection.remotePort}`);
    const { events } = this.endpoint;
    connection.addEventListener(events.EventQUICConnectionStream.name, (event: Event) => {
      void this.onStream((event as InstanceType<typeof events.EventQUICConnectionStream>).detail);
    });
    connection.addEventListener(events.EventQUICConnectionStopped.name, () => this.connections.delete(connection), {
      once: true,
    });
  }

  private async onStream(quic: QuicStream): Promise<void> {
    const { acceptor, handshakeTimeout, logger } = this.options;
    const stream = new QuicStreamDuplex(quic);
    stream.on('error', () => {});
    let first: Buffer;
    try {
      first = await readExactly(stream, 1, handshakeTimeout);
    } catch (err) {
      logger.debug(`QUIC pool stream without its first byte: ${(err as Error).message}`);
      stream.destroy();
      return;
    }
    if (first[0] !== 0) {
      logger.debug(`QUIC pool stream refused: first byte ${first[0]}, expected 0x00`);
      stream.destroy();
      return;
    }
    if (acceptor.full) {
      // NodePass resets the stream too: no status to send on a QUIC member (WebSocket and HTTP/2 answer 503).
      logger.debug('QUIC pool stream refused: the pool is full');
      stream.destroy();
      return;
    }
    const id = acceptor.nextId();
    stream.write(id);
    acceptor.admit(id, stream);
  }
}

interface OpenClient {
  client: QuicClient;
  socket: QuicSocket;
  fingerprint: string | undefined;
}

/**
 * Type 1 client side: one QUIC connection per tunnel (UDP to the tunnel host:port, ALPN np-quic), opened on the first
 * dial; each member is a bidirectional stream on it: the client writes 0x00 and reads the 4-byte id. tls=1 does not
 * verify the certificate (the `verify` signal pins its fingerprint), tls=2 verifies it and the server name against
 * Node's CAs. The connection sends keep-alives every period; when it dies (idle timeout, the server gone) every
 * member and the control channel go with it, and the tunnel restarts as with a lost TCP pool.
 */
export class QuicClientTransport implements PoolClientTransport {
  readonly type = 1;
  private opening: Promise<OpenClient> | undefined;
  private current: OpenClient | undefined;
  private closed = false;

  constructor(private readonly options: ClientTransportOptions) {}

  async dial(): Promise<DialedMember> {
    const { dialTimeout } = this.options;
    const { client, fingerprint } = await this.connect();
    let quic: QuicStream;
    try {
      quic = client.connection.newStream('bidi');
    } catch (err) {
      throw new Error(`QUIC stream not opened: ${(err as Error).message}`);
    }
    const stream = new QuicStreamDuplex(quic);
    stream.on('error', () => {});
    stream.write(Buffer.from([0]));
    return readMemberId(stream, dialTimeout, fingerprint);
  }

  close(): void {
    this.closed = true;
    const current = this.current;
    this.current = undefined;
    this.opening = undefined;
    if (current) void closeClient(current);
  }

  private connect(): Promise<OpenClient> {
    if (this.closed) return Promise.reject(new Error('QUIC pool transport closed'));
    this.opening ??= this.open();
    const pending = this.opening;
    pending.catch(() => {
      if (this.opening === pending) this.opening = undefined;
    });
    return pending;
  }

  private async open(): Promise<OpenClient> {
    const { host, port, tls, servername, dialTimeout, keepAlive, logger } = this.options;
    const quic = await loadQuicLibrary();
    const verify = tls === 2;
    // tls=2: the chain and name are checked here, as Node's TLS would (see verifyServerChain); the reason is kept for
    // the error, which quiche reduces to a TLS alert.
    let refused: string | undefined;
    const verifyCallback = async (chain: Uint8Array[]) => {
      refused = verifyServerChain(chain, servername ?? host, logger);
      return refused === undefined ? undefined : quic.native.CryptoError.BadCertificate;
    };
    const socket = await openQuicSocket(quic, { host: '::', port: 0, ipv6Only: false }, logger);
    let client: QuicClient;
    try {
      client = await quic.QUICClient.createQUICClient(
        {
          host,
          port,
          socket,
          ...(servername ? { serverName: servername } : {}),
          crypto: clientCrypto,
          config: {
            ...quicConfig(keepAlive),
            verifyPeer: verify,
            ...(verify ? { verifyCallback } : {}),
          },
          logger: QUIC_LOGGER,
        },
        { timer: dialTimeout },
      );
    } catch (err) {
      await socket.stop({ force: true }).catch(() => {});
      const reason = refused ? `server certificate refused: ${refused}` : describeQuicError(err);
      throw new Error(`QUIC connection to ${host}:${port} failed: ${reason}`);
    }
    const leaf = client.connection.getRemoteCertsChain()[0];
    const fingerprint = leaf ? `sha256:${new X509Certificate(leaf).fingerprint256}` : undefined;
    const open = { client, socket, fingerprint };
    if (this.closed) {
      await closeClient(open);
      throw new Error('QUIC pool transport closed');
    }
    this.current = open;
    const opening = this.opening;
    void client.closedP.then(() => {
      logger.debug(`QUIC connection to ${host}:${port} closed`);
      if (this.current === open) this.current = undefined;
      if (this.opening === opening) this.opening = undefined;
      void socket.stop({ force: true }).catch(() => {});
    });
    return open;
  }
}

/** Closes the client's connection (and with it every member) and its UDP socket. */
async function closeClient({ client, socket }: OpenClient): Promise<void> {
  await client.destroy({ isApp: true, errorCode: 0, force: true }).catch(() => {});
  await socket.stop({ force: true }).catch(() => {});
}

function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The library's errors say little in `message` alone (a TLS failure is "TlsFail" in the cause): add the cause. */
function describeQuicError(err: unknown): string {
  const e = err as Error & { cause?: Error };
  const cause = e?.cause?.message;
  return cause && cause !== e.message ? `${e.message} (${cause})` : String(e?.message ?? err);
}

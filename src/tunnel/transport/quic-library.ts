import { randomBytes, webcrypto } from 'node:crypto';
import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import type { Logger } from '../../common/logger.js';
import { TransportUnavailableError } from './types.js';

/** The optional dependency that carries pool type 1. */
export const QUIC_PACKAGE = '@matrixai/quic';

export type QuicLibrary = typeof import('@matrixai/quic');
export type QuicStream = import('@matrixai/quic').QUICStream;
export type QuicConnection = import('@matrixai/quic').QUICConnection;

/**
 * What the library is given as its logger: it logs every connection and stream at INFO (to stderr by default) and
 * calls only getChild/info/debug/warn/error; ours reports what matters itself. (Its Logger class lives in a transitive
 * dependency we do not import.)
 */
const silentLogger = {
  getChild() {
    return silentLogger;
  },
  debug() {},
  info() {},
  warn() {},
  error() {},
};
export const QUIC_LOGGER = silentLogger as never;

let loading: Promise<QuicLibrary> | undefined;

/**
 * Loads `@matrixai/quic` (Cloudflare quiche bindings) on first use: it is an optional dependency, so porthole installs
 * and runs without it, and its 2.0.9 native binary exists for linux-x64 only (package.json overrides the unpublished
 * macOS/Windows ones with scripts/unpublished-native so that `npm ci` works). When it cannot load, the
 * error says which package to install and what failed; callers turn it into a refusal at start, never a fallback.
 */
export function loadQuicLibrary(): Promise<QuicLibrary> {
  loading ??= (async () => {
    try {
      const quic = (await import(QUIC_PACKAGE)) as QuicLibrary;
      // Touch the native binding now: a missing platform binary fails here, not at the first connection.
      void quic.native.quiche.MAX_DATAGRAM_SIZE;
      return quic;
    } catch (err) {
      throw new TransportUnavailableError(
        `pool type 1 (QUIC) needs the optional package ${QUIC_PACKAGE}@2 (Cloudflare quiche bindings, native ` +
          `binary for linux-x64 only in 2.0.9), which cannot be loaded here: ${firstLine(err)}. ` +
          `Install it with \`npm install ${QUIC_PACKAGE}@2\`, or use type=0 (TCP/TLS), 2 (WebSocket) or 3 (HTTP/2)`,
      );
    }
  })();
  return loading;
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0] as string;
}

/** quiche's crypto callbacks: HMAC-SHA256 for the server's stateless retry tokens, random bytes for the client. */
export function serverCrypto(): {
  key: ArrayBuffer;
  ops: {
    sign(key: ArrayBuffer, data: ArrayBuffer): Promise<ArrayBuffer>;
    verify(key: ArrayBuffer, data: ArrayBuffer, sig: ArrayBuffer): Promise<boolean>;
  };
} {
  const hmac = (key: ArrayBuffer) =>
    webcrypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  const key = randomBytes(32);
  return {
    key: key.buffer.slice(key.byteOffset, key.byteOffset + key.byteLength),
    ops: {
      async sign(k, data) {
        return webcrypto.subtle.sign('HMAC', await hmac(k), data);
      },
      async verify(k, data, sig) {
        return webcrypto.subtle.verify('HMAC', await hmac(k), sig, data);
      },
    },
  };
}

export const clientCrypto = {
  ops: {
    async randomBytes(data: ArrayBuffer): Promise<void> {
      webcrypto.getRandomValues(new Uint8Array(data));
    },
  },
};

type QuicSocket = InstanceType<QuicLibrary['QUICSocket']>;

/** The parts of the library's QUICSocket we reach into (see openQuicSocket); both are private there. */
interface QuicSocketInternals {
  handleSocketMessage?: (data: Buffer, remote: RemoteInfo) => Promise<void>;
  socket?: UdpSocket;
}

/** Kernel buffer size asked for the UDP socket (Linux caps it at net.core.rmem_max / wmem_max); see openQuicSocket. */
const UDP_BUFFER = 1024 * 1024;

/**
 * A bound UDP socket for a QUIC server or client, with two repairs the library needs to face the network:
 *
 * - Its datagram handler is an async function registered as a plain 'message' listener, and a crafted datagram
 *   (a long-header packet of another type than Initial, for an unknown connection id) makes it throw: the rejection
 *   would end the process. The handler is wrapped before the socket starts so such a datagram is dropped and logged.
 * - It reads datagrams on the JS thread, about 1 ms of CPU each. With Linux's default 208 KiB receive buffer a burst
 *   overflows it, every drop is taken for congestion and quiche collapses its window (loopback, 4 MiB: 400 lost,
 *   RTT 0.6-1.4 s, 1 Mbit/s on a busy machine); with 4 MiB nothing is lost but the queue grows to seconds of work
 *   (RTT 3.3 s, 2 Mbit/s), which starves the control channel's pings. 1 MiB lost nothing and kept the RTT at
 *   0.1-0.25 s (5 Mbit/s), so 1 MiB it is.
 *
 * Both reach into private members: a library version without them is refused at start rather than run exposed.
 */
export async function openQuicSocket(
  quic: QuicLibrary,
  bind: { host: string; port: number; ipv6Only?: boolean },
  logger: Logger,
): Promise<QuicSocket> {
  const socket = new quic.QUICSocket({ logger: QUIC_LOGGER });
  const internals = socket as unknown as QuicSocketInternals;
  const handle = internals.handleSocketMessage;
  if (typeof handle !== 'function') {
    throw new TransportUnavailableError(
      `pool type 1 (QUIC): this version of ${QUIC_PACKAGE} is not supported (no datagram handler to guard); ` +
        `install ${QUIC_PACKAGE}@2`,
    );
  }
  internals.handleSocketMessage = (data, remote) =>
    handle(data, remote).catch((err: Error) => {
      logger.debug(`QUIC datagram from ${remote.address}:${remote.port} dropped: ${err.message}`);
    });
  await socket.start(bind);
  try {
    internals.socket?.setRecvBufferSize(UDP_BUFFER);
    internals.socket?.setSendBufferSize(UDP_BUFFER);
  } catch {
    // Refused by the kernel: the default stays (slower under load, still correct).
  }
  return socket;
}

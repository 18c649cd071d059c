import { randomBytes, webcrypto } from 'node:crypto';
import type { Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
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
 * and runs without it, and its native binary exists for linux-x64, macOS and Windows only. When it cannot load, the
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
          `binaries for linux-x64, darwin and win32-x64), which cannot be loaded here: ${firstLine(err)}. ` +
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

/**
 * The CAs a tls=2 client trusts, as Node's TLS would: the bundled Mozilla roots plus NODE_EXTRA_CA_CERTS. quiche
 * (BoringSSL) verifies the chain and the server name itself but does not read Node's store, so it is handed over.
 */
export function trustedCertificates(logger: Logger): string[] {
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (!extra) return [...rootCertificates];
  try {
    return [...rootCertificates, readFileSync(extra, 'utf8')];
  } catch (err) {
    logger.warn(`NODE_EXTRA_CA_CERTS ${extra} unreadable for the QUIC pool: ${(err as Error).message}`);
    return [...rootCertificates];
  }
}

/**
 * Raises the kernel buffers of the UDP socket under a QUIC endpoint. The library reads datagrams on the JS thread;
 * with Linux's default 208 KiB receive buffer a burst overflows it, every drop is taken for congestion, and quiche
 * collapses its window (measured: 774 of 33k packets lost and 7 Mbit/s over loopback). The library keeps its dgram
 * socket private; if its shape changes this does nothing and QUIC still works, only slower under load.
 */
export function enlargeUdpBuffers(endpoint: unknown, bytes = 4 * 1024 * 1024): void {
  const udp = (endpoint as { socket?: { socket?: UdpSocket } }).socket?.socket;
  try {
    udp?.setRecvBufferSize(bytes);
    udp?.setSendBufferSize(bytes);
  } catch {
    // Capped or refused by the kernel (net.core.rmem_max): the default stays.
  }
}

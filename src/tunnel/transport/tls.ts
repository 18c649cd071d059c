import type { Socket } from 'node:net';
import { type ConnectionOptions, type SecureContext, TLSSocket } from 'node:tls';
import type { Logger } from '../../common/logger.js';

/**
 * Server side: runs the TLS handshake on a raw tunnel-port connection with the current certificate and `alpn`
 * protocols; resolves with the secure socket, or undefined (the connection destroyed) when the handshake fails or
 * takes longer than `timeout` ms.
 */
export function acceptTls(
  raw: Socket,
  secureContext: SecureContext,
  alpn: string[] | undefined,
  timeout: number,
  logger: Logger,
): Promise<TLSSocket | undefined> {
  return new Promise((resolve) => {
    const secure = new TLSSocket(raw, {
      isServer: true,
      secureContext,
      ...(alpn ? { ALPNProtocols: alpn } : {}),
    });
    const timer = setTimeout(() => {
      secure.destroy();
      resolve(undefined);
    }, timeout);
    secure.on('error', (err) => {
      logger.debug(`Pool TLS handshake failed: ${err.message}`);
      clearTimeout(timer);
      resolve(undefined);
    });
    secure.once('secure', () => {
      clearTimeout(timer);
      // Node clears this flag only for sockets a tls.Server made; left set, an HTTP/2 session on this socket would wait
      // for a 'secureConnect' that a server-side socket never emits.
      (secure as TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
      resolve(secure);
    });
  });
}

/**
 * Client side TLS options for a pool by NodePass tls code: 1 = TLS 1.3 without verification (the `verify` signal
 * pins the certificate), 2 = verified against `servername`. SNI is sent only for a name, never for an IP literal.
 */
export function clientTlsOptions(tls: 1 | 2, servername: string | undefined, alpn?: string[]): ConnectionOptions {
  return {
    minVersion: 'TLSv1.3',
    rejectUnauthorized: tls === 2,
    ...(servername ? { servername } : {}),
    ...(alpn ? { ALPNProtocols: alpn } : {}),
  };
}

/** `sha256:AB:CD:…` of the certificate a TLS client socket was shown (NodePass's `verify` format). */
export function peerFingerprint(socket: TLSSocket): string | undefined {
  const cert = socket.getPeerX509Certificate();
  return cert ? `sha256:${cert.fingerprint256}` : undefined;
}

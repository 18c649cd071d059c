import type { Socket } from 'node:net';
import { type ConnectionOptions, type SecureContext, TLSSocket } from 'node:tls';
import type { Logger } from '../../common/logger.js';
import type { ServerTransportOptions } from './options.js';

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

export interface MemberConnectionRules {
  /** Refuse connections from other addresses than the handshake's (types 0 and 3; not WebSocket). */
  checkAddress: boolean;
  /** Refuse at once when the pool is full (type 0, which has no other way to say so). */
  checkFull: boolean;
  /** ALPN protocols offered in the TLS handshake. */
  alpn?: string[];
  /** Refuse rather than speak cleartext (HTTP/2, which the server always runs over TLS). */
  requireTls?: boolean;
}

/**
 * The first steps of every server transport with a raw connection on the tunnel port: admission checks, keep-alive,
 * no-delay, and the TLS handshake when TLS is on. Resolves with the socket to speak on, or undefined when the
 * connection was refused (and destroyed).
 */
export async function openMemberConnection(
  raw: Socket,
  options: ServerTransportOptions,
  rules: MemberConnectionRules,
): Promise<Socket | undefined> {
  const { acceptor, keepAlive, handshakeTimeout, logger } = options;
  raw.on('error', () => {});
  if ((rules.checkAddress && !acceptor.allows(raw.remoteAddress)) || (rules.checkFull && acceptor.full)) {
    raw.destroy();
    return undefined;
  }
  raw.setKeepAlive(true, keepAlive);
  raw.setNoDelay(true);
  const secureContext = options.secureContext();
  if (secureContext === undefined) {
    if (!rules.requireTls) return raw;
    raw.destroy();
    return undefined;
  }
  return acceptTls(raw, secureContext, rules.alpn, handshakeTimeout, logger);
}

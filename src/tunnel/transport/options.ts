import type { SecureContext } from 'node:tls';
import type { Logger } from '../../common/logger.js';
import type { PoolAcceptor } from '../pool-acceptor.js';
import type { QuicEndpoint } from './quic.js';

/** What every server-side transport is given. */
export interface ServerTransportOptions {
  acceptor: PoolAcceptor;
  /** The certificate as it is now (tls 1|2; asked per connection so a reloaded certificate applies); undefined = plain. */
  secureContext(): SecureContext | undefined;
  /** Limit for a new member's TLS and transport handshakes, in ms (NP_HANDSHAKE_TIMEOUT). */
  handshakeTimeout: number;
  /** TCP keep-alive and HTTP/2 PING period, in ms (NodePass: NP_REPORT_INTERVAL). */
  keepAlive: number;
  logger: Logger;
  /** Type 1: the instance's QUIC endpoint (UDP on the tunnel port), whose connections this session takes. */
  quic?: QuicEndpoint;
}

/** What every client-side transport is given. */
export interface ClientTransportOptions {
  /** The tunnel address to dial. */
  host: string;
  port: number;
  /** NodePass tls code from the handshake reply. */
  tls: 0 | 1 | 2;
  /** TLS server name (SNI, and the name verified with tls=2), undefined for none. */
  servername: string | undefined;
  /**
   * The name NodePass puts in HTTP headers: the `sni` parameter, else the tunnel hostname, else `none` for an IP
   * (HTTP/2 `:authority`); the WebSocket transport uses the tunnel hostname, as NodePass's does.
   */
  authority: string;
  /** Limit for one member's dial, TLS and id exchange, in ms. */
  dialTimeout: number;
  /** TCP keep-alive and HTTP/2 PING period, in ms. */
  keepAlive: number;
  logger: Logger;
}

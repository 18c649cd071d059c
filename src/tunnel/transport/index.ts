import { Http2ClientTransport, Http2ServerTransport } from './http2.js';
import type { ClientTransportOptions, ServerTransportOptions } from './options.js';
import { quicUnavailable } from './quic.js';
import { TcpClientTransport, TcpServerTransport } from './tcp.js';
import type { PoolClientTransport, PoolServerTransport, PoolType } from './types.js';
import { WebSocketClientTransport, WebSocketServerTransport } from './websocket.js';

export type { ClientTransportOptions, ServerTransportOptions } from './options.js';
export * from './types.js';

/** Pool types whose TLS NodePass forces on: a server with tls=0 runs them as tls=1. */
export function requiresTls(type: PoolType): boolean {
  return type === 1 || type === 3;
}

/** Throws TransportUnavailableError when `type` cannot run here; call at start, before anything listens. */
export function assertTransportAvailable(type: PoolType): void {
  if (type === 1) throw quicUnavailable();
}

export function createServerTransport(type: PoolType, options: ServerTransportOptions): PoolServerTransport {
  switch (type) {
    case 0:
      return new TcpServerTransport(options);
    case 2:
      return new WebSocketServerTransport(options);
    case 3:
      return new Http2ServerTransport(options);
    default:
      throw quicUnavailable();
  }
}

export function createClientTransport(type: PoolType, options: ClientTransportOptions): PoolClientTransport {
  switch (type) {
    case 0:
      return new TcpClientTransport(options);
    case 2:
      return new WebSocketClientTransport(options);
    case 3:
      return new Http2ClientTransport(options);
    default:
      throw quicUnavailable();
  }
}

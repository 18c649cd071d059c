import { Http2ClientTransport, Http2ServerTransport } from './http2.js';
import type { ClientTransportOptions, ServerTransportOptions } from './options.js';
import { QuicClientTransport, QuicServerTransport } from './quic.js';
import { loadQuicLibrary } from './quic-library.js';
import { TcpClientTransport, TcpServerTransport } from './tcp.js';
import type { PoolClientTransport, PoolServerTransport, PoolType } from './types.js';
import { WebSocketClientTransport, WebSocketServerTransport } from './websocket.js';

export type { ClientTransportOptions, ServerTransportOptions } from './options.js';
export { QuicEndpoint } from './quic.js';
export * from './types.js';

/** Pool types whose TLS NodePass forces on: a server with tls=0 runs them as tls=1. */
export function requiresTls(type: PoolType): boolean {
  return type === 1 || type === 3;
}

/**
 * Rejects with TransportUnavailableError when `type` cannot run here (QUIC without its optional package); call at
 * start, before anything listens.
 */
export async function assertTransportAvailable(type: PoolType): Promise<void> {
  if (type === 1) await loadQuicLibrary();
}

export function createServerTransport(type: PoolType, options: ServerTransportOptions): PoolServerTransport {
  switch (type) {
    case 0:
      return new TcpServerTransport(options);
    case 2:
      return new WebSocketServerTransport(options);
    case 3:
      return new Http2ServerTransport(options);
    case 1:
      if (options.quic === undefined) throw new Error('a type=1 server transport needs the QUIC endpoint');
      return new QuicServerTransport(options, options.quic);
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
    case 1:
      return new QuicClientTransport(options);
  }
}

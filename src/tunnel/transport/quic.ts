import { TransportUnavailableError } from './types.js';

/**
 * Type 1 (QUIC) is not carried by this build. Node has no QUIC in its standard library on the versions we support
 * (node:quic exists only experimentally, from Node 23, behind a flag); the one npm library, `@matrixai/quic` (quiche
 * bindings, with a native binary for linux-x64, macOS and Windows only), has not been built into a pool transport yet
 * (see docs/protocol.md §8.3). Rather than fall back silently to another transport, a server with `type=1` refuses to
 * start and a client whose server asks for type 1 says why and keeps retrying (the server may be reconfigured).
 */
export function quicUnavailable(): TransportUnavailableError {
  return new TransportUnavailableError(
    'pool type 1 (QUIC) is not supported by this build: Node.js has no stable QUIC, and no QUIC pool transport is ' +
      'implemented on a library yet; use type=0 (TCP/TLS), 2 (WebSocket) or 3 (HTTP/2)',
  );
}

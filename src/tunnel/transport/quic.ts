import { TransportUnavailableError } from './types.js';

/**
 * Type 1 (QUIC) is not carried by this build. Node has no QUIC in its standard library on the versions we support
 * (node:quic exists only experimentally, from Node 23, behind a flag), and the one npm library, `@matrixai/quic`
 * (quiche bindings), could not be made into a correct, NodePass-compatible pool in the time given (see
 * docs/protocol.md §8). Rather than fall back silently to another transport, a server with `type=1` refuses to start
 * and a client whose server asks for type 1 says why and keeps retrying (the server may be reconfigured).
 */
export function quicUnavailable(): TransportUnavailableError {
  return new TransportUnavailableError(
    'pool type 1 (QUIC) is not supported by this build: Node.js has no stable QUIC and no NodePass-compatible ' +
      'QUIC pool could be built on the available library; use type=0 (TCP/TLS), 2 (WebSocket) or 3 (HTTP/2)',
  );
}

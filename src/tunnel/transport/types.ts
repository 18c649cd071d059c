import type { Socket } from 'node:net';
import type { PoolStream } from '../pool.js';

/** NodePass pool types, the `type` URL parameter: 0 TCP (and TLS), 1 QUIC, 2 WebSocket, 3 HTTP/2. */
export type PoolType = 0 | 1 | 2 | 3;

export const POOL_TYPE_NAMES: Record<PoolType, string> = { 0: 'TCP', 1: 'QUIC', 2: 'WebSocket', 3: 'HTTP/2' };

/** One pool member as the client dialed it, its id read. */
export interface DialedMember {
  id: string;
  stream: PoolStream;
  /** The server certificate's fingerprint as `sha256:AB:CD:…`, when the member came over TLS (for `verify`). */
  fingerprint?: string;
}

/** Client side of a pool transport: dials one member at a time (the PoolDialer decides how many and when). */
export interface PoolClientTransport {
  readonly type: PoolType;
  /** Dials one pool member and reads the id the server gave it. */
  dial(): Promise<DialedMember>;
  /** Closes what members share (the HTTP/2 session); members already dialed close with it where they share it. */
  close(): void;
}

/** Server side of a pool transport: turns connections on the tunnel port into admitted pool members. */
export interface PoolServerTransport {
  readonly type: PoolType;
  /** A TCP connection that arrived on the tunnel port after the handshake. */
  accept(socket: Socket): void;
  /** Closes what the transport holds open (sessions, upgrade servers); idle members are the pool's to close. */
  close(): void;
}

/** A transport that cannot run here (a missing optional dependency): the instance says why and stops. */
export class TransportUnavailableError extends Error {
  override readonly name = 'TransportUnavailableError';
}

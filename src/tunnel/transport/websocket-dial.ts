import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import WebSocket from 'ws';
import { MAX_PAYLOAD, WebSocketStream } from './websocket-stream.js';

export interface WebSocketDialOptions {
  /** ws://… or wss://… */
  url: string;
  /** Limit for the connection, the TLS handshake and the upgrade, in ms. */
  timeout: number;
  /** Extra request headers (NodePass's pool sends `Host` without the port). */
  headers?: Record<string, string>;
  /** TLS options for wss:// (verification, SNI, CA). */
  tls?: ConnectionOptions;
  /** TCP keep-alive period in ms, 0 = off. */
  keepAlive?: number;
}

/** A WebSocket opened as a byte stream, and the TCP (or TLS) socket under it (for its certificate or address). */
export interface DialedWebSocket {
  stream: WebSocketStream;
  socket: Socket;
}

/**
 * The client half of a WebSocket byte stream: binary messages, no compression, `MAX_PAYLOAD`. Resolves once the
 * upgrade is answered with 101; rejects with ws's error for anything else (an HTTP status, a TLS failure, a time-out).
 * Used by the type 2 pool transport and by the connector's hub dialer.
 */
export async function dialWebSocket(options: WebSocketDialOptions): Promise<DialedWebSocket> {
  const ws = new WebSocket(options.url, {
    perMessageDeflate: false,
    maxPayload: MAX_PAYLOAD,
    handshakeTimeout: options.timeout,
    ...(options.headers ? { headers: options.headers } : {}),
    ...options.tls,
  });
  // Wrapped at once: the first message may arrive in the same read as the 101 response, right after 'open'.
  const stream = new WebSocketStream(ws);
  stream.on('error', () => {});
  let socket: Socket | undefined;
  ws.once('upgrade', (res) => {
    socket = res.socket as Socket;
    socket.setNoDelay(true);
    if (options.keepAlive) socket.setKeepAlive(true, options.keepAlive);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        ws.removeListener('error', reject);
        resolve();
      });
      ws.once('error', reject);
    });
  } catch (err) {
    stream.destroy();
    throw err;
  }
  return { stream, socket: socket as Socket };
}

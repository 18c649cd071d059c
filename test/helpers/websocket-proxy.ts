import { once } from 'node:events';
import { createServer, request, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface WebSocketProxy {
  port: number;
  /** Upgrades forwarded so far. */
  upgrades: number;
  close(): Promise<void>;
}

/**
 * A small HTTP reverse proxy in front of `upstreamPort`, as a firewall or CDN that lets only HTTP out would be: plain
 * HTTP requests are re-issued upstream (its own connection, its own headers), WebSocket upgrades are forwarded as a
 * byte tunnel after the 101, and anything that is not HTTP is dropped. It connects upstream from `sourceAddress`, so
 * the tunnel server sees the proxy's address, not the client's. `listenPort` 0 = any free port; a fixed one restarts a
 * proxy where its clients expect it.
 */
export async function webSocketProxy(
  upstreamPort: number,
  sourceAddress = '127.0.0.2',
  listenPort = 0,
): Promise<WebSocketProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const upstream = request(
      {
        host: '127.0.0.1',
        port: upstreamPort,
        localAddress: sourceAddress,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, 'x-forwarded-for': req.socket.remoteAddress ?? '' },
        agent: false,
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const proxy: WebSocketProxy = {
    port: 0,
    upgrades: 0,
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  server.on('upgrade', (req, client: Socket, head: Buffer) => {
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      client.destroy();
      return;
    }
    proxy.upgrades++;
    const upstream = connect({ host: '127.0.0.1', port: upstreamPort, localAddress: sourceAddress });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    upstream.on('connect', () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
  });
  server.listen(listenPort, '127.0.0.1');
  await once(server, 'listening');
  proxy.port = (server.address() as { port: number }).port;
  return proxy;
}

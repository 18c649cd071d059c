import { createHash } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Readable } from 'node:stream';

/** A port that is free for both TCP and UDP on `host` right now. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const server = createServer();
    server.listen(0, host);
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, host, () => resolve(true));
    });
    if (ok) udp.close();
    server.close();
    await once(server, 'close');
    if (ok) return port;
  }
}

export interface TestServer {
  server: Server;
  port: number;
  connections: Socket[];
  close(): Promise<void>;
}

/** A TCP server on loopback whose sockets get `handler`. */
export async function tcpServer(handler: (s: Socket) => void, host = '127.0.0.1', port = 0): Promise<TestServer> {
  const connections: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    connections.push(s);
    s.on('error', () => {});
    handler(s);
  });
  server.listen(port, host);
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as { port: number }).port,
    connections,
    async close() {
      for (const c of connections) c.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** Echoes every byte back and half-closes after the peer does. */
export function echoServer(host = '127.0.0.1', port = 0): Promise<TestServer> {
  return tcpServer((s) => s.pipe(s), host, port);
}

export async function udpEchoServer(host = '127.0.0.1'): Promise<{ socket: UdpSocket; port: number }> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  socket.on('message', (msg, rinfo) => socket.send(msg, rinfo.port, rinfo.address));
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  socket.setRecvBufferSize(4 * 1024 * 1024);
  socket.setSendBufferSize(4 * 1024 * 1024);
  return { socket, port: socket.address().port };
}

export function connectTcp(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host, allowHalfOpen: true }, () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Sends `payload`, half-closes, and collects everything until the peer closes. */
export async function exchange(port: number, payload: Buffer, host = '127.0.0.1'): Promise<Buffer> {
  const s = await connectTcp(port, host);
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.end(payload);
  await once(s, 'close');
  return Buffer.concat(chunks);
}

/** Reads from a socket (or any stream) until it has `n` bytes or it ends. */
export function readBytes(s: Readable, n: number, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => finish(new Error(`timed out after ${got}/${n} bytes`)), timeoutMs);
    const onData = (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= n) finish();
    };
    const onEnd = () => finish();
    function finish(err?: Error) {
      clearTimeout(timer);
      s.removeListener('data', onData);
      s.removeListener('end', onEnd);
      s.removeListener('close', onEnd);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    }
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('close', onEnd);
    // A socket paused explicitly (as the pool leaves its connections) does not flow on a new 'data' listener.
    s.resume();
  });
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A target that records every byte it receives per connection and echoes nothing. */
export async function recorder(host = '127.0.0.1'): Promise<TestServer & { received: Buffer[] }> {
  const received: Buffer[] = [];
  const server = await tcpServer((s) => {
    const index = received.push(Buffer.alloc(0)) - 1;
    s.on('data', (c: Buffer) => {
      received[index] = Buffer.concat([received[index] as Buffer, c]);
    });
    s.on('end', () => s.end());
  }, host);
  return Object.assign(server, { received });
}

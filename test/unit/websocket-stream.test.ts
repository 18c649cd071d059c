import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { MAX_MESSAGE, WebSocketStream } from '../../src/tunnel/transport/websocket-stream.js';
import { readBytes } from '../helpers/net.js';

/** Two WebSocketStreams joined over a real loopback WebSocket. */
async function streamPair(): Promise<{ client: WebSocketStream; server: WebSocketStream; close(): void }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(wss, 'listening');
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const ws = new WebSocket(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/`, { perMessageDeflate: false });
  const client = new WebSocketStream(ws);
  await once(ws, 'open');
  const [serverWs] = await accepted;
  return { client, server: new WebSocketStream(serverWs), close: () => wss.close() };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('WebSocketStream', () => {
  test('a stream nobody reads leaves what arrives in its socket (parked); reading it then gets every byte', async () => {
    const { client, server, close } = await streamPair();
    try {
      const socket = (server.webSocket as unknown as { _socket: import('node:net').Socket })._socket;
      const messages: number[] = [];
      server.webSocket.on('message', (data: Buffer) => messages.push(data.length));
      const payload = randomBytes(200_000);
      client.write(payload);
      const deadline = Date.now() + 3000;
      while (socket.readableLength < 1000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(socket.readableLength > 0, 'the bytes wait unparsed in the socket');
      assert.deepEqual(messages, [], 'ws parsed nothing');
      assert.equal(sha(await readBytes(server, payload.length, 5000)), sha(payload));
    } finally {
      client.destroy();
      server.destroy();
      close();
    }
  });

  test('a reader that stops reading makes the writer wait: bounded buffering, then every byte arrives intact', async () => {
    const { client, server, close } = await streamPair();
    try {
      server.pause();
      const block = randomBytes(64 * 1024);
      const sent: Buffer[] = [];
      let written = 0;
      // Write until the stream asks us to wait; with nothing read on the other side that must come soon.
      while (written < 256 * 1024 * 1024) {
        const chunk = Buffer.from(block);
        chunk.writeUInt32BE(sent.length, 0);
        sent.push(chunk);
        written += chunk.length;
        if (!client.write(chunk)) break;
      }
      assert.ok(written < 32 * 1024 * 1024, `writer was not held back: ${written} bytes accepted`);
      const all = Buffer.concat(sent);
      const got = readBytes(server, all.length, 10_000);
      client.end();
      assert.equal(sha(await got), sha(all));
    } finally {
      client.destroy();
      server.destroy();
      close();
    }
  });

  test('half-close: one side ends, the other still sends, then both close', async () => {
    const { client, server, close } = await streamPair();
    const closed = Promise.all([once(client, 'close'), once(server, 'close')]);
    try {
      client.end('request');
      assert.equal((await readBytes(server, 100, 3000)).toString(), 'request');
      assert.ok(server.readableEnded, 'the FIN marker ended the server side');
      server.end('late reply');
      assert.equal((await readBytes(client, 100, 3000)).toString(), 'late reply');
      await closed;
    } finally {
      close();
    }
  });

  test('a text message (not NodePass framing) fails the stream instead of being taken as data', async () => {
    const { client, server, close } = await streamPair();
    try {
      const failed = once(server, 'error');
      // Read: a stream nobody reads leaves what arrives unparsed in its socket (parked, see WebSocketStream).
      server.resume();
      client.webSocket.send('text', { binary: false });
      const [err] = (await failed) as [Error];
      assert.match(err.message, /text message/);
    } finally {
      client.destroy();
      close();
    }
  });
  test('corked writes leave as one batch (writev): one binary message per chunk, big ones split, order kept', async () => {
    const { client, server, close } = await streamPair();
    try {
      const messages: number[] = [];
      server.webSocket.on('message', (data: Buffer) => messages.push(data.length));
      const chunks = [randomBytes(1000), randomBytes(70_000), randomBytes(MAX_MESSAGE + 5), Buffer.from('tail')];
      const all = Buffer.concat(chunks);
      const got = readBytes(server, all.length, 10_000);
      client.cork();
      for (const c of chunks) client.write(c);
      process.nextTick(() => client.uncork());
      assert.equal(sha(await got), sha(all));
      assert.deepEqual(messages, [1000, 70_000, MAX_MESSAGE, 5, 4], 'each chunk its own message, split at MAX_MESSAGE');
    } finally {
      client.destroy();
      server.destroy();
      close();
    }
  });
});

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { type ClientHttp2Stream, connect as h2connect } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { decodeSignal, encodeSignal } from '../../src/instance/signals.js';
import { connectTcp, echoServer, freePort, readBytes, type TestServer } from '../helpers/net.js';
import { nodepassHandshake } from '../helpers/nodepass-peer.js';
import { type PortholeProcess, spawnPorthole } from '../helpers/porthole.js';
import { webSocketProxy } from '../helpers/websocket-proxy.js';

// Golden tests: the bytes a NodePass peer sees from our server on each pool type, checked by speaking the protocol by
// hand against a real `porthole server://` process. Then the WebSocket pool through an HTTP-only reverse proxy.
// (Type 1, QUIC, is in quic-pool.test.ts.)

const FAST = { NP_REPORT_INTERVAL: '500ms', NP_SERVICE_COOLDOWN: '300ms' };
const KEY = 'golden';

/** The NodePass handshake with this file's key. */
const handshake = (port: number) => nodepassHandshake(port, KEY);

async function startServer(type: number, extra = ''): Promise<{ server: PortholeProcess; port: number }> {
  const port = await freePort();
  const target = await freePort();
  const server = spawnPorthole(
    [`server://${KEY}@127.0.0.1:${port}/127.0.0.1:${target}?mode=2&type=${type}${extra}`],
    FAST,
  );
  await server.ready;
  return { server, port };
}

/** A masked client frame (RFC 6455 §5.2), as every WebSocket client must send. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
  assert.ok(payload.length < 126);
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, masked]);
}

/** Opens a WebSocket by hand; resolves with the socket and the 101 response head, the rest of the bytes unread. */
async function rawUpgrade(port: number): Promise<{ socket: import('node:net').Socket; head: string; rest: Buffer }> {
  const socket = await connectTcp(port);
  const key = randomBytes(16).toString('base64');
  socket.write(
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  let got = Buffer.alloc(0);
  while (!got.includes('\r\n\r\n')) {
    const more = await readBytes(socket, got.length + 1, 3000);
    if (more.length === 0) break;
    got = Buffer.concat([got, more]);
  }
  const end = got.indexOf('\r\n\r\n') + 4;
  const head = got.subarray(0, end).toString('latin1');
  if (head.startsWith('HTTP/1.1 101')) {
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    assert.match(head, new RegExp(`Sec-WebSocket-Accept: ${accept.replace(/[+/]/g, '\\$&')}\\r\\n`, 'i'));
  }
  return { socket, head, rest: got.subarray(end) };
}

/** Reads one unmasked server frame with a payload under 126 bytes. */
async function readServerFrame(socket: import('node:net').Socket, pending: Buffer): Promise<Buffer> {
  let buf = pending;
  while (buf.length < 2 || buf.length < 2 + ((buf[1] as number) & 0x7f)) {
    buf = Buffer.concat([buf, await readBytes(socket, 1, 3000)]);
  }
  return buf.subarray(0, 2 + ((buf[1] as number) & 0x7f));
}

describe('WebSocket pool (type=2) on the wire', () => {
  let server: PortholeProcess;
  let port: number;
  before(async () => {
    ({ server, port } = await startServer(2, '&max=1'));
  });
  after(async () => {
    assert.equal(await server.stop(), 0);
  });

  test('handshake says type 2; members get 0x82 0x04 + id, first 00000000; signals are binary messages; full → 503', async () => {
    const reply = await handshake(port);
    assert.equal(reply.status, 200);
    assert.equal(reply.body, '{"flow":"+","max":1,"tls":"0","type":"2"}\n');

    // First member: the control channel, id 00000000 as one unmasked binary frame, no compression negotiated.
    const control = await rawUpgrade(port);
    assert.match(control.head, /^HTTP\/1\.1 101 /);
    assert.doesNotMatch(control.head, /Sec-WebSocket-Extensions/i);
    assert.deepEqual(await readServerFrame(control.socket, control.rest), Buffer.from([0x82, 0x04, 0, 0, 0, 0]));

    // Second member: a random, non-zero id.
    const member = await rawUpgrade(port);
    const frame = await readServerFrame(member.socket, member.rest);
    assert.deepEqual(frame.subarray(0, 2), Buffer.from([0x82, 0x04]));
    assert.notEqual(frame.readUInt32BE(2), 0);

    // max=1 and one idle member: the next upgrade is refused like NodePass's http.Error(w, "pool full", 503).
    const refused = await rawUpgrade(port);
    assert.match(refused.head, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(refused.head, /Content-Type: text\/plain; charset=utf-8\r\n/);
    refused.socket.destroy();

    // A ping signal as one masked binary message on the control channel; the pong comes back the same way.
    control.socket.write(clientFrame(0x2, encodeSignal({ action: 'ping' }, KEY)));
    let pong: Buffer | undefined;
    for (let i = 0; i < 20 && pong === undefined; i++) {
      const f = await readServerFrame(control.socket, Buffer.alloc(0));
      assert.equal(f[0], 0x82, 'binary frame');
      const signal = decodeSignal(f.subarray(2).toString().trimEnd(), KEY);
      if (signal.action === 'pong') pong = f;
    }
    assert.ok(pong, 'pong received');
    control.socket.destroy();
    member.socket.destroy();
  });
});

describe('HTTP/2 pool (type=3) on the wire', () => {
  let server: PortholeProcess;
  let port: number;
  before(async () => {
    ({ server, port } = await startServer(3, '&max=1'));
  });
  after(async () => {
    assert.equal(await server.stop(), 0);
  });

  test('tls=0 is served as tls=1; POST /stream + 0x00 gets 200 and the id; wrong requests 404; full → 503', async () => {
    const reply = await handshake(port);
    assert.equal(reply.body, '{"flow":"+","max":1,"tls":"1","type":"3"}\n');

    // A TLS client that does not offer h2 is refused (Node's server answers with the no_application_protocol alert).
    const plain = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    const refusal = await new Promise<Error | undefined>((resolve) => {
      plain.once('error', resolve);
      plain.once('close', () => resolve(undefined));
    });
    assert.match(String(refusal?.message), /no application protocol/);
    plain.destroy();

    const session = h2connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    const post = async (
      method: string,
      path: string,
    ): Promise<{ status: number; body: Buffer; stream: ClientHttp2Stream }> => {
      const stream = session.request({ ':method': method, ':path': path, ':authority': 'none' }, { endStream: false });
      stream.on('error', () => {});
      if (method === 'POST') stream.write(Buffer.from([0]));
      else stream.end();
      const [headers] = (await once(stream, 'response')) as [Record<string, string>];
      const body = await readBytes(stream, 4, 3000);
      return { status: Number(headers[':status']), body, stream };
    };
    try {
      const control = await post('POST', '/stream');
      assert.equal(control.status, 200);
      assert.deepEqual(control.body, Buffer.alloc(4));
      const member = await post('POST', '/stream');
      assert.equal(member.status, 200);
      assert.notEqual(member.body.readUInt32BE(0), 0);
      assert.equal((await post('GET', '/stream')).status, 404);
      assert.equal((await post('POST', '/other')).status, 404);
      const full = await post('POST', '/stream');
      assert.equal(full.status, 503);
      assert.equal(full.body.toString(), 'pool full\n');
      // Bytes written in the request body arrive as signals: ping → pong in the response body.
      // The server (tls=1) may send its `verify` first, as soon as the member above is in its pool: skip it.
      control.stream.write(encodeSignal({ action: 'ping' }, KEY));
      let text = '';
      const actions: string[] = [];
      while (!actions.includes('pong') && actions.length < 3) {
        text += (await readBytes(control.stream, 1, 3000)).toString();
        if (!text.endsWith('\n')) continue;
        actions.push(decodeSignal(text.trimEnd(), KEY).action);
        text = '';
      }
      assert.deepEqual(
        actions.filter((a) => a !== 'verify'),
        ['pong'],
      );
    } finally {
      session.destroy();
    }
  });
});

describe('WebSocket pool through an HTTP-only reverse proxy', () => {
  let echo: TestServer;
  before(async () => {
    echo = await echoServer();
  });
  after(async () => {
    await echo.close();
  });

  for (const serverMode of [1, 2] as const) {
    test(`server mode ${serverMode}: the tunnel comes up through the proxy and carries 4 MiB sha256-intact`, async () => {
      const tunnelPort = await freePort();
      const userPort = await freePort();
      const serverTarget = serverMode === 2 ? `127.0.0.1:${echo.port}` : `127.0.0.1:${userPort}`;
      const clientTarget = serverMode === 2 ? `127.0.0.1:${userPort}` : `127.0.0.1:${echo.port}`;
      const server = spawnPorthole(
        [`server://${KEY}@127.0.0.1:${tunnelPort}/${serverTarget}?mode=${serverMode}&type=2&tls=0`],
        FAST,
      );
      await server.ready;
      const proxy = await webSocketProxy(tunnelPort);
      const client = spawnPorthole([`client://${KEY}@127.0.0.1:${proxy.port}/${clientTarget}?mode=2&min=8`], FAST);
      try {
        await Promise.all([server.waitFor(/Tunnel ready/), client.waitFor(/Tunnel ready/)]);
        // The server saw the proxy's address, not the client's: the pool was admitted through the proxy.
        assert.match(server.output(), /Client 127\.0\.0\.2 connected/);
        const payload = randomBytes(4 * 1024 * 1024);
        const s = await connectTcp(userPort);
        const chunks: Buffer[] = [];
        s.on('data', (c: Buffer) => chunks.push(c));
        s.end(payload);
        await once(s, 'close');
        const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
        assert.equal(sha(Buffer.concat(chunks)), sha(payload));
        assert.ok(proxy.upgrades >= 9, `${proxy.upgrades} upgrades went through the proxy`);
      } finally {
        const codes = await Promise.all([client.stop(), server.stop()]);
        await proxy.close();
        assert.deepEqual(codes, [0, 0]);
      }
    });
  }
});

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import { createSecureContext } from 'node:tls';
import { Logger } from '../../src/common/logger.js';
import { createSelfSignedCertificate } from '../../src/tunnel/certificates.js';
import { ConnectionPool, PoolMemberGoneError, PoolTimeoutError } from '../../src/tunnel/pool.js';
import { CONTROL_ID, PoolAcceptor } from '../../src/tunnel/pool-acceptor.js';
import { PoolDialer } from '../../src/tunnel/pool-dialer.js';
import {
  createClientTransport,
  createServerTransport,
  type PoolServerTransport,
} from '../../src/tunnel/transport/index.js';
import { readBytes, sleep } from '../helpers/net.js';

const quiet = new Logger('none');

/** A connected pair of loopback sockets. */
async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { connect } = await import('node:net');
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  const [accepted] = (await once(server, 'connection')) as [Socket];
  server.close();
  return [client, accepted];
}

describe('ConnectionPool', () => {
  test('take hands out the oldest idle connection once', async () => {
    const pool = new ConnectionPool();
    const [a] = await socketPair();
    const [b] = await socketPair();
    pool.add('00000001', a);
    pool.add('00000002', b);
    assert.equal(pool.take()?.id, '00000001');
    assert.equal(pool.take()?.id, '00000002');
    assert.equal(pool.take(), undefined);
    assert.equal(pool.served, 2);
    a.destroy();
    b.destroy();
  });

  test('get waits for a signalled id that arrives later, and times out on one that never does', async () => {
    const pool = new ConnectionPool();
    const waiting = pool.get('abcdef01', 1000);
    const [a] = await socketPair();
    setTimeout(() => pool.add('abcdef01', a), 50);
    assert.equal(await waiting, a);
    await assert.rejects(pool.get('deadbeef', 100), PoolTimeoutError);
    a.destroy();
  });

  test('a member that closed while idle is reported gone at once when asked for, not after the timeout', async () => {
    const pool = new ConnectionPool();
    const [a] = await socketPair();
    pool.add('0000000a', a);
    a.destroy();
    await once(a, 'close');
    const started = Date.now();
    await assert.rejects(pool.get('0000000a', 5000), PoolMemberGoneError);
    assert.ok(Date.now() - started < 100);
    // Reported once: a second request for the id waits (and here times out) like any unknown id.
    await assert.rejects(pool.get('0000000a', 50), PoolTimeoutError);
  });

  test('an idle connection that closes leaves the pool; flush closes the rest', async () => {
    const pool = new ConnectionPool();
    const [a, peerA] = await socketPair();
    const [b] = await socketPair();
    pool.add('00000001', a);
    pool.add('00000002', b);
    peerA.destroy();
    a.destroy();
    await once(a, 'close');
    assert.equal(pool.size, 1);
    pool.flush();
    assert.equal(pool.size, 0);
    assert.ok(b.destroyed);
  });
});

async function poolServer(transport: () => PoolServerTransport | undefined): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    const t = transport();
    if (t) t.accept(s);
    else s.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

// Every transport, in process: the dialer fills the pool through it, ids agree on both sides, bytes cross both ways.
const CASES = [
  { type: 0, tls: 0 },
  { type: 0, tls: 1 },
  { type: 2, tls: 0 },
  { type: 2, tls: 1 },
  { type: 3, tls: 1 },
] as const;

for (const { type, tls } of CASES) {
  describe(`pool transport type=${type} tls=${tls}: acceptor and dialer`, () => {
    test('control channel first with id 00000000, then min=64 warm within 2 s with matching ids', async () => {
      const serverPool = new ConnectionPool();
      const clientPool = new ConnectionPool();
      const cert = tls === 1 ? await createSelfSignedCertificate() : undefined;
      const secureContext = cert
        ? createSecureContext({ cert: cert.cert, key: cert.key, minVersion: 'TLSv1.3' })
        : undefined;
      let serverControl: Duplex | undefined;
      const acceptor = new PoolAcceptor({
        pool: serverPool,
        clientAddress: '127.0.0.1',
        max: 1024,
        onControl: (s) => {
          serverControl = s;
        },
        logger: quiet,
      });
      const serverTransport = createServerTransport(type, {
        acceptor,
        secureContext: () => secureContext,
        handshakeTimeout: 2000,
        keepAlive: 5000,
        logger: quiet,
      });
      const { server, port } = await poolServer(() => serverTransport);
      const fingerprints = new Set<string>();
      let clientControl: Duplex | undefined;
      const clientTransport = createClientTransport(type, {
        host: '127.0.0.1',
        port,
        tls,
        servername: undefined,
        authority: 'none',
        dialTimeout: 2000,
        keepAlive: 5000,
        logger: quiet,
      });
      const dialer = new PoolDialer({
        pool: clientPool,
        transport: clientTransport,
        min: 64,
        max: 64,
        minInterval: 100,
        maxInterval: 1000,
        onControl: (s) => {
          clientControl = s;
        },
        onCertificate: (fp) => fingerprints.add(fp),
        logger: quiet,
      });
      const started = Date.now();
      try {
        await dialer.start();
        while (clientPool.size < 64 && Date.now() - started < 2000) await sleep(20);
        assert.equal(clientPool.size, 64, `warm after ${Date.now() - started} ms`);
        await sleep(50);
        assert.equal(serverPool.size, 64);
        assert.ok(serverControl && clientControl, 'both sides have the control channel');
        if (cert) assert.deepEqual([...fingerprints], [cert.fingerprint]);
        // The ids agree: what the server's ingress takes, the client's egress finds, and bytes cross both ways.
        const taken = serverPool.take();
        assert.ok(taken);
        const dialedBefore = dialer.dialed;
        const clientSide = await clientPool.get(taken.id, 1000);
        assert.equal(dialer.dialed, dialedBefore, 'a warm pool serves without a new dial');
        taken.socket.write('through the pool');
        assert.equal((await readBytes(clientSide, 16)).toString(), 'through the pool');
        clientSide.write('and back');
        assert.equal((await readBytes(taken.socket, 8)).toString(), 'and back');
        clientControl?.write('ctl');
        assert.equal((await readBytes(serverControl as Duplex, 3)).toString(), 'ctl');
        assert.notEqual(taken.id, CONTROL_ID);
        // Half-close: the client ends its direction, the server still answers, then ends too.
        clientSide.end();
        await once(taken.socket, 'end');
        taken.socket.end('late reply');
        assert.equal((await readBytes(clientSide, 10)).toString(), 'late reply');
        taken.socket.destroy();
        clientSide.destroy();
      } finally {
        dialer.stop();
        clientTransport.close();
        serverTransport.close();
        serverPool.close();
        clientPool.close();
        serverControl?.destroy();
        clientControl?.destroy();
        server.close();
      }
    });
  });
}

describe('pool acceptor admission', () => {
  test('refuses connections from another address than the handshake client', async () => {
    const pool = new ConnectionPool();
    const acceptor = new PoolAcceptor({
      pool,
      clientAddress: '127.0.0.2',
      max: 10,
      onControl: () => assert.fail('no control channel for a stranger'),
      logger: quiet,
    });
    const transport = createServerTransport(0, {
      acceptor,
      secureContext: () => undefined,
      handshakeTimeout: 1000,
      keepAlive: 5000,
      logger: quiet,
    });
    const { server, port } = await poolServer(() => transport);
    const { connect } = await import('node:net');
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    const got = await readBytes(s, 4, 2000);
    assert.equal(got.length, 0, 'no id was written');
    server.close();
  });
});

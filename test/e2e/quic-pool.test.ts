import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { decodeSignal, encodeSignal } from '../../src/instance/signals.js';
import { createSelfSignedCertificate } from '../../src/tunnel/certificates.js';
import { clientCrypto, QUIC_LOGGER } from '../../src/tunnel/transport/quic-library.js';
import { connectTcp, echoServer, exchange, freePort, sleep } from '../helpers/net.js';
import { nodepassHandshake } from '../helpers/nodepass-peer.js';
import { type PortholeProcess, spawnPorthole } from '../helpers/porthole.js';

// Pool type 1 (QUIC, NodePass's np-quic) against real `porthole` processes: the bytes a NodePass peer exchanges with
// our server, spoken by hand with the same QUIC library; refusals (ALPN, first byte, client address, certificate);
// garbage datagrams on the UDP port; and what happens when the optional package is not there.
// (The dual-end matrix and the kill -9 tests for type 1 are in dual-end.test.ts.)

const FAST = { NP_REPORT_INTERVAL: '500ms', NP_SERVICE_COOLDOWN: '300ms' };
const KEY = 'quic';

type QuicLibrary = typeof import('@matrixai/quic');
type QuicClient = Awaited<ReturnType<QuicLibrary['QUICClient']['createQUICClient']>>;
type QuicStream = ReturnType<QuicClient['connection']['newStream']>;

const quic: QuicLibrary | undefined = await import('@matrixai/quic').catch(() => undefined);
const SKIP = quic ? false : 'optional package @matrixai/quic cannot load here';

/**
 * NODE_OPTIONS that make `@matrixai/quic` unresolvable in a porthole process, as on an install without the optional
 * package (a module resolve hook, registered before the CLI loads).
 */
const HIDE_QUIC = {
  NODE_OPTIONS: `--import=data:text/javascript,${encodeURIComponent(
    `import { register } from 'node:module'; register(${JSON.stringify(
      `data:text/javascript,${encodeURIComponent(
        `export async function resolve(s, c, next) {
          if (s === '@matrixai/quic' || s.startsWith('@matrixai/quic/')) {
            const e = new Error("Cannot find package '" + s + "' imported from " + c.parentURL);
            e.code = 'ERR_MODULE_NOT_FOUND';
            throw e;
          }
          return next(s, c);
        }`,
      )}`,
    )});`,
  )}`,
};

/** The NodePass handshake with this file's key. */
const handshake = (port: number) => nodepassHandshake(port, KEY);

async function startServer(extra = ''): Promise<{ server: PortholeProcess; port: number }> {
  const port = await freePort();
  const target = await freePort();
  const server = spawnPorthole(
    [`server://${KEY}@127.0.0.1:${port}/127.0.0.1:${target}?mode=2&type=1&log=debug${extra}`],
    FAST,
  );
  await server.ready;
  return { server, port };
}

/** A QUIC connection to the server as a NodePass client makes it (no verification, tls=1). */
function quicConnect(port: number, options: { alpn?: string; localHost?: string } = {}): Promise<QuicClient> {
  const lib = quic as QuicLibrary;
  return lib.QUICClient.createQUICClient(
    {
      host: '127.0.0.1',
      port,
      ...(options.localHost ? { localHost: options.localHost } : {}),
      crypto: clientCrypto,
      config: { verifyPeer: false, applicationProtos: [options.alpn ?? 'np-quic'], maxIdleTimeout: 5000 },
      logger: QUIC_LOGGER,
    },
    { timer: 5000 },
  );
}

/** Reads exactly `n` bytes from a QUIC stream, or rejects (reset, closed, or nothing within `ms`). */
async function readQuic(stream: QuicStream, n: number, ms = 5000): Promise<Buffer> {
  const reader = stream.readable.getReader();
  const chunks: Buffer[] = [];
  let got = 0;
  const timer = setTimeout(() => void reader.cancel(new Error('timed out')).catch(() => {}), ms);
  try {
    while (got < n) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended after ${got} of ${n} bytes`);
      chunks.push(Buffer.from(value));
      got += value.byteLength;
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  return Buffer.concat(chunks);
}

async function writeQuic(stream: QuicStream, bytes: Buffer): Promise<void> {
  const writer = stream.writable.getWriter();
  await writer.write(bytes);
  writer.releaseLock();
}

/** The first stream of a connection: 0x00 in, the control channel's all-zero id out. */
async function openControl(client: QuicClient): Promise<QuicStream> {
  const control = client.connection.newStream('bidi');
  await writeQuic(control, Buffer.from([0x00]));
  assert.equal((await readQuic(control, 4)).toString('hex'), '00000000', 'the first member is the control channel');
  return control;
}

/** Waits for a process to exit by itself (SIGKILL after `ms`); resolves with its exit code. */
async function exitOf(p: PortholeProcess, ms = 10_000): Promise<number | null> {
  if (p.proc.exitCode !== null) return p.proc.exitCode;
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), ms);
  const [code] = await once(p.proc, 'exit');
  clearTimeout(timer);
  return code as number | null;
}

describe('QUIC pool (type=1) on the wire', { skip: SKIP }, () => {
  test('tls=0 runs as tls=1 (said at start and in the handshake), ALPN np-quic, 0x00 in, the 4-byte id out', async () => {
    const { server, port } = await startServer('&tls=0');
    let client: QuicClient | undefined;
    try {
      assert.match(server.output(), /Pool type 1 always runs over TLS: tls=0 runs as tls=1/);
      assert.match(server.output(), /pool type 1 \(QUIC\), tls 1,/);
      const reply = await handshake(port);
      assert.equal(reply.status, 200);
      assert.deepEqual(JSON.parse(reply.body), { flow: '+', max: 1024, tls: '1', type: '1' });

      client = await quicConnect(port);
      // The server shows its in-memory certificate (tls=1: the client pins it through `verify`, never by a CA).
      assert.equal(client.connection.getRemoteCertsChain().length, 1);
      await openControl(client);
      const member = client.connection.newStream('bidi');
      await writeQuic(member, Buffer.from([0x00]));
      const id = await readQuic(member, 4);
      assert.notEqual(id.readUInt32BE(0), 0, 'later members get random ids');
      assert.match(server.output(), /QUIC pool connection from (::ffff:)?127\.0\.0\.1:\d+/);
    } finally {
      await client?.destroy({ force: true }).catch(() => {});
      assert.equal(await server.stop(), 0);
    }
  });

  test('a stream whose first byte is not 0x00 is reset; the connection and its other streams carry on', async () => {
    const { server, port } = await startServer();
    let client: QuicClient | undefined;
    try {
      assert.equal((await handshake(port)).status, 200);
      client = await quicConnect(port);
      await openControl(client);
      const bad = client.connection.newStream('bidi');
      await writeQuic(bad, Buffer.from('GET / HTTP/1.1\r\n\r\n'));
      await assert.rejects(readQuic(bad, 4));
      await server.waitFor(/QUIC pool stream refused: first byte 71, expected 0x00/);
      const good = client.connection.newStream('bidi');
      await writeQuic(good, Buffer.from([0x00]));
      assert.equal((await readQuic(good, 4)).length, 4);
    } finally {
      await client?.destroy({ force: true }).catch(() => {});
      assert.equal(await server.stop(), 0);
    }
  });

  test('a full pool (max=1 and one idle member) resets the next stream; the control channel carries on', async () => {
    const { server, port } = await startServer('&max=1');
    let client: QuicClient | undefined;
    try {
      assert.equal((await handshake(port)).status, 200);
      client = await quicConnect(port);
      const control = await openControl(client);
      const member = client.connection.newStream('bidi');
      await writeQuic(member, Buffer.from([0x00]));
      assert.equal((await readQuic(member, 4)).length, 4);
      const extra = client.connection.newStream('bidi');
      await writeQuic(extra, Buffer.from([0x00]));
      await assert.rejects(readQuic(extra, 4, 1000));
      await server.waitFor(/QUIC pool stream refused: the pool is full/);
      // The control stream still works (within the server's 1.5 s silence limit of FAST): ping gets its pong,
      // after the server's verify (tls=1).
      await writeQuic(control, encodeSignal({ action: 'ping' }, KEY));
      const actions: string[] = [];
      let text = '';
      while (!actions.includes('pong') && actions.length < 5) {
        text += (await readQuic(control, 1, 3000)).toString('latin1');
        for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n')) {
          actions.push(decodeSignal(text.slice(0, nl), KEY).action);
          text = text.slice(nl + 1);
        }
      }
      assert.ok(actions.includes('pong'), actions.join(','));
      assert.doesNotMatch(server.output(), /Tunnel down/);
    } finally {
      await client?.destroy({ force: true }).catch(() => {});
      assert.equal(await server.stop(), 0);
    }
  });

  test('a connection with another ALPN is refused in the TLS handshake', async () => {
    const { server, port } = await startServer();
    try {
      assert.equal((await handshake(port)).status, 200);
      await assert.rejects(quicConnect(port, { alpn: 'h3' }));
      assert.equal(server.proc.exitCode, null);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  test('a QUIC connection from another address than the handshake client gets no pool member', async () => {
    const { server, port } = await startServer();
    let stranger: QuicClient | undefined;
    try {
      assert.equal((await handshake(port)).status, 200);
      // The handshake came from 127.0.0.1; this connection comes from 127.0.0.2.
      stranger = await quicConnect(port, { localHost: '127.0.0.2' }).catch(() => undefined);
      if (stranger) {
        const stream = stranger.connection.newStream('bidi');
        await writeQuic(stream, Buffer.from([0x00])).catch(() => {});
        await assert.rejects(readQuic(stream, 4, 3000));
      }
      assert.match(server.output(), /Pool connection from (::ffff:)?127\.0\.0\.2 refused: not the handshake client/);
    } finally {
      await stranger?.destroy({ force: true }).catch(() => {});
      assert.equal(await server.stop(), 0);
    }
  });
});

/** A dual-end QUIC tunnel in front of an echo server: server mode 2, the client the ingress. */
async function startTunnel(
  targetPort: number,
  serverExtra = '',
  clientExtra = '',
  clientEnv: Record<string, string> = {},
) {
  const tunnelPort = await freePort();
  const port = await freePort();
  const server = spawnPorthole(
    [`server://${KEY}@127.0.0.1:${tunnelPort}/127.0.0.1:${targetPort}?mode=2&type=1${serverExtra}`],
    FAST,
  );
  await server.ready;
  const client = spawnPorthole(
    [`client://${KEY}@127.0.0.1:${tunnelPort}/127.0.0.1:${port}?mode=2&min=8${clientExtra}`],
    { ...FAST, ...clientEnv },
  );
  return {
    server,
    client,
    tunnelPort,
    port,
    async stop() {
      const codes = await Promise.all([client.stop(), server.stop()]);
      assert.deepEqual(
        codes,
        [0, 0],
        `both ends exit cleanly; client:\n${client.output().slice(-1500)}\nserver:\n${server.output().slice(-1500)}`,
      );
    },
  };
}

describe('QUIC pool (type=1) under bad input', { skip: SKIP }, () => {
  test('a server whose UDP tunnel port is taken fails at start, saying so, and leaves nothing listening', async () => {
    const port = await freePort();
    const squatter = createSocket('udp4');
    await new Promise<void>((resolve) => squatter.bind(port, '127.0.0.1', resolve));
    try {
      const server = spawnPorthole([`server://k@127.0.0.1:${port}/127.0.0.1:9?mode=2&type=1`]);
      assert.notEqual(await exitOf(server), 0);
      assert.match(server.output(), new RegExp(`QUIC listener cannot bind UDP 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
      await assert.rejects(connectTcp(port));
    } finally {
      squatter.close();
    }
  });

  test('garbage datagrams on the UDP tunnel port leave the tunnel serving', async () => {
    const echo = await echoServer();
    const tunnel = await startTunnel(echo.port);
    try {
      await Promise.all([tunnel.server.waitFor(/Tunnel ready/), tunnel.client.waitFor(/Tunnel ready/)]);
      const senders = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const s = createSocket('udp4');
          await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
          return s;
        }),
      );
      for (let i = 0; i < 3000; i++) {
        const datagram = randomBytes(1 + ((i * 97) % 1400));
        if (i % 3 === 0 && datagram.length >= 7) {
          // A QUIC v1 long header (Initial, Handshake, 0-RTT or Retry) with random ids and payload: parsed, not just
          // dropped as noise.
          datagram[0] = 0xc0 | ((i % 4) << 4) | (datagram[0] as number & 0x0f);
          datagram.writeUInt32BE(1, 1);
          datagram[5] = i % 21;
        }
        if (i % 7 === 0 && datagram.length >= 9) datagram[0] = 0x40 | (datagram[0] as number & 0x3f); // short header
        (senders[i % senders.length] as (typeof senders)[0]).send(datagram, tunnel.tunnelPort, '127.0.0.1');
        if (i % 100 === 0) await sleep(5);
      }
      for (const s of senders) s.close();
      await sleep(300);
      assert.equal(tunnel.server.proc.exitCode, null, 'the server is still running');
      const reply = await exchange(tunnel.port, Buffer.from('still here')).catch((err: Error) => err.message);
      assert.equal(String(reply), 'still here', `server:\n${tunnel.server.output().slice(-2000)}`);
    } finally {
      await tunnel.stop();
      await echo.close();
    }
  });

  test('tls=2: a client that does not trust the certificate, or dials another name, refuses it and says why', async () => {
    const echo = await echoServer();
    const dir = mkdtempSync(join(tmpdir(), 'porthole-quic-'));
    const pair = await createSelfSignedCertificate('tunnel.test', ['tunnel.test']);
    writeFileSync(join(dir, 'crt.pem'), pair.cert);
    writeFileSync(join(dir, 'key.pem'), pair.key);
    const tls = `&tls=2&crt=${join(dir, 'crt.pem')}&key=${join(dir, 'key.pem')}`;
    const untrusted = await startTunnel(echo.port, tls, '&sni=tunnel.test');
    try {
      await untrusted.client.waitFor(/server certificate refused: certificate not trusted \(issuer CN=tunnel\.test\)/);
      assert.doesNotMatch(untrusted.client.output(), /Tunnel ready/);
    } finally {
      await untrusted.stop();
    }
    const wrongName = await startTunnel(echo.port, tls, '&sni=other.test', {
      NODE_EXTRA_CA_CERTS: join(dir, 'crt.pem'),
    });
    try {
      await wrongName.client.waitFor(/server certificate refused: Hostname\/IP does not match[^\n]*other\.test/);
      assert.doesNotMatch(wrongName.client.output(), /Tunnel ready/);
    } finally {
      await wrongName.stop();
      await echo.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('QUIC pool (type=1) without the optional package', () => {
  test('a server with type=1 fails at start, naming the package to install, and leaves nothing listening', async () => {
    const port = await freePort();
    const server = spawnPorthole([`server://k@127.0.0.1:${port}/127.0.0.1:9?mode=2&type=1`], HIDE_QUIC);
    const code = await exitOf(server);
    assert.notEqual(code, 0);
    assert.match(
      server.output(),
      /pool type 1 \(QUIC\) needs the optional package @matrixai\/quic@2 [^\n]*cannot be loaded here: Cannot find package '@matrixai\/quic'[^\n]*Install it with `npm install @matrixai\/quic@2`/,
    );
    await assert.rejects(connectTcp(port));
  });

  test('a client whose server asks for type 1 says why and keeps retrying', async () => {
    const fake = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', Connection: 'close' });
      res.end('{"flow":"-","max":8,"tls":"1","type":"1"}\n');
    });
    fake.listen(0, '127.0.0.1');
    await once(fake, 'listening');
    const port = (fake.address() as { port: number }).port;
    const local = await freePort();
    const client = spawnPorthole([`client://k@127.0.0.1:${port}/127.0.0.1:${local}?mode=2`], {
      ...FAST,
      ...HIDE_QUIC,
    });
    try {
      await client.waitFor(
        /failed: pool type 1 \(QUIC\) needs the optional package @matrixai\/quic@2[^\n]*\n[\s\S]*failed: pool type 1/,
      );
    } finally {
      assert.equal(await client.stop(), 0);
      fake.close();
    }
  });
});

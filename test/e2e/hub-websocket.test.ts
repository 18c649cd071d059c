import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { encodeFrame } from '../../src/hub/protocol.js';
import { dialWebSocket } from '../../src/tunnel/transport/websocket-dial.js';
import {
  admin,
  BOOT_TOKEN,
  type ConnectorProcess,
  client,
  type HubProcess,
  removeDir,
  startConnector,
  startHub,
  tempDir,
  transfer,
  until,
} from '../helpers/hub.js';
import { echoServer, exchange, readBytes, sha256, type TestServer, udpEchoServer } from '../helpers/net.js';
import { runPorthole } from '../helpers/porthole.js';
import { type WebSocketProxy, webSocketProxy } from '../helpers/websocket-proxy.js';

const WS_PATH = '/porthole/ws';

/** `connector configure` with the given hub address and flags; fast reconnects for the test. */
async function configure(
  name: string,
  dir: string,
  args: string[],
): Promise<{ path: string; config: { hub: string; tls: boolean; fingerprint: string } }> {
  const path = join(dir, `${name}.json`);
  const r = await runPorthole(
    ['connector', 'configure', '--config', path, '--token', BOOT_TOKEN, '--name', name, ...args],
    15_000,
  );
  assert.equal(r.code, 0, r.output);
  const config = JSON.parse(readFileSync(path, 'utf8'));
  config.reconnect = { initialDelay: 100, maxDelay: 500, maxRetries: 0 };
  writeFileSync(path, JSON.stringify(config, null, 2));
  return { path, config };
}

/** One raw HTTP/1.1 exchange over TLS with the hub's tunnel listener; resolves with what came back until close. */
function rawTls(port: number, text: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => s.write(text));
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.on('error', (err) => (chunks.length > 0 ? resolve(Buffer.concat(chunks).toString('latin1')) : reject(err)));
    s.setTimeout(15_000, () => s.destroy(new Error('no answer from the tunnel listener')));
  });
}

function httpGet(port: number, host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`${host}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function echoes(port: number): Promise<boolean> {
  const payload = randomBytes(4096);
  const got = await transfer(port, payload, 'echo').catch(() => Buffer.alloc(0));
  return got.equals(payload);
}

describe('hub session over WebSocket: connectors that reach the hub only through HTTP', { timeout: 180_000 }, () => {
  let hub: HubProcess;
  let dir: string;
  let wsPort: number;
  let proxy: WebSocketProxy;
  /** Behind the WebSocket-only reverse proxy, on the hub's plain WebSocket listener. */
  let viaProxy: ConnectorProcess;
  /** wss:// straight to the hub's TLS tunnel listener (same port as the framed protocol). */
  let viaWss: ConnectorProcess;
  let echo: TestServer;
  let udpEcho: Awaited<ReturnType<typeof udpEchoServer>>;
  let origin: Server;
  let originPort: number;

  before(async () => {
    dir = tempDir('porthole-hub-ws-');
    hub = await startHub({ extra: ['--ws-listen', '127.0.0.1:0'] });
    wsPort = Number(/WebSocket:\s+\S+:(\d+) \(plain HTTP, path \/porthole\/ws\)/.exec(hub.output())?.[1]);
    assert.ok(wsPort > 0, hub.output());
    proxy = await webSocketProxy(wsPort);
    echo = await echoServer();
    udpEcho = await udpEchoServer();
    origin = createServer((req, res) => res.end(`origin saw ${req.headers.host} ${req.url}`));
    origin.listen(0, '127.0.0.1');
    await once(origin, 'listening');
    originPort = (origin.address() as { port: number }).port;
  });

  after(async () => {
    await viaProxy?.stop();
    await viaWss?.stop();
    await hub?.stop();
    await proxy?.close();
    echo?.close();
    udpEcho?.socket.close();
    origin?.close();
    removeDir(dir);
    if (hub) removeDir(hub.stateDir);
  });

  test('a connector behind a WebSocket-only HTTP proxy: TCP port and HTTP site work, every hub connection upgraded', async () => {
    const { path, config } = await configure('proxied', dir, ['--hub', `ws://127.0.0.1:${proxy.port}${WS_PATH}`]);
    assert.equal(config.hub, `ws://127.0.0.1:${proxy.port}${WS_PATH}`);
    assert.equal(config.tls, false);
    const registrations = proxy.upgrades;
    assert.ok(registrations >= 1, 'the registration went through the proxy');
    viaProxy = await startConnector(path);
    // The control connection and the pre-dialed data connections (pool 8) are all WebSockets through the proxy.
    await until(() => proxy.upgrades >= registrations + 1 + 8, 'control + 8 data connections through the proxy');

    const tunnels = (await admin(hub, 'GET', '/tunnel/list')).body.tunnels as Array<Record<string, unknown>>;
    const seen = tunnels.find((t) => t.name === 'proxied');
    assert.equal(seen?.state, 2, 'online');
    assert.equal(seen?.address, '127.0.0.2', "the hub sees the proxy's address");

    const port = (await client(viaProxy, 'GET', '/ports/allocate')).body.port as number;
    const created = await client(viaProxy, 'POST', '/traffic/create', {
      ports: [{ port, destination: '127.0.0.1', dstPort: echo.port }],
      https: [{ domain: 'ws.test', destination: '127.0.0.1', port: originPort }],
    });
    assert.deepEqual(created.body, { status: true, error: '' });
    await until(() => echoes(port), 'the hub port to forward');

    const payload = randomBytes(16 * 1024 * 1024);
    const got = await exchange(port, payload);
    assert.equal(sha256(got), sha256(payload), '16 MiB echoed through hub -> WebSocket -> connector, intact');
    const burst = await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        const data = randomBytes(2048 + i);
        return (await exchange(port, data)).equals(data);
      }),
    );
    assert.equal(burst.filter(Boolean).length, 24, 'concurrent connections beyond the pool all echo');

    await until(
      async () => (await httpGet(hub.httpPort, 'ws.test', '/x').catch(() => ({ status: 0 }))).status === 200,
      'the site',
    );
    type Traffic = { httpStreams: number; bytesIn: number; bytesOut: number };
    const traffic = async () => ((await client(viaProxy, 'GET', '/info')).body as { traffic: Traffic }).traffic;
    // Let the connections of the polling above close and be counted, so the next one is the only change.
    let before = await traffic();
    await until(async () => {
      const now = await traffic();
      const settled = now.httpStreams === before.httpStreams && now.bytesIn === before.bytesIn;
      before = now;
      return settled;
    }, 'the site counters to settle');
    const page = await httpGet(hub.httpPort, 'ws.test', '/hello?a=1');
    assert.equal(page.status, 200);
    assert.match(page.body, /^origin saw \S+ \/hello\?a=1$/);
    // A site stream over the WebSocket link counts its bytes like a socket one (a stream has no bytesRead of its own).
    await until(async () => {
      const now = await traffic();
      assert.ok(Number.isFinite(now.bytesIn) && Number.isFinite(now.bytesOut), JSON.stringify(now));
      return (
        now.httpStreams === before.httpStreams + 1 &&
        now.bytesIn - before.bytesIn > 'GET /hello?a=1 HTTP/1.1\r\n'.length &&
        now.bytesOut - before.bytesOut > page.body.length
      );
    }, 'the site connection in the connector traffic counters');
  });

  test('wss:// on the TLS tunnel listener itself (--transport wss): pinned, port mappings TCP and UDP to the other tunnel', async () => {
    const { path, config } = await configure('secure', dir, ['--hub', hub.address, '--transport', 'wss']);
    assert.equal(config.hub, `wss://${hub.address}${WS_PATH}`);
    assert.equal(config.tls, true);
    assert.equal(config.fingerprint, hub.fingerprint, 'the hub certificate is pinned as over TCP');
    viaWss = await startConnector(path);

    const target = (await client(viaProxy, 'GET', '/ports/allocate')).body.port as number;
    const udpTarget = (await client(viaProxy, 'GET', '/ports/allocate')).body.port as number;
    const ruled = await client(viaProxy, 'POST', '/traffic/create', {
      ports: [
        { port: target, destination: '127.0.0.1', dstPort: echo.port },
        { port: udpTarget, destination: '127.0.0.1', dstPort: udpEcho.port },
      ],
    });
    assert.equal(ruled.body.status, true, ruled.body.error);
    const { freePort } = await import('../helpers/net.js');
    const localTcp = await freePort();
    const localUdp = await freePort();
    const maps = await client(viaWss, 'POST', '/traffic/create', {
      portmaps: [
        { port: localTcp, dstPort: target, destination: '', transport: 'tcp', label: 'tcp' },
        { port: localUdp, dstPort: udpTarget, destination: '', transport: 'udp', label: 'udp' },
      ],
    });
    assert.deepEqual(maps.body, { status: true, error: '' });
    const payload = randomBytes(4 * 1024 * 1024);
    await until(() => echoes(localTcp), 'the TCP mapping');
    assert.equal(sha256(await exchange(localTcp, payload)), sha256(payload), 'wss -> hub -> ws via proxy -> echo');

    const udp = createSocket('udp4');
    udp.bind(0, '127.0.0.1');
    await once(udp, 'listening');
    const replies: string[] = [];
    udp.on('message', (m) => replies.push(m.toString()));
    const datagrams = Array.from({ length: 10 }, (_, i) => `datagram-${i}-${'y'.repeat(i * 100)}`);
    try {
      for (const d of datagrams) udp.send(d, localUdp, '127.0.0.1');
      await until(() => replies.length >= datagrams.length, 'UDP echoes over two WebSocket links', 10_000);
    } finally {
      udp.close();
    }
    assert.deepEqual(replies.sort(), [...datagrams].sort(), 'each datagram comes back whole');
  });

  test('bad input on the WebSocket endpoints is answered or dropped, and changes nothing', async () => {
    const plain = await rawTls(hub.tunnelPort, `GET ${WS_PATH} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n`);
    assert.match(plain, /^HTTP\/1\.1 426 /, 'a request that is not an upgrade: 426');
    const upgrade = (p: string) =>
      `GET ${p} HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    assert.match(await rawTls(hub.tunnelPort, upgrade('/elsewhere')), /^HTTP\/1\.1 404 [\s\S]*\/porthole\/ws/);
    assert.equal(
      await rawTls(hub.tunnelPort, randomBytes(64).fill(0x47, 0, 1)),
      '',
      'garbage that is not HTTP: closed',
    );

    // A WebSocket on the right path that speaks garbage, then one that sends a frame with an unknown first message.
    for (const bytes of [randomBytes(300).fill(0xff, 0, 4), encodeFrame({ type: 'bogus' } as never)]) {
      const { stream } = await dialWebSocket({ url: `ws://127.0.0.1:${wsPort}${WS_PATH}`, timeout: 5000 });
      const closed = once(stream, 'close');
      stream.on('data', () => {});
      stream.write(bytes);
      await closed;
    }
    // A text message on the hub's binary stream ends that WebSocket only.
    const { stream: textSender } = await dialWebSocket({ url: `ws://127.0.0.1:${wsPort}${WS_PATH}`, timeout: 5000 });
    const textClosed = once(textSender, 'close');
    textSender.webSocket.send('{"v":1}');
    await textClosed;

    // The connector refuses a hub whose certificate is not the pinned one.
    const bad = await runPorthole([
      'connector',
      'configure',
      '--config',
      join(dir, 'bad.json'),
      '--hub',
      `wss://127.0.0.1:${hub.tunnelPort}`,
      '--token',
      BOOT_TOKEN,
      '--fingerprint',
      `sha256:${'00:'.repeat(31)}00`,
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.output, /does not match the pinned/);
    const refusals: Array<[string[], RegExp]> = [
      [['--hub', hub.address, '--transport', 'carrier-pigeon'], /--transport: tcp, ws, wss/],
      [['--hub', 'ws://'], /invalid WebSocket URL/],
      [['--hub', `ws://127.0.0.1:${wsPort}`, '--no-tls'], /--no-tls does not apply/],
      [['--hub', `ws://127.0.0.1:${wsPort}`, '--transport', 'wss'], /contradicts/],
    ];
    for (const [args, why] of refusals) {
      const r = await runPorthole([
        'connector',
        'configure',
        '--config',
        join(dir, 'bad.json'),
        '--token',
        BOOT_TOKEN,
        ...args,
      ]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.output}`);
      assert.match(r.output, why);
    }
    assert.throws(() => readFileSync(join(dir, 'bad.json')), /ENOENT/, 'no config written by a refused configure');

    // Everything still works.
    const tunnels = (await admin(hub, 'GET', '/tunnel/list')).body.tunnels as Array<Record<string, unknown>>;
    assert.deepEqual(
      tunnels
        .filter((t) => t.state === 2)
        .map((t) => t.name)
        .sort(),
      ['proxied', 'secure'],
    );
    const port = ((await client(viaProxy, 'GET', '/ports/list')).body as Array<{ port: number; dstPort: number }>).find(
      (p) => p.dstPort === echo.port,
    )?.port as number;
    assert.ok(await echoes(port));
  });

  test('the proxy vanishing mid-stream ends the session; the connector comes back through the restarted proxy', async () => {
    const port = ((await client(viaProxy, 'GET', '/ports/list')).body as Array<{ port: number; dstPort: number }>).find(
      (p) => p.dstPort === echo.port,
    )?.port as number;
    const { connectTcp } = await import('../helpers/net.js');
    const user = await connectTcp(port);
    user.on('error', () => {});
    user.write(randomBytes(1024));
    await readBytes(user, 1024, 10_000);
    const userEnded = once(user, 'end');
    const proxyPort = proxy.port;
    await proxy.close();
    // The stream's WebSocket is gone: the hub ends the user's connection (which is half-open capable).
    await userEnded;
    user.destroy();
    await viaProxy.waitFor(/session .* ended|connection to the hub closed|the hub ended the connection/, 15_000);
    await until(async () => {
      const t = (await admin(hub, 'GET', '/tunnel/list')).body.tunnels as Array<Record<string, unknown>>;
      return t.find((x) => x.name === 'proxied')?.state === 3;
    }, 'the hub to see the tunnel offline');

    proxy = await webSocketProxy(wsPort, '127.0.0.2', proxyPort);
    await until(() => echoes(port), 'forwarding again after the reconnect', 20_000);
    const payload = randomBytes(2 * 1024 * 1024);
    assert.equal(sha256(await exchange(port, payload)), sha256(payload));
  });
});

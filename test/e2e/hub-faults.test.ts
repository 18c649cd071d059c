import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { challengeResponse, encodeFrame, type Frame, readFrame } from '../../src/hub/protocol.js';
import {
  admin,
  type ConnectorProcess,
  client,
  configureConnector,
  type HubProcess,
  removeDir,
  startConnector,
  startHub,
  tempDir,
  transfer,
  until,
} from '../helpers/hub.js';
import { connectTcp, echoServer, sha256, type TestServer } from '../helpers/net.js';
import { runPorthole } from '../helpers/porthole.js';

function tlsTo(hub: HubProcess): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: hub.tunnelPort, rejectUnauthorized: false }, () => resolve(s));
    s.once('error', reject);
  });
}

async function forward(c: ConnectorProcess, echo: TestServer): Promise<number> {
  const port = (await client(c, 'GET', '/ports/allocate')).body.port as number;
  const r = await client(c, 'POST', '/traffic/create', {
    ports: [{ port, destination: '127.0.0.1', dstPort: echo.port }],
  });
  assert.equal(r.body.status, true, r.body.error);
  return port;
}

async function echoesThrough(port: number): Promise<boolean> {
  const payload = randomBytes(4096);
  return (await transfer(port, payload, 'probe').catch(() => Buffer.alloc(0))).equals(payload);
}

describe('hub faults: bad credentials, replayed handshakes, garbage peers, kill -9 of either side', () => {
  let hub: HubProcess;
  let dir: string;
  let echo: TestServer;

  before(async () => {
    dir = tempDir('porthole-faults-');
    hub = await startHub();
    echo = await echoServer();
  });
  after(async () => {
    await hub?.stop();
    await echo?.close();
    removeDir(dir);
    if (hub) removeDir(hub.stateDir);
  });

  test('a wrong registration token is refused with a clear error; the hub keeps serving', async () => {
    const r = await runPorthole([
      'connector',
      'configure',
      '--config',
      `${dir}/wrong.json`,
      '--hub',
      hub.address,
      '--token',
      'not-a-token-at-all',
    ]);
    assert.equal(r.code, 1);
    assert.match(r.output, /refused the registration: unknown registration token/);
    assert.equal((await admin(hub, 'GET', '/info')).body.status, true);
  });

  test('a recorded handshake cannot be replayed; a wrong secret is refused', async () => {
    const configPath = await configureConnector(hub, 'replay', dir);
    const { tunnelId, secret } = JSON.parse(readFileSync(configPath, 'utf8')) as { tunnelId: string; secret: string };
    const hello = encodeFrame({
      type: 'hello',
      tunnelId,
      name: 'replay',
      hostname: 'h',
      version: 'test',
      os: 'linux',
      arch: 'x64',
    });
    // A genuine handshake, recorded.
    const first = await tlsTo(hub);
    first.write(hello);
    const challenge = await readFrame(first, 5000);
    assert.equal(challenge.type, 'challenge');
    const auth = encodeFrame({
      type: 'auth',
      mac: challengeResponse(secret, (challenge as Frame & { nonce: string }).nonce, tunnelId),
    });
    first.write(auth);
    assert.equal((await readFrame(first, 5000)).type, 'welcome');
    first.destroy();

    // The same bytes again: the hub issues a new nonce, so the recorded answer is wrong.
    const replay = await tlsTo(hub);
    replay.write(Buffer.concat([hello, auth]));
    assert.equal((await readFrame(replay, 5000)).type, 'challenge');
    const answer = await readFrame(replay, 5000);
    assert.equal(answer.type, 'refused');
    assert.match((answer as Frame & { error: string }).error, /authentication failed/);
    replay.destroy();

    const wrong = await tlsTo(hub);
    wrong.write(hello);
    const c2 = (await readFrame(wrong, 5000)) as Frame & { nonce: string };
    wrong.write(encodeFrame({ type: 'auth', mac: challengeResponse('0'.repeat(64), c2.nonce, tunnelId) }));
    assert.equal((await readFrame(wrong, 5000)).type, 'refused');
    wrong.destroy();
    await until(
      async () => (await admin(hub, 'GET', '/tunnel/list/online')).body.tunnels.length === 0,
      'the recorded session to end with its connection',
    );
  });

  test('garbage, oversized frames and vanishing peers on the tunnel listener change nothing', async () => {
    const garbage = await tlsTo(hub);
    garbage.write(randomBytes(5000));
    await once(garbage, 'close');
    const huge = await tlsTo(hub);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(0x7fffffff);
    huge.write(head);
    await once(huge, 'close');
    const notJson = await tlsTo(hub);
    notJson.write(Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{{{')]));
    await once(notJson, 'close');
    const badData = await tlsTo(hub);
    badData.write(encodeFrame({ type: 'data', sessionId: 'nope', token: 'nope', id: 'x', role: 'inbound' }));
    await once(badData, 'close');
    const vanish = await tlsTo(hub);
    vanish.write(Buffer.from([0, 0, 1]));
    vanish.destroy();
    // A plain-TCP peer on the TLS listener.
    const plain = await connectTcp(hub.tunnelPort);
    plain.on('error', () => {});
    plain.write('GET / HTTP/1.0\r\n\r\n');
    await once(plain, 'end'); // the hub ends the connection (the client half-opens)
    plain.destroy();
    assert.equal((await admin(hub, 'GET', '/info')).body.status, true);
    assert.equal(hub.proc.exitCode, null);
  });

  test('kill -9 of the hub: connectors reconnect to the restarted hub, ports and rules are as before', async () => {
    const a = await startConnector(await configureConnector(hub, 'k-alpha', dir));
    const b = await startConnector(await configureConnector(hub, 'k-beta', dir));
    try {
      const pa = await forward(a, echo);
      const pb = await forward(b, echo);
      await until(() => echoesThrough(pa), 'port A forwarding');
      await until(() => echoesThrough(pb), 'port B forwarding');
      const before = (await admin(hub, 'GET', '/port/list')).body;

      await hub.kill9();
      await until(async () => !(await client(a, 'GET', '/info')).body.isTunConnected, 'A to notice');
      const restarted = await startHub({ stateDir: hub.stateDir, tunnelPort: hub.tunnelPort, range: hub.range });
      hub = restarted;
      await until(async () => (await client(a, 'GET', '/info')).body.isTunConnected, 'A to reconnect', 20_000);
      await until(async () => (await client(b, 'GET', '/info')).body.isTunConnected, 'B to reconnect', 20_000);
      assert.deepEqual((await admin(hub, 'GET', '/port/list')).body, before, 'same ports after the restart');
      assert.deepEqual((await client(a, 'GET', '/ports/list')).body, [
        { port: pa, destination: '127.0.0.1', dstPort: echo.port },
      ]);
      await until(() => echoesThrough(pa), 'port A forwarding again');
      await until(() => echoesThrough(pb), 'port B forwarding again');
      assert.match(a.output(), /reconnecting/);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  test('kill -9 of a connector mid-transfer: the hub frees its session, another tunnel is unaffected', async () => {
    const a = await startConnector(await configureConnector(hub, 'm-alpha', dir));
    const b = await startConnector(await configureConnector(hub, 'm-beta', dir));
    try {
      const pa = await forward(a, echo);
      const pb = await forward(b, echo);
      await until(() => echoesThrough(pa), 'port A forwarding');
      await until(() => echoesThrough(pb), 'port B forwarding');

      // B: a 32 MiB transfer that runs across the kill of A (its outcome is awaited below; a failure is kept, not
      // left as an unhandled rejection meanwhile).
      const payload = randomBytes(32 * 1024 * 1024);
      const transferB = transfer(pb, payload, 'transfer through B');
      transferB.catch(() => {});

      // A: a stream that keeps sending until A dies.
      const sa = await connectTcp(pa);
      sa.on('error', () => {});
      let echoed = 0;
      sa.on('data', (c: Buffer) => {
        echoed += c.length;
      });
      const chunk = randomBytes(64 * 1024);
      const pump = setInterval(() => {
        if (!sa.destroyed && sa.writableLength < 1024 * 1024) sa.write(chunk);
      }, 5);
      await until(() => echoed > 1024 * 1024, 'bytes flowing through A');
      const closed = new Promise((r) => sa.once('close', r));
      await a.kill9();
      await closed;
      clearInterval(pump);

      await until(async () => {
        const online = (await admin(hub, 'GET', '/tunnel/list/online')).body.tunnels as Array<{ name: string }>;
        return !online.some((t) => t.name === 'm-alpha');
      }, 'the hub to drop A’s session');
      await until(async () => {
        try {
          (await connectTcp(pa)).destroy();
          return false;
        } catch {
          return true;
        }
      }, 'A’s port to refuse');
      const got = await transferB;
      assert.equal(sha256(got), sha256(payload), 'B’s transfer completed intact');
      const list = (await admin(hub, 'GET', '/tunnel/list')).body.tunnels as Array<{ name: string; state: number }>;
      assert.equal(list.find((t) => t.name === 'm-alpha')?.state, 3, 'A offline');
      assert.equal(list.find((t) => t.name === 'm-beta')?.state, 2, 'B online');
      assert.ok(
        (await admin(hub, 'GET', '/port/list')).body.some((p: { port: number }) => p.port === pa),
        'A keeps its port',
      );
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { echoServer, exchange, freePort, sleep, udpEchoServer } from '../helpers/net.js';
import { type PortholeProcess, startForwarder } from '../helpers/porthole.js';

/** Sends `count` datagrams of varied sizes with at most `window` in flight; returns how many came back intact. */
async function udpRoundTrips(
  port: number,
  count: number,
  host = '127.0.0.1',
): Promise<{ intact: number; corrupted: number }> {
  const socket: UdpSocket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => socket.connect(port, host, resolve));
  socket.setRecvBufferSize(4 * 1024 * 1024);
  const expected = new Map<number, string>();
  let intact = 0;
  let corrupted = 0;
  let inFlight = 0;
  let wake: (() => void) | undefined;
  socket.on('message', (msg) => {
    const seq = msg.readUInt32BE(0);
    const digest = createHash('sha256').update(msg).digest('hex');
    if (expected.get(seq) === digest) intact++;
    else corrupted++;
    expected.delete(seq);
    inFlight--;
    wake?.();
  });
  for (let i = 0; i < count; i++) {
    while (inFlight >= 16) {
      const woke = new Promise<void>((r) => {
        wake = r;
      });
      const waited = await Promise.race([woke.then(() => true), sleep(200).then(() => false)]);
      // A lost datagram must not stall the test: after a quiet spell, forget what is outstanding.
      if (!waited) inFlight = 0;
    }
    const size = 4 + ((i * 7919) % 8000);
    const msg = randomBytes(size);
    msg.writeUInt32BE(i, 0);
    expected.set(i, createHash('sha256').update(msg).digest('hex'));
    inFlight++;
    socket.send(msg);
  }
  const deadline = Date.now() + 3000;
  while (expected.size > 0 && Date.now() < deadline) await sleep(20);
  socket.close();
  return { intact, corrupted };
}

describe('single-end UDP forwarding', () => {
  let echo: { socket: UdpSocket; port: number };
  let port: number;
  let fwd: PortholeProcess;

  before(async () => {
    echo = await udpEchoServer();
    port = await freePort();
    fwd = await startForwarder(`client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1`, {
      NP_REPORT_INTERVAL: '300ms',
      NP_UDP_READ_TIMEOUT: '1s',
    });
  });
  after(async () => {
    echo?.socket.close();
    assert.equal(await fwd?.stop(), 0);
  });

  test('10,000 datagrams of varied sizes come back uncorrupted', async () => {
    const { intact, corrupted } = await udpRoundTrips(port, 10_000);
    assert.equal(corrupted, 0);
    // Loopback loses nothing in practice; allow a sliver for a busy CI machine.
    assert.ok(intact >= 9_950, `only ${intact} of 10000 came back`);
  });

  test('sessions are counted while live and expire after NP_UDP_READ_TIMEOUT', async () => {
    await udpRoundTrips(port, 10);
    await sleep(400);
    assert.ok((fwd.stats.at(-1)?.udps ?? 0) >= 1, 'a live UDP session is counted');
    assert.ok((fwd.stats.at(-1)?.udprx ?? 0) > 0);
    await sleep(1800);
    assert.equal(fwd.stats.at(-1)?.udps, 0, 'idle sessions expire');
  });
});

describe('UDP over IPv6 loopback', () => {
  test('datagrams cross [::1] intact', async () => {
    const echo = await udpEchoServer('::1');
    const port = await freePort('::1');
    const fwd = await startForwarder(`client://[::1]:${port}/[::1]:${echo.port}?mode=1`);
    try {
      const { intact, corrupted } = await udpRoundTrips(port, 200, '::1');
      assert.equal(corrupted, 0);
      assert.ok(intact >= 199, `only ${intact} of 200 came back`);
    } finally {
      echo.socket.close();
      assert.equal(await fwd.stop(), 0);
    }
  });
});

describe('notcp and noudp', () => {
  test('noudp=1 forwards TCP and leaves UDP unbound', async () => {
    const tcpEcho = await echoServer();
    const port = await freePort();
    const fwd = await startForwarder(`client://127.0.0.1:${port}/127.0.0.1:${tcpEcho.port}?mode=1&noudp=1`);
    try {
      assert.equal((await exchange(port, Buffer.from('tcp ok'))).toString(), 'tcp ok');
      // The UDP port is still free: we can bind it ourselves.
      const probe = createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.bind(port, '127.0.0.1', resolve);
      });
      probe.close();
    } finally {
      await tcpEcho.close();
      assert.equal(await fwd.stop(), 0);
    }
  });

  test('notcp=1 forwards UDP and refuses TCP', async () => {
    const echo = await udpEchoServer();
    const port = await freePort();
    const fwd = await startForwarder(`client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1&notcp=1`);
    try {
      const { intact } = await udpRoundTrips(port, 20);
      assert.equal(intact, 20);
      await assert.rejects(exchange(port, Buffer.from('x')), /ECONNREFUSED/);
    } finally {
      echo.socket.close();
      assert.equal(await fwd.stop(), 0);
    }
  });
});

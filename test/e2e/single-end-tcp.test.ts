import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { connectTcp, echoServer, exchange, freePort, sha256, type TestServer } from '../helpers/net.js';
import { type PortholeProcess, startForwarder } from '../helpers/porthole.js';

describe('single-end TCP forwarding', () => {
  let echo: TestServer;
  let port: number;
  let fwd: PortholeProcess;

  before(async () => {
    echo = await echoServer();
    port = await freePort();
    fwd = await startForwarder(`client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1&log=event`, {
      NP_REPORT_INTERVAL: '500ms',
    });
  });
  after(async () => {
    await echo?.close();
    assert.equal(await fwd?.stop(), 0);
  });

  test('64 MiB round trip arrives sha256-equal', async () => {
    const total = 64 * 1024 * 1024;
    const block = randomBytes(1024 * 1024);
    const s = await connectTcp(port);
    const sent = createHash('sha256');
    const received = createHash('sha256');
    let receivedBytes = 0;
    s.on('data', (c: Buffer) => {
      received.update(c);
      receivedBytes += c.length;
    });
    const closed = once(s, 'close');
    for (let i = 0; i < total / block.length; i++) {
      // Vary the content per block so that reordering or duplication would change the hash.
      block.writeUInt32BE(i, 0);
      sent.update(block);
      if (!s.write(Buffer.from(block))) await once(s, 'drain');
    }
    s.end();
    await closed;
    assert.equal(receivedBytes, total);
    assert.equal(received.digest('hex'), sent.digest('hex'));
  });

  test('1000 short connections, 100 at a time, each echoed intact', async () => {
    let next = 0;
    let ok = 0;
    const worker = async () => {
      while (next < 1000) {
        const i = next++;
        const payload = Buffer.from(`connection ${i} ${randomBytes(8).toString('hex')}`);
        const reply = await exchange(port, payload);
        assert.equal(sha256(reply), sha256(payload), `connection ${i}`);
        ok++;
      }
    };
    await Promise.all(Array.from({ length: 100 }, worker));
    assert.equal(ok, 1000);
  });

  test('stats reach the IPC channel and the CHECK_POINT line with the bytes that crossed', async () => {
    const payload = randomBytes(12345);
    await exchange(port, payload);
    const deadline = Date.now() + 5000;
    let last = fwd.stats.at(-1);
    while (Date.now() < deadline) {
      last = fwd.stats.at(-1);
      if (last && last.tcps === 0 && last.tcprx >= 64 * 1024 * 1024 + 12345) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(last, 'no stats message');
    assert.equal(last.mode, 1);
    assert.equal(last.pool, 0);
    assert.equal(last.tcps, 0);
    assert.equal(last.tcprx, last.tcptx, 'an echo returns every byte');
    assert.ok(last.tcprx >= 64 * 1024 * 1024 + 12345);
    assert.match(fwd.output(), /EVENT {2}CHECK_POINT\|MODE=1\|PING=\d+ms\|POOL=0\|TCPS=\d+\|UDPS=\d+\|TCPRX=\d+/);
  });
});

describe('single-end over IPv6 loopback', () => {
  test('forwards [::1] to [::1] intact', async () => {
    const echo = await echoServer('::1');
    const port = await freePort('::1');
    const fwd = await startForwarder(`client://[::1]:${port}/[::1]:${echo.port}?mode=1`);
    try {
      const payload = randomBytes(256 * 1024);
      const reply = await exchange(port, payload, '::1');
      assert.equal(sha256(reply), sha256(payload));
    } finally {
      assert.equal(await fwd.stop(), 0);
      await echo.close();
    }
  });
});

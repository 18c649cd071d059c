import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import {
  connectTcp,
  echoServer,
  exchange,
  freePort,
  readBytes,
  recorder,
  sleep,
  type TestServer,
  tcpServer,
} from '../helpers/net.js';
import { type PortholeProcess, startForwarder } from '../helpers/porthole.js';

/** Runs `body` against a forwarder from a fresh loopback port to `target`, then stops it and checks a clean exit. */
async function withForwarder(
  target: TestServer,
  params: string,
  body: (port: number, fwd: PortholeProcess) => Promise<void>,
  env: Record<string, string> = {},
  host = '127.0.0.1',
): Promise<void> {
  const port = await freePort(host);
  const h = host.includes(':') ? `[${host}]` : host;
  const fwd = await startForwarder(`client://${h}:${port}/${h}:${target.port}?mode=1&${params}`, env);
  try {
    await body(port, fwd);
  } finally {
    await target.close();
    assert.equal(await fwd.stop(), 0);
  }
}

describe('rate', () => {
  test('rate=8 holds 1 MB/s ±15 % over 3 s, upload and download', async () => {
    let received = 0;
    const sink = await tcpServer((s) => {
      s.on('data', (c: Buffer) => {
        received += c.length;
      });
      // The download half: push as fast as the forwarder lets us.
      const block = Buffer.alloc(64 * 1024, 1);
      const pushDown = () => {
        while (!s.destroyed && s.write(block));
      };
      s.on('drain', pushDown);
      pushDown();
    });
    await withForwarder(sink, 'rate=8', async (port) => {
      const s = await connectTcp(port);
      let downloaded = 0;
      s.on('data', (c: Buffer) => {
        downloaded += c.length;
      });
      s.on('error', () => {});
      const block = Buffer.alloc(64 * 1024, 2);
      let writing = true;
      const pushUp = () => {
        while (writing && s.write(block));
      };
      s.on('drain', pushUp);
      pushUp();
      // Skip the first half second (bucket burst, socket buffers filling), then measure 3 s.
      await sleep(500);
      const up0 = received;
      const down0 = downloaded;
      await sleep(3000);
      const upRate = (received - up0) / 3;
      const downRate = (downloaded - down0) / 3;
      writing = false;
      s.destroy();
      assert.ok(Math.abs(upRate - 1_000_000) <= 150_000, `upload ${Math.round(upRate)} B/s`);
      assert.ok(Math.abs(downRate - 1_000_000) <= 150_000, `download ${Math.round(downRate)} B/s`);
    });
  });
});

describe('slot', () => {
  test('slot=2 refuses the third concurrent session and frees the slot when one ends', async () => {
    const echo = await echoServer();
    await withForwarder(echo, 'slot=2', async (port, fwd) => {
      const held: Socket[] = [];
      for (const word of ['one', 'two']) {
        const s = await connectTcp(port);
        s.write(word);
        assert.equal((await readBytes(s, word.length)).toString(), word);
        held.push(s);
      }
      const third = await connectTcp(port);
      third.on('error', () => {});
      third.write('three');
      const got = await readBytes(third, 5, 3000);
      assert.equal(got.length, 0, 'the third session got no echo');
      await fwd.waitFor(/TCP slot limit reached \(2\)/);
      (held[0] as Socket).end();
      await once(held[0] as Socket, 'close');
      await sleep(100);
      assert.equal((await exchange(port, Buffer.from('four'))).toString(), 'four');
      (held[1] as Socket).destroy();
    });
  });
});

describe('proxy', () => {
  for (const host of ['127.0.0.1', '::1']) {
    test(`proxy=1 sends an exact PROXY v1 header first (${host})`, async () => {
      const target = await recorder(host);
      await withForwarder(
        target,
        'proxy=1',
        async (port) => {
          const s = await connectTcp(port, host);
          const clientPort = s.localPort;
          s.end('payload');
          await once(s, 'close');
          const family = host === '::1' ? 'TCP6' : 'TCP4';
          // Connections without data are the forwarder's PING probes.
          const sessions = target.received.filter((b) => b.length > 0);
          assert.equal(sessions.length, 1);
          assert.equal(
            sessions[0]?.toString('latin1'),
            `PROXY ${family} ${host} ${host} ${clientPort} ${target.port}\r\npayload`,
          );
        },
        {},
        host,
      );
    });
  }
});

describe('block', () => {
  test('block=2 refuses HTTP requests before any byte reaches the target and passes other bytes', async () => {
    const target = await recorder();
    await withForwarder(target, 'block=2', async (port, fwd) => {
      const refused = await exchange(port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).catch(() =>
        Buffer.alloc(0),
      );
      assert.equal(refused.length, 0);
      await fwd.waitFor(/Blocked HTTP connection/);
      await exchange(port, Buffer.from('SSH-2.0-client\r\n'));
      await sleep(100);
      const seen = target.received.map((b) => b.toString());
      assert.ok(!seen.some((t) => t.includes('GET')), 'the HTTP request never reached the target');
      assert.ok(seen.includes('SSH-2.0-client\r\n'));
    });
  });

  test('block=2 does not stall a server-speaks-first protocol', async () => {
    const banner = await tcpServer((s) => s.write('220 smtp ready\r\n'));
    await withForwarder(banner, 'block=2', async (port) => {
      const s = await connectTcp(port);
      const started = Date.now();
      const got = await readBytes(s, 16, 2000);
      assert.equal(got.toString(), '220 smtp ready\r\n');
      assert.ok(Date.now() - started < 1000);
      s.destroy();
    });
  });

  test('block=3 refuses a TLS ClientHello and passes plain HTTP', async () => {
    const target = await recorder();
    await withForwarder(target, 'block=3', async (port, fwd) => {
      const hello = Buffer.from('160301020001', 'hex');
      await exchange(port, hello).catch(() => Buffer.alloc(0));
      await fwd.waitFor(/Blocked TLS connection/);
      await exchange(port, Buffer.from('GET / HTTP/1.0\r\n\r\n'));
      await sleep(100);
      assert.ok(!target.received.some((b) => b[0] === 0x16));
      assert.ok(target.received.some((b) => b.toString().startsWith('GET /')));
    });
  });
});

describe('read', () => {
  test('read=1s closes an idle session and keeps a busy one', async () => {
    const echo = await echoServer();
    await withForwarder(echo, 'read=1s', async (port) => {
      const idle = await connectTcp(port);
      idle.on('error', () => {});
      const busy = await connectTcp(port);
      // The forwarder closes both sockets; a half-open-capable client sees that as the end of its input.
      const idleClosed = once(idle, 'end').then(() => Date.now());
      let busyClosed = false;
      busy.on('end', () => {
        busyClosed = true;
      });
      busy.on('data', () => {});
      const started = Date.now();
      for (let i = 0; i < 8; i++) {
        busy.write('tick');
        await sleep(250);
      }
      const closedAt = await idleClosed;
      assert.ok(closedAt - started >= 900 && closedAt - started < 2500, `closed after ${closedAt - started} ms`);
      assert.equal(busyClosed, false, 'a session with traffic every 250 ms stays open');
      busy.destroy();
    });
  });
});

describe('unreachable targets', () => {
  test('a target that refuses connections closes the user connection and the forwarder keeps serving', async () => {
    const deadPort = await freePort();
    const port = await freePort();
    const fwd = await startForwarder(`client://127.0.0.1:${port}/127.0.0.1:${deadPort}?mode=1`);
    try {
      for (let i = 0; i < 5; i++) {
        const got = await exchange(port, Buffer.from('anyone?')).catch(() => Buffer.alloc(0));
        assert.equal(got.length, 0);
      }
      await fwd.waitFor(/TCP dial for .* failed: .*ECONNREFUSED/);
      // The target comes up on the same port: the same forwarder now serves.
      const echo = await echoServer('127.0.0.1', deadPort);
      assert.equal((await exchange(port, Buffer.from('now'))).toString(), 'now');
      await echo.close();
    } finally {
      assert.equal(await fwd.stop(), 0);
    }
  });
});

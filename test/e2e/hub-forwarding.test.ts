import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
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
import {
  connectTcp,
  echoServer,
  exchange,
  freePort,
  readBytes,
  sha256,
  type TestServer,
  udpEchoServer,
} from '../helpers/net.js';

/** Connecting fails with ECONNREFUSED (no listener), not an accepted connection that goes nowhere. */
async function refused(port: number, host = '127.0.0.1'): Promise<boolean> {
  try {
    const s = await connectTcp(port, host);
    s.destroy();
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}

/** The connection is accepted and then reset or closed without a byte (the firewall dropped it). */
async function dropped(port: number, host = '127.0.0.1'): Promise<boolean> {
  let s: Awaited<ReturnType<typeof connectTcp>>;
  try {
    s = await connectTcp(port, host);
  } catch (err) {
    // The reset can overtake the connect callback.
    return (err as NodeJS.ErrnoException).code === 'ECONNRESET';
  }
  s.on('error', () => {});
  s.write('hello');
  const got = await readBytes(s, 5, 5000).catch(() => Buffer.alloc(0));
  s.destroy();
  return got.length === 0;
}

async function echoes(port: number, host = '127.0.0.1'): Promise<boolean> {
  const payload = randomBytes(1000);
  // transfer() rejects on a socket error (a reset after connect) instead of leaving it uncaught.
  const got = await transfer(port, payload, 'echo', host).catch(() => Buffer.alloc(0));
  return got.equals(payload);
}

describe('hub + two connectors: TCP ports, rules, port mappings, firewall', () => {
  let hub: HubProcess;
  let dir: string;
  let a: ConnectorProcess;
  let b: ConnectorProcess;
  let echo: TestServer;
  let udpEcho: Awaited<ReturnType<typeof udpEchoServer>>;

  before(async () => {
    dir = tempDir('porthole-connectors-');
    hub = await startHub();
    echo = await echoServer();
    udpEcho = await udpEchoServer();
    a = await startConnector(await configureConnector(hub, 'alpha', dir));
    b = await startConnector(await configureConnector(hub, 'beta', dir));
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await hub?.stop();
    await echo?.close();
    udpEcho?.socket.close();
    removeDir(dir);
    if (hub) removeDir(hub.stateDir);
  });

  test('allocate, forward: 16 MiB through the hub port arrive sha256-equal', async () => {
    const alloc = await client(a, 'GET', '/ports/allocate');
    assert.equal(alloc.status, 200);
    assert.equal(alloc.body.status, true);
    const port = alloc.body.port as number;
    assert.ok(port >= hub.range.begin && port <= hub.range.end, `port ${port} in the hub range`);
    const list = await client(a, 'GET', '/ports/list');
    assert.deepEqual(list.body, [{ port, destination: '', dstPort: 0 }]);
    assert.ok(await refused(port), 'an allocated port without a rule refuses connections');

    const created = await client(a, 'POST', '/traffic/create', {
      ports: [{ port, destination: '127.0.0.1', dstPort: echo.port }],
    });
    assert.deepEqual(created.body, { status: true, error: '' });
    await until(async () => !(await refused(port)), 'the hub port to listen');
    const payload = randomBytes(16 * 1024 * 1024);
    const got = await exchange(port, payload);
    assert.equal(got.length, payload.length);
    assert.equal(sha256(got), sha256(payload));

    // A burst of 64 concurrent connections drains the pre-dialed pool (8): the rest wait for new data connections.
    const burst = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const data = randomBytes(4096 + i);
        return (await exchange(port, data)).equals(data);
      }),
    );
    assert.equal(burst.filter(Boolean).length, 64, 'every concurrent connection echoed intact');

    // The hub counted the bytes for the tunnel.
    const tunnels = (await admin(hub, 'GET', '/tunnel/list')).body.tunnels as Array<{
      name: string;
      bandwidth: { daily: number; monthly: number };
      ports: Array<{ port: number }>;
    }>;
    const alpha = tunnels.find((t) => t.name === 'alpha');
    assert.ok(alpha && alpha.bandwidth.daily >= 2 * payload.length, JSON.stringify(alpha?.bandwidth));
    assert.equal(alpha.bandwidth.monthly, alpha.bandwidth.daily);

    // Health names the rule beside its flowID.
    const health = await client(a, 'GET', '/health');
    assert.equal(health.body.status, true);
    assert.deepEqual(
      health.body.services.map((s: { port: number; available: boolean; type: string }) => [
        s.type,
        s.port,
        s.available,
      ]),
      [['port', port, true]],
    );
    assert.equal(typeof health.body.services[0].flowID, 'number');

    // Clearing the rule keeps the port allocated and refuses connections.
    const del = await client(a, 'POST', '/traffic/delete', { ports: [{ port }] });
    assert.deepEqual(del.body, { status: true, error: '' });
    await until(() => refused(port), 'the cleared port to refuse');
    assert.deepEqual((await client(a, 'GET', '/ports/list')).body, [{ port, destination: '', dstPort: 0 }]);
    assert.ok((await admin(hub, 'GET', '/port/list')).body.some((p: { port: number }) => p.port === port));

    // Release frees it on the hub.
    const rel = await client(a, 'POST', '/ports/release', { port });
    assert.deepEqual(rel.body, { status: true, error: '' });
    assert.deepEqual((await client(a, 'GET', '/ports/list')).body, []);
    assert.ok(!(await admin(hub, 'GET', '/port/list')).body.some((p: { port: number }) => p.port === port));
  });

  test('TCP and UDP port mappings from connector A to connector B’s allocated port', async () => {
    const port = (await client(b, 'GET', '/ports/allocate')).body.port as number;
    // One rule per port: the UDP mapping gets its own port, forwarded to the UDP echo.
    const udpPort = (await client(b, 'GET', '/ports/allocate')).body.port as number;
    const ruled = await client(b, 'POST', '/traffic/create', {
      ports: [
        { port, destination: '127.0.0.1', dstPort: echo.port },
        { port: udpPort, destination: '127.0.0.1', dstPort: udpEcho.port },
      ],
    });
    assert.equal(ruled.body.status, true, ruled.body.error);

    const localTcp = await freePort();
    const localUdp = await freePort();
    const maps = await client(a, 'POST', '/traffic/create', {
      portmaps: [
        { port: localTcp, dstPort: port, destination: '', transport: 'tcp', label: 'to-beta' },
        { port: localUdp, dstPort: udpPort, destination: '', transport: 'udp', label: 'to-beta-udp' },
      ],
    });
    assert.deepEqual(maps.body, { status: true, error: '' });
    const payload = randomBytes(2 * 1024 * 1024);
    const got = await exchange(localTcp, payload);
    assert.equal(sha256(got), sha256(payload), 'TCP through A -> hub -> B -> echo');

    const udp = createSocket('udp4');
    udp.bind(0, '127.0.0.1');
    await once(udp, 'listening');
    const replies: Buffer[] = [];
    udp.on('message', (m) => replies.push(m));
    const datagrams = Array.from({ length: 20 }, (_, i) => Buffer.from(`datagram-${i}-${'x'.repeat(i * 50)}`));
    for (const d of datagrams) udp.send(d, localUdp, '127.0.0.1');
    await until(() => replies.length >= datagrams.length, 'UDP echoes through the mapping', 10_000);
    udp.close();
    assert.deepEqual(
      replies.map((r) => r.toString()).sort(),
      datagrams.map((d) => d.toString()).sort(),
      'each datagram comes back whole',
    );

    // A mapping to a port nobody holds: the connection is closed, nothing else changes.
    const nowhere = await freePort();
    const held = new Set(((await admin(hub, 'GET', '/port/list')).body as Array<{ port: number }>).map((p) => p.port));
    let unheld = hub.range.begin;
    while (held.has(unheld)) unheld++;
    const dangling = await client(a, 'POST', '/traffic/create', {
      portmaps: [{ port: nowhere, dstPort: unheld, destination: '', transport: 'tcp', label: '' }],
    });
    assert.equal(dangling.body.status, true);
    assert.equal(await echoes(nowhere), false);
    assert.ok(await echoes(localTcp), 'the other mapping still works');

    // An outside destination is denied by the hub's default policy.
    const outside = await freePort();
    await client(a, 'POST', '/traffic/create', {
      portmaps: [{ port: outside, dstPort: echo.port, destination: '127.0.0.1', transport: 'tcp', label: '' }],
    });
    assert.equal(await echoes(outside), false, 'default deny for outside destinations');
    await until(() => /destination not allowed by the hub policy/.test(hub.output()), 'the hub to log the denial');

    // Removing mappings closes their listeners.
    const removed = await client(a, 'POST', '/traffic/delete', {
      portmaps: [{ port: localTcp }, { port: nowhere }, { port: outside }, { port: localUdp }],
    });
    assert.equal(removed.body.status, true);
    assert.ok(await refused(localTcp));
    assert.deepEqual((await client(a, 'GET', '/config')).body.portmaps, []);
  });

  test('firewall: allow-only, drop-only and mixed rules at the hub port', async () => {
    const port = (await client(a, 'GET', '/ports/allocate')).body.port as number;
    const set = async (firewall: unknown[]) => {
      const r = await client(a, 'POST', '/traffic/update', {
        ports: [{ port, destination: '127.0.0.1', dstPort: echo.port, firewall }],
      });
      assert.equal(r.body.status, true, r.body.error);
      // The hub applies the rule asynchronously after the connector persisted it.
      await until(async () => {
        const cfg = (await admin(hub, 'GET', `/tunnel/config/${tunnelId(a)}`)).body;
        return (
          JSON.stringify(cfg.ports.find((p: { port: number }) => p.port === port)?.firewall ?? []) ===
          JSON.stringify(firewall)
        );
      }, 'the hub to hold the firewall');
    };
    await set([]);
    await until(() => echoes(port), 'forwarding without rules');
    await set([{ sequence: 1, action: 'allow', network: '127.0.0.1/32' }]);
    assert.ok(await echoes(port), 'allow-only: listed client passes');
    await set([{ sequence: 1, action: 'allow', network: '10.0.0.0/8' }]);
    assert.ok(await dropped(port), 'allow-only: unlisted client is dropped');
    await set([{ sequence: 1, action: 'drop', network: '127.0.0.0/8' }]);
    assert.ok(await dropped(port), 'drop-only: listed client is dropped');
    await set([{ sequence: 1, action: 'drop', network: '10.0.0.0/8' }]);
    assert.ok(await echoes(port), 'drop-only: others pass');
    await set([
      { sequence: 2, action: 'drop', network: '127.0.0.0/8' },
      { sequence: 1, action: 'allow', network: '127.0.0.1/32' },
    ]);
    assert.ok(await echoes(port), 'mixed: the first match in sequence order decides');
    await set([
      { sequence: 1, action: 'drop', network: '127.0.0.1/32' },
      { sequence: 2, action: 'allow', network: '10.0.0.0/8' },
    ]);
    assert.ok(await dropped(port), 'mixed: drop matched first');
    await set([
      { sequence: 1, action: 'allow', network: '10.0.0.0/8' },
      { sequence: 2, action: 'drop', network: '192.168.0.0/16' },
    ]);
    assert.ok(await echoes(port), 'mixed, no match, last rule drops: default allow');
    const bad = await client(a, 'POST', '/traffic/update', {
      ports: [
        {
          port,
          destination: '127.0.0.1',
          dstPort: echo.port,
          firewall: [{ sequence: 1, action: 'x', network: '1.1.1.1' }],
        },
      ],
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.status, false);
    assert.ok(await echoes(port), 'a refused update changed nothing');
  });

  test('IPv6: firewall rules match ::1 clients', async () => {
    const v6Hub = await startHub({ publicBind: '::1' });
    const d = tempDir('porthole-v6-');
    let c: ConnectorProcess | undefined;
    try {
      c = await startConnector(await configureConnector(v6Hub, 'six', d));
      const port = (await client(c, 'GET', '/ports/allocate')).body.port as number;
      const set = async (firewall: unknown[]) => {
        const conn = c as ConnectorProcess;
        assert.equal(
          (
            await client(conn, 'POST', '/traffic/update', {
              ports: [{ port, destination: '127.0.0.1', dstPort: echo.port, firewall }],
            })
          ).body.status,
          true,
        );
        await until(async () => {
          const tunnels = (await admin(v6Hub, 'GET', '/tunnel/list')).body.tunnels;
          return JSON.stringify(tunnels[0].ports[0].firewall ?? []) === JSON.stringify(firewall);
        }, 'the hub to hold the firewall');
      };
      await set([{ sequence: 1, action: 'allow', network: '::1/128' }]);
      await until(() => echoes(port, '::1'), 'IPv6 allowed');
      await set([{ sequence: 1, action: 'allow', network: '2001:db8::/32' }]);
      assert.ok(await dropped(port, '::1'), 'IPv6 client outside the allowed network is dropped');
      await set([{ sequence: 1, action: 'drop', network: '::1' }]);
      assert.ok(await dropped(port, '::1'), 'IPv6 host drop');
      await set([{ sequence: 1, action: 'drop', network: '127.0.0.1/32' }]);
      assert.ok(await echoes(port, '::1'), 'IPv4 rules do not match IPv6 clients');
    } finally {
      await c?.stop();
      await v6Hub.stop();
      removeDir(d);
      removeDir(v6Hub.stateDir);
    }
  });
});

function tunnelId(c: ConnectorProcess): string {
  return (JSON.parse(readFileSync(c.configPath, 'utf8')) as { tunnelId: string }).tunnelId;
}

describe('port mappings to outside destinations the hub allows', () => {
  test('TCP and UDP through the hub to an allow-listed host; other ports stay denied', async () => {
    const echo = await echoServer();
    const udpEcho = await udpEchoServer();
    const hub = await startHub({
      extra: ['--portmap-allow', `127.0.0.1:${echo.port}`, '--portmap-allow', `127.0.0.1:${udpEcho.port}`],
    });
    const dir = tempDir('porthole-outside-');
    let c: ConnectorProcess | undefined;
    try {
      c = await startConnector(await configureConnector(hub, 'out', dir));
      const [tcpLocal, udpLocal, deniedLocal] = [await freePort(), await freePort(), await freePort()];
      const r = await client(c, 'POST', '/traffic/create', {
        portmaps: [
          { port: tcpLocal, dstPort: echo.port, destination: '127.0.0.1', transport: 'tcp', label: 'db' },
          { port: udpLocal, dstPort: udpEcho.port, destination: '127.0.0.1', transport: 'udp', label: 'dns' },
          { port: deniedLocal, dstPort: echo.port + 1, destination: '127.0.0.1', transport: 'tcp', label: 'no' },
        ],
      });
      assert.equal(r.body.status, true, r.body.error);
      const payload = randomBytes(1024 * 1024);
      assert.equal(sha256(await exchange(tcpLocal, payload)), sha256(payload));
      assert.equal(await echoes(deniedLocal), false);
      const udp = createSocket('udp4');
      udp.bind(0, '127.0.0.1');
      await once(udp, 'listening');
      const replies: string[] = [];
      udp.on('message', (m) => replies.push(m.toString()));
      for (let i = 0; i < 5; i++) udp.send(`outside-${i}`, udpLocal, '127.0.0.1');
      await until(() => replies.length >= 5, 'UDP echoes from the outside host', 10_000);
      udp.close();
      assert.deepEqual(replies.sort(), ['outside-0', 'outside-1', 'outside-2', 'outside-3', 'outside-4']);
    } finally {
      await c?.stop();
      await hub.stop();
      await echo.close();
      udpEcho.socket.close();
      removeDir(dir);
      removeDir(hub.stateDir);
    }
  });
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  ADMIN,
  admin,
  BOOT_TOKEN,
  CLIENT,
  type ConnectorProcess,
  call,
  client,
  configureConnector,
  type HubProcess,
  removeDir,
  startConnector,
  startHub,
  tempDir,
  until,
} from '../helpers/hub.js';
import { echoServer, freePort, type TestServer, tcpServer } from '../helpers/net.js';
import { runPorthole } from '../helpers/porthole.js';

describe('admin APIs of hub and connector: every route, bad input changes nothing', () => {
  let hub: HubProcess;
  let dir: string;
  let c: ConnectorProcess;
  let tunnelId: string;
  let echo: TestServer;

  before(async () => {
    dir = tempDir('porthole-api-');
    hub = await startHub();
    echo = await echoServer();
    const path = await configureConnector(hub, 'api', dir);
    tunnelId = JSON.parse(readFileSync(path, 'utf8')).tunnelId;
    c = await startConnector(path);
  });
  after(async () => {
    await c?.stop();
    await hub?.stop();
    await echo?.close();
    removeDir(dir);
    if (hub) removeDir(hub.stateDir);
  });

  test('hub: admin key, login cookie, logout; 401 without them', async () => {
    for (const path of ['/info', '/ping', '/token/registration/list', '/tunnel/list', '/port/list']) {
      const r = await call(hub.adminPort, 'GET', `${ADMIN}${path}`);
      assert.equal(r.status, 401, path);
      assert.equal(r.body.status, false);
      assert.match(r.body.error, /unauthorized/);
      const wrong = await call(hub.adminPort, 'GET', `${ADMIN}${path}`, { headers: { 'x-api-key': 'f'.repeat(32) } });
      assert.equal(wrong.status, 401);
    }
    assert.equal((await call(hub.adminPort, 'POST', `${ADMIN}/auth`, { body: { key: 'nope' } })).status, 401);
    const bad = await call(hub.adminPort, 'POST', `${ADMIN}/auth`, { raw: '{"key":', contentType: 'application/json' });
    assert.equal(bad.status, 400);
    const res = await fetch(`http://127.0.0.1:${hub.adminPort}${ADMIN}/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: hub.key }),
    });
    assert.equal(res.status, 200);
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] as string;
    assert.match(cookie, /^porthole_hub_session=/);
    const ping = await call(hub.adminPort, 'GET', `${ADMIN}/ping`, { headers: { cookie } });
    assert.deepEqual(ping.body, { status: true, error: '', message: 'pong' });
    const bearer = await call(hub.adminPort, 'GET', `${ADMIN}/ping`, {
      headers: { authorization: `Bearer ${hub.key}` },
    });
    assert.equal(bearer.status, 200);
    assert.equal((await call(hub.adminPort, 'GET', `${ADMIN}/logout`, { headers: { cookie } })).status, 200);
    assert.equal((await call(hub.adminPort, 'GET', `${ADMIN}/ping`, { headers: { cookie } })).status, 401);
    const info = await admin(hub, 'GET', '/info');
    assert.equal(info.body.status, true);
    assert.equal(info.body.onlineTuns, 1);
    assert.equal(info.body.fingerprint, hub.fingerprint);
    assert.deepEqual((await admin(hub, 'GET', '/port/range')).body, { status: true, error: '', ...hub.range });
    assert.deepEqual((await admin(hub, 'GET', '/nowhere')).body.status, false);
  });

  test('hub: registration tokens create / list / edit / delete, bad input', async () => {
    const created = await admin(hub, 'POST', '/token/registration/create', { description: 'fleet', active: true });
    assert.equal(created.body.status, true);
    const token = created.body.token;
    assert.ok(token.token.length >= 16);
    const list = await admin(hub, 'GET', '/token/registration/list');
    assert.ok(list.body.tokens.some((t: { id: string }) => t.id === token.id));
    assert.ok(list.body.tokens.some((t: { token: string }) => t.token === BOOT_TOKEN));

    // A deactivated token cannot register.
    const edit = await admin(hub, 'POST', '/token/registration/edit', { tokenID: token.id, active: false });
    assert.equal(edit.body.token.active, false);
    const r = await runPorthole([
      'connector',
      'configure',
      '--config',
      `${dir}/x.json`,
      '--hub',
      hub.address,
      '--token',
      token.token,
    ]);
    assert.equal(r.code, 1);
    assert.match(r.output, /not active/);
    await admin(hub, 'POST', '/token/registration/edit', { tokenID: token.id, active: true, description: 'fleet 2' });
    const ok = await runPorthole([
      'connector',
      'configure',
      '--config',
      `${dir}/y.json`,
      '--hub',
      hub.address,
      '--token',
      token.token,
    ]);
    assert.equal(ok.code, 0, ok.output);

    for (const [path, body, status] of [
      ['/token/registration/create', {}, 400],
      ['/token/registration/create', { description: 5 }, 400],
      ['/token/registration/edit', { tokenID: 'nope', active: true }, 404],
      ['/token/registration/delete', { tokenID: 'nope' }, 404],
      ['/token/registration/delete', {}, 400],
    ] as const) {
      const res = await admin(hub, 'POST', path, body);
      assert.equal(res.status, status, `${path} ${JSON.stringify(body)}`);
      assert.equal(res.body.status, false);
      assert.equal(typeof res.body.error, 'string');
    }
    const text = await call(hub.adminPort, 'POST', `${ADMIN}/token/registration/create`, {
      raw: 'description=x',
      contentType: 'application/x-www-form-urlencoded',
      headers: { 'x-api-key': hub.key },
    });
    assert.equal(text.status, 415);
    assert.equal(text.body.status, false);
    const before = (await admin(hub, 'GET', '/token/registration/list')).body.tokens.length;
    const del = await admin(hub, 'POST', '/token/registration/delete', { tokenID: token.id });
    assert.equal(del.body.status, true);
    assert.equal((await admin(hub, 'GET', '/token/registration/list')).body.tokens.length, before - 1);
  });

  test('hub: tunnels, ports and per-tunnel traffic routes, bad input', async () => {
    const list = (await admin(hub, 'GET', '/tunnel/list')).body.tunnels;
    assert.ok(list.some((t: { id: string }) => t.id === tunnelId));
    const online = (await admin(hub, 'GET', '/tunnel/list/online')).body.tunnels;
    assert.deepEqual(
      online.map((t: { id: string }) => t.id),
      [tunnelId],
    );
    const info = (await admin(hub, 'GET', `/tunnel/info/${tunnelId}`)).body.tunnel;
    assert.equal(info.state, 2);
    assert.equal(info.name, 'api');
    assert.equal(info.address, '127.0.0.1');
    assert.ok(info.os && info.arch && info.version);
    // Keepalive round trips are measured (the hub pings every second in tests).
    await until(async () => (await admin(hub, 'GET', `/tunnel/info/${tunnelId}`)).body.tunnel.rtt >= 0, 'an RTT');
    assert.equal((await admin(hub, 'GET', '/tunnel/info/zz')).status, 400);
    assert.equal((await admin(hub, 'GET', `/tunnel/info/${'0'.repeat(16)}`)).status, 404);

    const port = (await admin(hub, 'GET', `/tunnel/traffic/tcp/allocate/${tunnelId}`)).body.port as number;
    assert.ok(port >= hub.range.begin && port <= hub.range.end);
    // An online connector saves a port the admin allocates for it at once.
    await until(
      async () => (await client(c, 'GET', '/ports/list')).body.some((p: { port: number }) => p.port === port),
      'the connector to learn the admin-allocated port',
    );
    assert.ok(
      (await admin(hub, 'GET', '/port/list')).body.some(
        (p: { port: number; tunID: string }) => p.port === port && p.tunID === tunnelId,
      ),
    );
    const upd = await admin(hub, 'POST', `/tunnel/traffic/tcp/update/${tunnelId}`, {
      ports: [{ port, destination: '127.0.0.1', dstPort: echo.port }],
    });
    assert.equal(upd.body.status, true, upd.body.error);
    await until(
      async () =>
        (await client(c, 'GET', '/ports/list')).body.some(
          (p: { port: number; dstPort: number }) => p.port === port && p.dstPort === echo.port,
        ),
      'the connector to save the admin rule',
    );
    const cfg = (await admin(hub, 'GET', `/tunnel/config/${tunnelId}`)).body;
    assert.deepEqual(
      cfg.ports.find((p: { port: number }) => p.port === port),
      { port, destination: '127.0.0.1', dstPort: echo.port },
    );
    assert.equal(
      (await admin(hub, 'POST', `/tunnel/traffic/tcp/reset/${tunnelId}`, { ports: [port] })).body.status,
      true,
    );
    await until(
      async () =>
        (await client(c, 'GET', '/ports/list')).body.some(
          (p: { port: number; destination: string }) => p.port === port && p.destination === '',
        ),
      'the reset to reach the connector',
    );

    const other = (await admin(hub, 'GET', '/port/list')).body.length;
    for (const [method, path, body, status] of [
      [
        'POST',
        `/tunnel/traffic/tcp/update/${tunnelId}`,
        { ports: [{ port: hub.range.end + 1, destination: 'h', dstPort: 1 }] },
        404,
      ],
      ['POST', `/tunnel/traffic/tcp/update/${tunnelId}`, { ports: [{ port, destination: '127.0.0.1' }] }, 400],
      ['POST', `/tunnel/traffic/tcp/update/${tunnelId}`, { ports: [] }, 400],
      [
        'POST',
        `/tunnel/traffic/tcp/update/${tunnelId}`,
        { ports: [{ port, destination: 'bad host!', dstPort: 1 }] },
        400,
      ],
      ['POST', `/tunnel/traffic/tcp/release/${tunnelId}`, { port: hub.range.end + 1 }, 404],
      ['POST', `/tunnel/traffic/tcp/release/${tunnelId}`, { port: 'x' }, 400],
      ['POST', `/tunnel/traffic/tcp/reset/${tunnelId}`, { ports: [hub.range.end + 1] }, 404],
      ['GET', `/tunnel/traffic/tcp/allocate/${'0'.repeat(16)}`, undefined, 404],
      ['POST', `/tunnel/traffic/portmap/update/${tunnelId}`, { portmaps: [{ port: 1 }] }, 400],
      ['POST', `/tunnel/traffic/portmap/remove/${tunnelId}`, { listenPorts: 'x' }, 400],
      ['POST', `/tunnel/traffic/http/update/${tunnelId}`, { sites: [] }, 400],
      ['POST', `/tunnel/traffic/http/update/${tunnelId}`, { https: [{ domain: 'bad host!', webRoot: '/' }] }, 400],
      ['POST', `/tunnel/traffic/http/update/${tunnelId}`, { https: [{ domain: 'nothing.test' }] }, 400],
      ['POST', `/tunnel/traffic/http/remove/${tunnelId}`, { domains: [] }, 400],
    ] as const) {
      const res = await admin(hub, method, path, body);
      assert.equal(res.status, status, `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.status, false);
    }
    assert.equal((await admin(hub, 'GET', '/port/list')).body.length, other, 'refused requests allocated nothing');

    // A port of another tunnel: not owned.
    const second = await runPorthole([
      'connector',
      'configure',
      '--config',
      `${dir}/z.json`,
      '--hub',
      hub.address,
      '--token',
      BOOT_TOKEN,
    ]);
    assert.equal(second.code, 0);
    const otherId = JSON.parse(readFileSync(`${dir}/z.json`, 'utf8')).tunnelId as string;
    const notMine = await admin(hub, 'POST', `/tunnel/traffic/tcp/release/${otherId}`, { port });
    assert.equal(notMine.status, 403);
    assert.match(notMine.body.error, /not allocated to tunnel/);
    // Rule changes for an offline tunnel are refused (its rules live in the connector's config).
    const otherPort = (await admin(hub, 'GET', `/tunnel/traffic/tcp/allocate/${otherId}`)).body.port;
    const offline = await admin(hub, 'POST', `/tunnel/traffic/tcp/update/${otherId}`, {
      ports: [{ port: otherPort, destination: '127.0.0.1', dstPort: 1 }],
    });
    assert.equal(offline.status, 409);
    assert.match(offline.body.error, /offline/);
    assert.equal(
      (await admin(hub, 'POST', `/tunnel/traffic/tcp/release/${otherId}`, { port: otherPort })).body.status,
      true,
    );

    // Port mappings pushed by the admin land in the connector's config and listen.
    const local = await freePort();
    const pm = await admin(hub, 'POST', `/tunnel/traffic/portmap/update/${tunnelId}`, {
      portmaps: [{ listenPort: local, dstPort: port, destination: '', transport: 'tcp', label: 'admin' }],
    });
    assert.equal(pm.body.status, true, pm.body.error);
    await until(
      async () => (await client(c, 'GET', '/config')).body.portmaps.some((m: { port: number }) => m.port === local),
      'the portmap to reach the connector',
    );
    assert.equal(
      (await admin(hub, 'POST', `/tunnel/traffic/portmap/remove/${tunnelId}`, { listenPorts: [local] })).body.status,
      true,
    );
    await until(async () => (await client(c, 'GET', '/config')).body.portmaps.length === 0, 'the portmap removal');
    assert.equal((await admin(hub, 'POST', `/tunnel/traffic/tcp/release/${tunnelId}`, { port })).body.status, true);
    await until(
      async () => !(await client(c, 'GET', '/ports/list')).body.some((p: { port: number }) => p.port === port),
      'the release to reach the connector',
    );
  });

  test('hub: OpenAPI document and local Swagger UI', async () => {
    const doc = await call(hub.adminPort, 'GET', `${ADMIN}/openapi.json`);
    assert.equal(doc.status, 200);
    assert.match(doc.body.openapi, /^3\.1\./);
    for (const path of ['/auth', '/tunnel/info/{id}', '/tunnel/traffic/tcp/update/{tunID}', '/port/list']) {
      assert.ok(doc.body.paths[path], path);
    }
    const page = await fetch(`http://127.0.0.1:${hub.adminPort}${ADMIN}/docs/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /swagger-ui/i);
    const cdoc = await call(c.apiPort, 'GET', `${CLIENT}/openapi.json`);
    assert.ok(cdoc.body.paths['/traffic/delete'].get);
    assert.ok(cdoc.body.paths['/traffic/delete'].post);
  });

  test('connector: info, config, tun/shutdown, tun/start, tun/restart', async () => {
    const info = await client(c, 'GET', '/info');
    assert.equal(info.body.status, true);
    assert.equal(info.body.error, '');
    assert.equal(info.body.isTunConnected, true);
    assert.equal(info.body.isUpdated, false);
    assert.match(info.body.version, /^v\d/);
    const cfg = await client(c, 'GET', '/config');
    for (const k of ['version', 'os', 'arch', 'https', 'ports', 'portmaps']) assert.ok(k in cfg.body, k);
    assert.ok(!JSON.stringify(cfg.body).includes(JSON.parse(readFileSync(c.configPath, 'utf8')).secret), 'no secret');

    assert.deepEqual((await client(c, 'GET', '/tun/shutdown')).body, { status: true, error: '' });
    assert.equal((await client(c, 'GET', '/info')).body.isTunConnected, false);
    await until(
      async () => (await admin(hub, 'GET', '/tunnel/list/online')).body.tunnels.length === 0,
      'the hub to see it go',
    );
    const alloc = await client(c, 'GET', '/ports/allocate');
    assert.equal(alloc.status, 503);
    assert.equal(alloc.body.status, false);
    const start = await client(c, 'GET', '/tun/start');
    assert.deepEqual(start.body, { status: true, isTunConnected: false, error: '' });
    await until(async () => (await client(c, 'GET', '/info')).body.isTunConnected, 'reconnect after tun/start');
    assert.equal((await client(c, 'GET', '/tun/start')).body.isTunConnected, true);
    assert.deepEqual((await client(c, 'GET', '/tun/restart')).body, { status: true, error: '' });
    await until(async () => (await client(c, 'GET', '/info')).body.isTunConnected, 'reconnect after tun/restart');
  });

  test('connector: traffic rules and ports, every bad input refused with {status:false,error}, nothing changed', async () => {
    const port = (await client(c, 'GET', '/ports/allocate')).body.port as number;
    const configBefore = readFileSync(c.configPath, 'utf8');
    const busy = await tcpServer(() => {});
    const free = await freePort();
    const cases: Array<[string, string, { body?: unknown; raw?: string; contentType?: string }, number, RegExp]> = [
      ['POST', '/traffic/create', { raw: '{"ports": [', contentType: 'application/json' }, 400, /invalid JSON/],
      ['POST', '/traffic/create', { raw: 'ports=1', contentType: 'text/plain' }, 415, /application\/json/],
      ['POST', '/traffic/create', { body: [] }, 400, /./],
      ['POST', '/traffic/create', { body: { ports: 'x' } }, 400, /./],
      ['POST', '/traffic/create', { body: { rules: [] } }, 400, /./],
      [
        'POST',
        '/traffic/create',
        { body: { ports: [{ port: 1, destination: '127.0.0.1', dstPort: 22 }] } },
        403,
        /not allocated/,
      ],
      ['POST', '/traffic/create', { body: { ports: [{ port, destination: '127.0.0.1' }] } }, 400, /go together/],
      ['POST', '/traffic/create', { body: { ports: [{ port, destination: 'a b', dstPort: 1 }] } }, 400, /not a host/],
      ['POST', '/traffic/create', { body: { ports: [{ port, destination: 'h', dstPort: 70000 }] } }, 400, /./],
      [
        'POST',
        '/traffic/create',
        {
          body: {
            ports: [
              {
                port,
                destination: 'h',
                dstPort: 1,
                firewall: [{ sequence: 1, action: 'allow', network: '1.2.3.4/40' }],
              },
            ],
          },
        },
        400,
        /prefix/,
      ],
      [
        'POST',
        '/traffic/create',
        {
          body: {
            ports: [
              { port, destination: '127.0.0.1', dstPort: 1 },
              { port, destination: '127.0.0.1', dstPort: 2 },
            ],
          },
        },
        409,
        /twice/,
      ],
      [
        'POST',
        '/traffic/create',
        { body: { portmaps: [{ port: busy.port, dstPort: port, transport: 'tcp' }] } },
        409,
        /listener/,
      ],
      ['POST', '/traffic/create', { body: { portmaps: [{ port: free, dstPort: port, transport: 'sctp' }] } }, 400, /./],
      ['POST', '/traffic/create', { body: { https: [{ domain: 'a.example.com' }] } }, 400, /needs destination/],
      [
        'POST',
        '/traffic/create',
        { body: { https: [{ domain: 'a.example.com', upstreamURL: 'ftp://x' }] } },
        400,
        /http/,
      ],
      ['POST', '/traffic/update', { body: { portmaps: [{ port: free, dstPort: port }] } }, 404, /no port mapping/],
      [
        'POST',
        '/traffic/update',
        { body: { https: [{ domain: 'none.example.com', webRoot: '/tmp' }] } },
        404,
        /no site/,
      ],
      ['POST', '/traffic/delete', { body: { portmaps: [{ port: free }] } }, 404, /no port mapping/],
      ['POST', '/traffic/delete', { body: { ports: [{ port: 1 }] } }, 403, /not allocated/],
      ['POST', '/traffic/delete', { body: { https: [{}] } }, 400, /domain/],
      ['GET', '/traffic/delete', {}, 400, /body/],
      [
        'GET',
        '/traffic/delete',
        { raw: '{"ports":[{"port":1}]}', contentType: 'text/plain' },
        415,
        /application\/json/,
      ],
      ['POST', '/ports/release', { body: { port: 1 } }, 403, /not allocated/],
      ['POST', '/ports/release', { body: {} }, 400, /./],
      ['POST', '/ports/release', { raw: '{', contentType: 'application/json' }, 400, /JSON/],
      ['GET', '/no/such/route', {}, 404, /no route/],
    ];
    for (const [method, path, options, status, error] of cases) {
      const res = await call(c.apiPort, method, `${CLIENT}${path}`, options);
      const what = `${method} ${path} ${options.raw ?? JSON.stringify(options.body)}`;
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.status, false, what);
      assert.match(res.body.error, error, what);
    }
    await busy.close();
    assert.equal(readFileSync(c.configPath, 'utf8'), configBefore, 'no refused request touched the config file');

    // The good path of each route, with a duplicate create refused.
    const rule = { port, destination: '127.0.0.1', dstPort: echo.port };
    assert.deepEqual((await client(c, 'POST', '/traffic/create', { ports: [rule] })).body, { status: true, error: '' });
    const dup = await client(c, 'POST', '/traffic/create', { ports: [rule] });
    assert.equal(dup.status, 409);
    assert.match(dup.body.error, /already has a forwarding rule/);
    const site = { domain: 'app.example.com', destination: '127.0.0.1', port: echo.port, secure: true };
    assert.equal((await client(c, 'POST', '/traffic/create', { https: [site] })).body.status, true);
    assert.equal(
      (await client(c, 'POST', '/traffic/create', { https: [{ ...site, domain: 'APP.example.com' }] })).status,
      409,
    );
    assert.equal((await client(c, 'POST', '/traffic/update', { https: [{ ...site, port: 1 }] })).body.status, true);
    const health = (await client(c, 'GET', '/health')).body.services as Array<{
      type: string;
      domain?: string;
      available: boolean;
    }>;
    assert.deepEqual(health.map((s) => [s.type, s.domain ?? '', s.available]).sort(), [
      ['http', 'app.example.com', false],
      ['port', '', true],
    ]);
    const map = { port: free, dstPort: port, destination: '', transport: 'tcp', label: 'm' };
    assert.equal((await client(c, 'POST', '/traffic/create', { portmaps: [map] })).body.status, true);
    assert.equal((await client(c, 'POST', '/traffic/create', { portmaps: [map] })).status, 409);
    assert.equal(
      (await client(c, 'POST', '/traffic/update', { portmaps: [{ ...map, label: 'renamed' }] })).body.status,
      true,
    );
    const saved = JSON.parse(readFileSync(c.configPath, 'utf8'));
    assert.equal(saved.portmaps[0].label, 'renamed');
    assert.equal(saved.https[0].port, 1);
    // traffic/delete as a GET with a JSON body, as the seed documents it.
    const del = await call(c.apiPort, 'GET', `${CLIENT}/traffic/delete`, {
      body: { https: [{ domain: 'app.example.com' }], portmaps: [{ port: free }], ports: [{ port }] },
    });
    assert.deepEqual(del.body, { status: true, error: '' });
    const after = JSON.parse(readFileSync(c.configPath, 'utf8'));
    assert.deepEqual(after.https, []);
    assert.deepEqual(after.portmaps, []);
    assert.deepEqual(
      after.ports.find((p: { port: number }) => p.port === port),
      { port, destination: '', dstPort: 0 },
    );
    assert.deepEqual((await client(c, 'POST', '/ports/release', { port })).body, { status: true, error: '' });
  });

  test('hub: tunnel/shutdown ends the session and refuses new ones', async () => {
    assert.equal((await admin(hub, 'GET', `/tunnel/shutdown/${'0'.repeat(16)}`)).status, 404);
    const res = await admin(hub, 'GET', `/tunnel/shutdown/${tunnelId}`);
    assert.equal(res.body.status, true);
    await until(
      async () => !(await client(c, 'GET', '/info')).body.isTunConnected,
      'the connector to lose its session',
    );
    const info = (await client(c, 'GET', '/info')).body;
    assert.match(info.lastError, /shut/);
    assert.equal((await admin(hub, 'GET', `/tunnel/info/${tunnelId}`)).body.tunnel.state, 4);
    // tun/start tries again and is refused: the session stays down.
    await client(c, 'GET', '/tun/start');
    await until(() => /refused 127\.0\.0\.1: tunnel [0-9a-f]+ was shut down/.test(hub.output()), 'a refusal');
    assert.equal((await client(c, 'GET', '/info')).body.isTunConnected, false);
  });
});

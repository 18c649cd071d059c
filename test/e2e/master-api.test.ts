import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, type MasterProcess, removeDir, startMaster, until } from '../helpers/master.js';
import { echoServer, freePort, type TestServer } from '../helpers/net.js';

const FIELDS = [
  'id',
  'alias',
  'type',
  'status',
  'url',
  'config',
  'restart',
  'meta',
  'mode',
  'ping',
  'pool',
  'tcps',
  'udps',
  'tcprx',
  'tcptx',
  'udprx',
  'udptx',
];
const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, PATCH, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers': 'Content-Type, Authorization, X-API-Key, Cache-Control',
};

describe('master API routes', () => {
  let m: MasterProcess;
  let echo: TestServer;
  let id: string;
  let port: number;

  before(async () => {
    m = await startMaster();
    echo = await echoServer();
  });
  after(async () => {
    await m.stop();
    await echo.close();
    removeDir(m.stateDir);
  });

  test('auth: missing and wrong key are 401 with NodePass messages, on every protected route', async () => {
    for (const [method, path] of [
      ['GET', '/instances'],
      ['POST', '/instances'],
      ['GET', '/instances/abcd1234'],
      ['PATCH', '/instances/abcd1234'],
      ['PUT', '/instances/abcd1234'],
      ['DELETE', '/instances/abcd1234'],
      ['GET', '/events'],
      ['GET', '/info'],
      ['POST', '/info'],
      ['GET', '/tcping?target=127.0.0.1:1'],
      ['GET', '/metrics'],
    ] as const) {
      const none = await api(m, method, path, undefined, null);
      assert.equal(none.status, 401, `${method} ${path}`);
      assert.deepEqual(none.body, { error: 'Unauthorized: API key required' });
      const wrong = await api(m, method, path, undefined, 'f'.repeat(32));
      assert.equal(wrong.status, 401);
      assert.deepEqual(wrong.body, { error: 'Unauthorized: Invalid API key' });
    }
  });

  test('CORS headers on every response, OPTIONS answers 200 with an empty body', async () => {
    for (const res of [
      await api(m, 'GET', '/instances'),
      await api(m, 'GET', '/instances', undefined, null),
      await api(m, 'OPTIONS', '/instances', undefined, null),
      await api(m, 'OPTIONS', '/instances/whatever', undefined, null),
      await api(m, 'OPTIONS', '/events', undefined, null),
    ]) {
      for (const [h, v] of Object.entries(CORS)) assert.equal(res.headers.get(h), v);
    }
    const opt = await api(m, 'OPTIONS', '/info', undefined, null);
    assert.equal(opt.status, 200);
    assert.equal(opt.text, '');
  });

  test('GET /instances holds the API-key instance ******** with the exact field set', async () => {
    const res = await api(m, 'GET', '/instances');
    assert.equal(res.status, 200);
    assert.ok(Array.isArray(res.body));
    const key = res.body.find((i: { id: string }) => i.id === '********');
    assert.deepEqual(Object.keys(key), FIELDS);
    assert.equal(key.url, m.key);
    assert.match(key.config, /^[0-9a-f]{16}$/);
    assert.equal(key.type, '');
    assert.equal(key.status, '');
    assert.deepEqual(key.meta, { peer: { sid: '', type: '', alias: '' }, tags: {} });
    // The same route answers below {prefix} without /v1.
    const legacy = await api(`http://127.0.0.1:${m.port}/api`, 'GET', '/instances', undefined, m.key);
    assert.equal(legacy.status, 200);
    assert.deepEqual(legacy.body, res.body);
  });

  test('POST /instances: 400s for bad bodies and URLs, each with a reason, and nothing is created', async () => {
    const bad: Array<[unknown, string | RegExp]> = [
      ['{"url":', 'Invalid request body'],
      ['[1,2]', 'Invalid request body'],
      [{}, 'Invalid request body'],
      [{ url: '' }, 'Invalid request body'],
      [{ url: 42 }, 'Invalid request body'],
      [{ url: 'client://127.0.0.1:1/x:1', alias: 'a'.repeat(257) }, /256/],
      [{ url: 'not a url' }, 'Invalid URL format'],
      [{ url: 'tcp://127.0.0.1:1/127.0.0.1:2' }, 'Invalid URL scheme'],
      [{ url: 'master://127.0.0.1:1/api' }, 'Invalid URL scheme'],
      [{ url: 'client://127.0.0.1:1080/a:80?mode=9' }, /^Invalid URL: mode: invalid value "9"/],
      [{ url: 'client://127.0.0.1:1080/a:80?colour=red' }, /unknown parameter "colour"/],
      [{ url: 'client://127.0.0.1:99999/a:80' }, /invalid port "99999"/],
      [{ url: 'client://127.0.0.1:1080' }, /target address is required/],
    ];
    const before = (await api(m, 'GET', '/instances')).body.length;
    for (const [body, message] of bad) {
      const res = await api(m, 'POST', '/instances', body);
      assert.equal(res.status, 400, JSON.stringify(body));
      if (typeof message === 'string') assert.deepEqual(res.body, { error: message });
      else assert.match(res.body.error, message);
    }
    assert.equal((await api(m, 'GET', '/instances')).body.length, before);
  });

  test('POST /instances creates a running instance with url, config and restart:true', async () => {
    port = await freePort();
    const res = await api(m, 'POST', '/instances', {
      alias: 'fwd',
      url: `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1`,
    });
    assert.equal(res.status, 201);
    assert.deepEqual(Object.keys(res.body), FIELDS);
    id = res.body.id;
    assert.match(id, /^[0-9a-f]{8}$/);
    assert.equal(res.body.alias, 'fwd');
    assert.equal(res.body.type, 'client');
    assert.equal(res.body.restart, true);
    assert.equal(res.body.url, `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?log=debug&mode=1`);
    assert.equal(
      res.body.config,
      `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?block=0&dial=auto&dns=5m0s&lbs=0&log=debug&min=64&mode=1&notcp=0&noudp=0&proxy=0&rate=0&read=0s&slot=65536&sni=none`,
    );
    await until(async () => (await api(m, 'GET', `/instances/${id}`)).body.status === 'running', 10_000, 'running');
  });

  test('GET /instances/{id}: 200, and 404 for an unknown id', async () => {
    assert.equal((await api(m, 'GET', `/instances/${id}`)).body.id, id);
    const res = await api(m, 'GET', '/instances/deadbeef');
    assert.equal(res.status, 404);
    assert.deepEqual(res.body, { error: 'Instance not found' });
  });

  test('PATCH: every invalid request is a 400 that changes nothing', async () => {
    const beforeRes = await api(m, 'GET', `/instances/${id}`);
    const bad: Array<[unknown, string | RegExp]> = [
      ['{nope', 'Invalid request body'],
      [{ action: 'explode' }, 'Invalid action: explode'],
      [{ alias: 'ok', action: 'explode' }, 'Invalid action: explode'],
      [{ alias: 'x'.repeat(257), action: 'stop' }, /256/],
      [{ restart: 'yes' }, /restart/],
      [{ alias: 'half', meta: { peer: { sid: 'not-a-uuid' } } }, /peer\.sid/],
      [{ meta: { peer: { type: '7' } } }, /peer\.type/],
      [{ meta: { peer: { alias: 'p'.repeat(257) } } }, /256/],
      [{ meta: { tags: { k: 'v'.repeat(257) } } }, /256/],
      [{ meta: { tags: { ['k'.repeat(257)]: 'v' } } }, /256/],
      [{ meta: { tags: { k: 1 } } }, /tags/],
      [{ meta: 'x' }, /meta/],
    ];
    for (const [body, message] of bad) {
      const res = await api(m, 'PATCH', `/instances/${id}`, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      if (typeof message === 'string') assert.deepEqual(res.body, { error: message });
      else assert.match(res.body.error, message);
    }
    const afterRes = await api(m, 'GET', `/instances/${id}`);
    assert.equal(afterRes.body.alias, beforeRes.body.alias);
    assert.equal(afterRes.body.status, 'running');
    assert.deepEqual(afterRes.body.meta, beforeRes.body.meta);
    assert.equal((await api(m, 'PATCH', '/instances/deadbeef', { alias: 'x' })).status, 404);
  });

  test('PATCH: alias, restart policy, meta (peer {} keeps the peer), actions', async () => {
    const sid = '550e8400-e29b-41d4-a716-446655440000';
    let res = await api(m, 'PATCH', `/instances/${id}`, {
      alias: 'renamed',
      restart: false,
      meta: { peer: { sid, type: '1', alias: 'remote' }, tags: { env: 'test' } },
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.alias, 'renamed');
    assert.equal(res.body.restart, false);
    assert.deepEqual(res.body.meta, { peer: { sid, type: '1', alias: 'remote' }, tags: { env: 'test' } });
    res = await api(m, 'PATCH', `/instances/${id}`, { meta: { peer: {}, tags: { team: 'a' } } });
    assert.deepEqual(res.body.meta, { peer: { sid, type: '1', alias: 'remote' }, tags: { team: 'a' } });
    res = await api(m, 'PATCH', `/instances/${id}`, { action: 'stop' });
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'stopped');
    res = await api(m, 'PATCH', `/instances/${id}`, { action: 'start' });
    assert.equal(res.body.status, 'running');
    res = await api(m, 'PATCH', `/instances/${id}`, { action: 'restart' });
    assert.equal(res.body.status, 'running');
    res = await api(m, 'PATCH', `/instances/${id}`, { action: 'reset' });
    assert.equal(res.body.tcprx + res.body.tcptx + res.body.udprx + res.body.udptx, 0);
  });

  test('PUT: 400 for bad URLs, 409 when unchanged, 404, 403 on ********, 200 with the new url', async () => {
    const current = (await api(m, 'GET', `/instances/${id}`)).body;
    assert.deepEqual((await api(m, 'PUT', `/instances/${id}`, { url: 'udp://x' })).body, {
      error: 'Invalid URL scheme',
    });
    assert.equal((await api(m, 'PUT', `/instances/${id}`, { url: '' })).status, 400);
    assert.equal((await api(m, 'PUT', `/instances/${id}`, '{')).status, 400);
    assert.match(
      (await api(m, 'PUT', `/instances/${id}`, { url: 'client://127.0.0.1:1/x:1?rate=fast' })).body.error,
      /rate/,
    );
    const same = await api(m, 'PUT', `/instances/${id}`, {
      url: `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1`,
    });
    assert.equal(same.status, 409);
    assert.deepEqual(same.body, { error: 'Instance URL conflict' });
    assert.equal((await api(m, 'PUT', '/instances/deadbeef', { url: current.url })).status, 404);
    const forbidden = await api(m, 'PUT', '/instances/********', { url: current.url });
    assert.equal(forbidden.status, 403);
    assert.deepEqual(forbidden.body, { error: 'Forbidden: API Key' });
    assert.equal((await api(m, 'GET', `/instances/${id}`)).body.url, current.url, 'nothing changed');
    const res = await api(m, 'PUT', `/instances/${id}`, {
      url: `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1&slot=10`,
    });
    assert.equal(res.status, 200);
    assert.match(res.body.url, /slot=10/);
    assert.match(res.body.config, /slot=10/);
    assert.equal(res.body.status, 'running');
  });

  test('******** : other PATCHes are no-ops, DELETE is 403', async () => {
    const res = await api(m, 'PATCH', '/instances/********', { alias: 'nope', action: 'stop' });
    assert.equal(res.status, 200);
    assert.equal(res.body.url, m.key);
    assert.equal(res.body.alias, '');
    const del = await api(m, 'DELETE', '/instances/********');
    assert.equal(del.status, 403);
    assert.deepEqual(del.body, { error: 'Forbidden: API Key' });
  });

  test('405 for an unknown method on a known route, 404 elsewhere', async () => {
    for (const [method, path] of [
      ['DELETE', '/instances'],
      ['POST', '/instances/abcd1234'],
      ['PUT', '/info'],
      ['POST', '/events'],
      ['DELETE', '/tcping'],
    ] as const) {
      const res = await api(m, method, path);
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.deepEqual(res.body, { error: 'Method not allowed' });
    }
    assert.equal((await api(m, 'GET', '/nothing')).status, 404);
  });

  test('GET /info and POST /info {alias}', async () => {
    const res = await api(m, 'GET', '/info');
    assert.equal(res.status, 200);
    for (const f of [
      'mid',
      'alias',
      'os',
      'arch',
      'cpu',
      'mem_total',
      'mem_used',
      'swap_total',
      'swap_used',
      'netrx',
      'nettx',
      'diskr',
      'diskw',
      'sysup',
      'ver',
      'name',
      'uptime',
      'log',
      'tls',
      'crt',
      'key',
      'noc',
    ]) {
      assert.ok(f in res.body, f);
    }
    const [maj, min] = (res.body.ver as string).split(/[.+-]/).map(Number) as [number, number];
    assert.ok(maj > 1 || (maj === 1 && min >= 10), `ver ${res.body.ver} >= 1.10.0`);
    assert.match(res.body.ver, /^\d+\.\d+\.\d+/);
    assert.equal(res.body.os, 'linux');
    assert.ok(res.body.mem_total > 0 && res.body.mem_used > 0 && res.body.sysup > 0);
    assert.ok(res.body.cpu >= 0 && res.body.cpu <= 100);
    assert.equal(res.body.name, '127.0.0.1');
    assert.equal(res.body.log, 'debug');
    assert.equal(res.body.tls, '0');
    assert.equal(res.body.mid, (await api(m, 'GET', '/instances/********')).body.config);
    const set = await api(m, 'POST', '/info', { alias: 'my master' });
    assert.equal(set.status, 200);
    assert.equal(set.body.alias, 'my master');
    assert.equal((await api(m, 'GET', '/instances/********')).body.alias, 'my master');
    assert.equal((await api(m, 'POST', '/info', { alias: 'z'.repeat(257) })).status, 400);
    assert.equal((await api(m, 'POST', '/info', '{')).status, 400);
    assert.equal((await api(m, 'GET', '/info')).body.alias, 'my master');
  });

  test('GET /tcping: 400 without target, connected / refused', async () => {
    const missing = await api(m, 'GET', '/tcping');
    assert.equal(missing.status, 400);
    assert.ok(missing.body.error);
    const ok = await api(m, 'GET', `/tcping?target=127.0.0.1:${echo.port}`);
    assert.equal(ok.status, 200);
    assert.deepEqual(Object.keys(ok.body), ['target', 'connected', 'latency', 'error']);
    assert.equal(ok.body.connected, true);
    assert.equal(ok.body.error, null);
    const closed = await freePort();
    const refused = await api(m, 'GET', `/tcping?target=127.0.0.1:${closed}`);
    assert.equal(refused.body.connected, false);
    assert.match(refused.body.error, /ECONNREFUSED/);
  });

  test('GET /metrics: Prometheus text with instances by status and bytes', async () => {
    const res = await api(m, 'GET', '/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    assert.match(res.text, /porthole_instances\{status="running"\} 1/);
    assert.match(res.text, new RegExp(`porthole_instance_bytes\\{id="${id}".*protocol="tcp",direction="rx"\\} \\d+`));
    assert.match(res.text, /porthole_instance_sessions\{/);
  });

  test('DELETE: 204 with no body, then 404', async () => {
    const res = await api(m, 'DELETE', `/instances/${id}`);
    assert.equal(res.status, 204);
    assert.equal(res.text, '');
    assert.equal((await api(m, 'GET', `/instances/${id}`)).status, 404);
    assert.equal((await api(m, 'DELETE', `/instances/${id}`)).status, 404);
    // The instance process is gone: its port is free again.
    await until(async () => (await api(m, 'GET', `/tcping?target=127.0.0.1:${port}`)).body.connected === false, 5000);
  });
});

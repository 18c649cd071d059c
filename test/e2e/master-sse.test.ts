import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { api, type MasterProcess, openEvents, removeDir, startMaster } from '../helpers/master.js';
import { echoServer, freePort, type TestServer } from '../helpers/net.js';

describe('master SSE /events', () => {
  let m: MasterProcess;
  let echo: TestServer;

  before(async () => {
    m = await startMaster({ env: { PORTHOLE_SSE_BUFFER: '1048576', PORTHOLE_SSE_HEARTBEAT: '300ms' } });
    echo = await echoServer();
  });
  after(async () => {
    await m.stop();
    await echo.close();
    removeDir(m.stateDir);
  });

  test('headers, retry, initial per instance, then create → update → delete in order', async () => {
    const first = await api(m, 'POST', '/instances', {
      url: `client://127.0.0.1:${await freePort()}/127.0.0.1:${echo.port}?mode=1`,
    });
    const sse = await openEvents(m);
    try {
      assert.equal(sse.res.statusCode, 200);
      assert.equal(sse.res.headers['content-type'], 'text/event-stream');
      assert.equal(sse.res.headers['cache-control'], 'no-cache');
      assert.equal(sse.res.headers['access-control-allow-origin'], '*');
      await sse.waitFor((e) => e.data.type === 'initial' && e.data.instance.id === first.body.id);
      assert.ok(sse.raw().startsWith('retry: 3000\n\n'), 'retry first');
      const initial = sse.events.filter((e) => e.data.type === 'initial').map((e) => e.data.instance.id);
      assert.deepEqual(initial, ['********', first.body.id]);
      for (const e of sse.events) {
        assert.equal(e.event, 'instance');
        assert.match(e.data.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
        assert.equal(e.data.logs, '');
      }
      assert.match(sse.raw(), /\ndata: \{/, '"data: " with the space');

      const created = await api(m, 'POST', '/instances', {
        alias: 'sse',
        url: `client://127.0.0.1:${await freePort()}/127.0.0.1:${echo.port}?mode=1`,
      });
      const id = created.body.id as string;
      const mine = (type: string) => (e: { data: { type: string; instance: { id: string } | null } }) =>
        e.data.type === type && e.data.instance?.id === id;
      await sse.waitFor(mine('create'));
      // Running, then a stats report, then an alias change.
      await sse.waitFor((e) => mine('update')(e) && e.data.instance.status === 'running');
      await api(m, 'PATCH', `/instances/${id}`, { alias: 'renamed' });
      await sse.waitFor((e) => mine('update')(e) && e.data.instance.alias === 'renamed');
      await sse.waitFor((e) => mine('update')(e) && e.data.instance.mode === 1, 5000);
      assert.equal((await api(m, 'DELETE', `/instances/${id}`)).status, 204);
      await sse.waitFor(mine('delete'));
      await new Promise((r) => setTimeout(r, 300));
      const types = sse.events.filter((e) => e.data.instance?.id === id).map((e) => e.data.type);
      assert.equal(types[0], 'create');
      assert.equal(types.at(-1), 'delete');
      assert.ok(
        types.slice(1, -1).every((t) => t === 'update' || t === 'log'),
        types.join(','),
      );
      assert.ok(types.includes('update'));
      // Comment heartbeats keep the stream alive.
      assert.match(sse.raw(), /\n: heartbeat\n\n/);
    } finally {
      sse.close();
      await api(m, 'DELETE', `/instances/${first.body.id}`);
    }
  });

  test('a subscriber that does not read never slows the API and is cut off at its buffer limit', async () => {
    const created = await api(m, 'POST', '/instances', {
      url: `client://127.0.0.1:${await freePort()}/127.0.0.1:${echo.port}?mode=1`,
    });
    const id = created.body.id as string;
    const slow = await openEvents(m, { paused: true });
    const fast = await openEvents(m);
    try {
      // Each update carries ~100 KB of tags: 120 of them overflow the kernel buffers and the 1 MiB buffer of a
      // subscriber that never reads, while one that reads may lag by up to ten events without being cut off.
      const tags: Record<string, string> = {};
      for (let i = 0; i < 200; i++) tags[`k${i}`.padEnd(200, 'k')] = 'v'.repeat(256);
      const started = Date.now();
      for (let i = 0; i < 120; i++) {
        const res = await api(m, 'PATCH', `/instances/${id}`, { alias: `a${i}`, meta: { tags } });
        assert.equal(res.status, 200);
      }
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 20_000, `120 PATCHes took ${elapsed} ms`);
      await fast.waitFor((e) => e.data.type === 'update' && e.data.instance?.alias === 'a119', 10_000);
      // The slow one was disconnected: once it reads, its stream ends.
      slow.res.resume();
      const ended = await Promise.race([
        slow.ended.then(() => true),
        new Promise((r) => setTimeout(() => r(false), 10_000)),
      ]);
      assert.ok(ended, 'slow subscriber disconnected');
      assert.ok(!slow.events.some((e) => e.data.instance?.alias === 'a119'), 'it did not get everything');
      assert.match(m.output(), /SSE subscriber too slow/);
    } finally {
      slow.close();
      fast.close();
      await api(m, 'DELETE', `/instances/${id}`);
    }
  });

  test('regenerating the key: the new key in url, update, then shutdown ends every stream', async () => {
    const a = await openEvents(m);
    const b = await openEvents(m);
    const oldKey = m.key;
    try {
      await a.waitFor((e) => e.data.type === 'initial');
      const res = await api(m, 'PATCH', '/instances/********', { action: 'restart' });
      assert.equal(res.status, 200);
      assert.equal(res.body.id, '********');
      assert.match(res.body.url, /^[0-9a-f]{32}$/);
      assert.notEqual(res.body.url, oldKey);
      for (const s of [a, b]) {
        const shutdown = await s.waitFor((e) => e.data.type === 'shutdown');
        assert.equal(shutdown.data.instance, null);
        const update = s.events.findIndex((e) => e.data.type === 'update' && e.data.instance?.url === res.body.url);
        assert.ok(update >= 0 && update < s.events.indexOf(shutdown), 'update before shutdown');
        await s.ended;
      }
      assert.equal((await api(m, 'GET', '/instances', undefined, oldKey)).status, 401);
      m.key = res.body.url;
      assert.equal((await api(m, 'GET', '/instances')).status, 200);
    } finally {
      a.close();
      b.close();
    }
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { api, removeDir, startMaster, tempStateDir, until } from '../helpers/master.js';
import { echoServer, exchange, freePort } from '../helpers/net.js';
import { CLI } from '../helpers/porthole.js';

const STATE = 'porthole-master.json';
const BACKUP = 'porthole-master.json.backup';

describe('master persistence', () => {
  test('kill -9 during 200 PATCHes: the state is the one after some acknowledged change; restart:true comes back', async (t) => {
    const dir = tempStateDir();
    const echo = await echoServer();
    t.after(async () => {
      await echo.close();
      removeDir(dir);
    });
    const m1 = await startMaster({ stateDir: dir });
    const port = await freePort();
    const auto = await api(m1, 'POST', '/instances', {
      alias: 'auto',
      url: `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1`,
    });
    const manual = await api(m1, 'POST', '/instances', {
      alias: 'manual',
      url: `client://127.0.0.1:${await freePort()}/127.0.0.1:${echo.port}?mode=1`,
    });
    await api(m1, 'PATCH', `/instances/${manual.body.id}`, { restart: false, action: 'stop' });
    await until(
      async () => (await api(m1, 'GET', `/instances/${auto.body.id}`)).body.mode === 1,
      10_000,
      'auto running',
    );
    assert.equal((await exchange(port, Buffer.alloc(3000, 1))).length, 3000);
    await until(async () => (await api(m1, 'GET', `/instances/${auto.body.id}`)).body.tcprx >= 3000, 10_000, 'bytes');

    let acked = -1;
    const killAt = 60 + Math.floor(Math.random() * 100);
    const burst = (async () => {
      for (let i = 0; i < 200; i++) {
        if (i === killAt) void m1.kill9();
        try {
          const res = await api(m1, 'PATCH', `/instances/${auto.body.id}`, {
            alias: `a${i}`,
            meta: { tags: { n: String(i) } },
          });
          if (res.status === 200) acked = i;
        } catch {
          return;
        }
      }
    })();
    await burst;
    await m1.kill9();
    assert.ok(acked >= 0 && acked < 199, `acknowledged up to ${acked}`);

    const m2 = await startMaster({ stateDir: dir });
    try {
      const list = (await api(m2, 'GET', '/instances')).body as Array<{
        id: string;
        alias: string;
        meta: { tags: { n?: string } };
      }>;
      const a = list.find((i) => i.id === auto.body.id);
      assert.ok(a, 'instance survived');
      const k = Number(a.alias.slice(1));
      assert.equal(a.alias, `a${k}`);
      assert.equal(a.meta.tags.n, String(k), 'alias and tags from the same change');
      assert.ok(k >= acked, `state has change ${k}, acknowledged ${acked}`);
      assert.ok(k <= acked + 1, `state has change ${k}, sent at most ${acked + 1}`);
      assert.equal(m2.key, m1.key, 'same API key');
      // restart:true comes back running, with its counters; restart:false stays stopped.
      await until(
        async () => {
          const i = (await api(m2, 'GET', `/instances/${auto.body.id}`)).body;
          return i.status === 'running' && i.mode === 1;
        },
        15_000,
        'auto instance running again',
      );
      assert.ok((await api(m2, 'GET', `/instances/${auto.body.id}`)).body.tcprx >= 3000, 'counters survived');
      assert.equal((await exchange(port, Buffer.from('back'))).toString(), 'back');
      const man = (await api(m2, 'GET', `/instances/${manual.body.id}`)).body;
      assert.equal(man.status, 'stopped');
      assert.equal(man.alias, 'manual');
    } finally {
      await m2.stop();
    }
  });

  test('a corrupt state file falls back to the backup with a clear log line; both corrupt refuses to start', async (t) => {
    const dir = tempStateDir();
    t.after(() => removeDir(dir));
    const m1 = await startMaster({ stateDir: dir });
    const created = await api(m1, 'POST', '/instances', {
      alias: 'kept',
      url: 'client://127.0.0.1:1/127.0.0.1:2?mode=1',
    });
    await api(m1, 'PATCH', `/instances/${created.body.id}`, { restart: false, action: 'stop' });
    assert.equal(await m1.stop(), 0);
    const saved = JSON.parse(readFileSync(join(dir, BACKUP), 'utf8'));
    assert.equal(saved.instances[0].alias, 'kept', 'backup written at shutdown');

    writeFileSync(join(dir, STATE), '{"version":1,"instances":[{"id":');
    const m2 = await startMaster({ stateDir: dir });
    try {
      assert.match(m2.output(), /State file .* is corrupt \(.*\); loaded the backup/);
      assert.equal(m2.key, m1.key);
      const got = await api(m2, 'GET', `/instances/${created.body.id}`);
      assert.equal(got.body.alias, 'kept');
    } finally {
      await m2.stop();
    }
    // The main file is whole again after that start.
    assert.equal(JSON.parse(readFileSync(join(dir, STATE), 'utf8')).instances[0].alias, 'kept');

    writeFileSync(join(dir, STATE), '[]');
    writeFileSync(join(dir, BACKUP), 'garbage');
    const proc = spawn(process.execPath, [CLI, `master://127.0.0.1:${await freePort()}/api`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORTHOLE_STATE_DIR: dir },
    });
    let out = '';
    proc.stdout.on('data', (c) => {
      out += c;
    });
    proc.stderr.on('data', (c) => {
      out += c;
    });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    const [code] = await once(proc, 'exit');
    clearTimeout(timer);
    assert.equal(code, 1);
    assert.match(out, /refusing to start with an empty state/);
  });

  test('the reload tick (NP_RELOAD_INTERVAL) refreshes the backup while the master runs', async (t) => {
    const dir = tempStateDir();
    const m = await startMaster({ stateDir: dir, env: { NP_RELOAD_INTERVAL: '1s' } });
    t.after(async () => {
      await m.stop();
      removeDir(dir);
    });
    const backupAliases = () => {
      try {
        return (JSON.parse(readFileSync(join(dir, BACKUP), 'utf8')).instances as Array<{ alias: string }>).map(
          (i) => i.alias,
        );
      } catch {
        return [];
      }
    };
    // The start wrote a backup of the state as it was: no instance yet.
    assert.deepEqual(backupAliases(), []);
    const created = await api(m, 'POST', '/instances', {
      alias: 'ticked',
      url: `client://127.0.0.1:${await freePort()}/127.0.0.1:${await freePort()}?mode=1`,
    });
    assert.equal(created.status, 201);
    await until(async () => backupAliases().includes('ticked'), 5000, 'the backup has the new instance');
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { api, type MasterProcess, openEvents, removeDir, startMaster, until } from '../helpers/master.js';
import { echoServer, exchange, freePort, type TestServer } from '../helpers/net.js';

/** pids of the master's instance processes. */
function childPids(masterPid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(masterPid)], { encoding: 'utf8' })
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

describe('master: the flow a dashboard performs', () => {
  let m: MasterProcess;
  let echo: TestServer;

  before(async () => {
    m = await startMaster({ env: { PORTHOLE_STATS_TIMEOUT: '1500ms' } });
    echo = await echoServer();
  });
  after(async () => {
    await m.stop();
    await echo.close();
    removeDir(m.stateDir);
  });

  test('create, running, bytes in GET and SSE, reset, stop, start, PUT, delete', async () => {
    const sse = await openEvents(m);
    try {
      const port = await freePort();
      const created = await api(m, 'POST', '/instances', {
        alias: 'web',
        url: `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1`,
      });
      assert.equal(created.status, 201);
      const id = created.body.id as string;
      const get = async () => (await api(m, 'GET', `/instances/${id}`)).body;
      await sse.waitFor(
        (e) => e.data.type === 'update' && e.data.instance?.id === id && e.data.instance.status === 'running',
      );
      // Its log lines arrive as SSE log events (over IPC, not scraped from stdout).
      const log = await sse.waitFor((e) => e.data.type === 'log' && e.data.instance?.id === id);
      assert.ok(log.data.logs.length > 0);
      assert.doesNotMatch(log.data.logs, /CHECK_POINT/);

      const payload = Buffer.alloc(200_000, 7);
      assert.equal((await exchange(port, payload)).length, payload.length);
      const counted = await until(
        async () => {
          const i = await get();
          return i.tcprx >= payload.length && i.tcptx >= payload.length && i;
        },
        10_000,
        'tcprx/tcptx',
      );
      assert.equal(counted.status, 'running');
      await sse.waitFor(
        (e) => e.data.type === 'update' && e.data.instance?.id === id && e.data.instance.tcprx >= payload.length,
      );

      const reset = await api(m, 'PATCH', `/instances/${id}`, { action: 'reset' });
      assert.equal(reset.body.tcprx, 0);
      assert.equal(reset.body.tcptx, 0);
      await new Promise((r) => setTimeout(r, 700));
      assert.equal((await get()).tcprx, 0, 'stays zero after the next stats report');

      assert.equal((await exchange(port, Buffer.alloc(1000, 1))).length, 1000);
      await until(async () => (await get()).tcprx >= 1000, 10_000, 'bytes after reset');
      const stopped = await api(m, 'PATCH', `/instances/${id}`, { action: 'stop' });
      assert.equal(stopped.body.status, 'stopped');
      await assert.rejects(exchange(port, Buffer.from('x')), /ECONNREFUSED/);
      assert.equal((await get()).tcprx, 1000, 'counters survive the stop');

      const started = await api(m, 'PATCH', `/instances/${id}`, { action: 'start' });
      assert.equal(started.body.status, 'running');
      await until(async () => (await get()).mode === 1, 10_000, 'stats after start');
      assert.equal((await exchange(port, Buffer.alloc(500, 2))).length, 500);
      await until(async () => (await get()).tcprx >= 1500, 10_000, 'base + current after a restart');

      const port2 = await freePort();
      const put = await api(m, 'PUT', `/instances/${id}`, {
        url: `client://127.0.0.1:${port2}/127.0.0.1:${echo.port}?mode=1`,
      });
      assert.equal(put.status, 200);
      assert.equal(put.body.status, 'running');
      await until(async () => (await get()).mode === 1, 10_000, 'stats after PUT');
      assert.equal((await exchange(port2, Buffer.from('hello'))).toString(), 'hello');
      await assert.rejects(exchange(port, Buffer.from('x')), /ECONNREFUSED/);

      assert.equal((await api(m, 'DELETE', `/instances/${id}`)).status, 204);
      await sse.waitFor((e) => e.data.type === 'delete' && e.data.instance?.id === id);
      await assert.rejects(exchange(port2, Buffer.from('x')), /ECONNREFUSED/);
      assert.deepEqual(childPids(m.proc.pid as number), []);
    } finally {
      sse.close();
    }
  });

  test('status rules: exit code 1 → error; crash of a restart:true instance → restarted; no stats → error', async () => {
    // A port in use: the instance exits 1 with its reason, which arrives as a log event.
    const taken = await echoServer();
    const sse = await openEvents(m);
    const bad = await api(m, 'POST', '/instances', {
      url: `client://127.0.0.1:${taken.port}/127.0.0.1:${echo.port}?mode=1`,
    });
    const badId = bad.body.id as string;
    await until(async () => (await api(m, 'GET', `/instances/${badId}`)).body.status === 'error', 10_000, 'error');
    const reason = await sse.waitFor(
      (e) => e.data.type === 'log' && e.data.instance?.id === badId && /EADDRINUSE/.test(e.data.logs),
    );
    assert.ok(reason);
    await api(m, 'PATCH', `/instances/${badId}`, { restart: false, action: 'stop' });
    assert.equal((await api(m, 'GET', `/instances/${badId}`)).body.status, 'stopped');
    await api(m, 'DELETE', `/instances/${badId}`);
    await taken.close();
    sse.close();

    const port = await freePort();
    const made = await api(m, 'POST', '/instances', {
      url: `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1`,
    });
    const id = made.body.id as string;
    await until(async () => (await api(m, 'GET', `/instances/${id}`)).body.mode === 1, 10_000, 'running');
    const [pid] = childPids(m.proc.pid as number);
    assert.ok(pid);
    // SIGSTOP: no stats for PORTHOLE_STATS_TIMEOUT → error; SIGCONT: stats again → running.
    process.kill(pid, 'SIGSTOP');
    await until(
      async () => (await api(m, 'GET', `/instances/${id}`)).body.status === 'error',
      10_000,
      'error without stats',
    );
    process.kill(pid, 'SIGCONT');
    await until(
      async () => (await api(m, 'GET', `/instances/${id}`)).body.status === 'running',
      10_000,
      'back to running',
    );
    // kill -9: error, then the restart policy starts a new process after the backoff.
    process.kill(pid, 'SIGKILL');
    await until(
      async () => {
        const pids = childPids(m.proc.pid as number);
        return pids.length === 1 && pids[0] !== pid;
      },
      10_000,
      'a new process',
    );
    await until(
      async () => {
        const i = (await api(m, 'GET', `/instances/${id}`)).body;
        return i.status === 'running' && i.mode === 1;
      },
      10_000,
      'running again, reporting',
    );
    assert.equal((await exchange(port, Buffer.from('again'))).toString(), 'again');
    assert.match(m.output(), new RegExp(`Instance ${id} exited with signal SIGKILL`));
    await api(m, 'DELETE', `/instances/${id}`);
  });
});

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { connectTcp, exchange, freePort, sleep, type TestServer, tcpServer } from '../helpers/net.js';
import { startForwarder } from '../helpers/porthole.js';

/** A target that answers every connection with its name and closes. */
function named(name: string, port = 0): Promise<TestServer> {
  return tcpServer((s) => s.end(name), '127.0.0.1', port);
}

async function whoAnswers(port: number): Promise<string> {
  return (await exchange(port, Buffer.alloc(0))).toString();
}

/**
 * A target whose TCP connects hang: a listener with a full accept queue that never accepts, so the kernel drops
 * new SYNs. (Python's socket API lets us listen without accepting; node accepts on its own.)
 */
async function hangingTarget(): Promise<{ port: number; stop(): void }> {
  const py = spawn('python3', [
    '-c',
    'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)',
  ]);
  const [line] = (await once(py.stdout, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  // One connection fills an accept queue of backlog 0; later SYNs are dropped and their connects hang.
  const fillers: Socket[] = [await connectTcp(port)];
  return {
    port,
    stop() {
      for (const f of fillers) f.destroy();
      (py as ChildProcess).kill('SIGKILL');
    },
  };
}

describe('target group and load balancing', () => {
  test('lbs=0: a dead first target fails over to the second for every connection', async () => {
    const dead = await freePort();
    const b = await named('B');
    const port = await freePort();
    const fwd = await startForwarder(`client://127.0.0.1:${port}/127.0.0.1:${dead},127.0.0.1:${b.port}?mode=1`);
    try {
      for (let i = 0; i < 6; i++) assert.equal(await whoAnswers(port), 'B');
    } finally {
      await b.close();
      assert.equal(await fwd.stop(), 0);
    }
  });

  test('lbs=0: connections rotate across live targets', async () => {
    const a = await named('A');
    const b = await named('B');
    const port = await freePort();
    const fwd = await startForwarder(`client://127.0.0.1:${port}/127.0.0.1:${a.port},127.0.0.1:${b.port}?mode=1`);
    try {
      const seen = [];
      for (let i = 0; i < 6; i++) seen.push(await whoAnswers(port));
      assert.deepEqual(new Set(seen), new Set(['A', 'B']));
    } finally {
      await a.close();
      await b.close();
      assert.equal(await fwd.stop(), 0);
    }
  });

  test('lbs=2: sticks to the backup while the primary is down, then returns to the primary', async () => {
    const primaryPort = await freePort();
    const backup = await named('backup');
    const port = await freePort();
    const fwd = await startForwarder(
      `client://127.0.0.1:${port}/127.0.0.1:${primaryPort},127.0.0.1:${backup.port}?mode=1&lbs=2`,
      { PORTHOLE_PRIMARY_RETURN_INTERVAL: '1s' },
    );
    let primary: TestServer | undefined;
    try {
      for (let i = 0; i < 4; i++) assert.equal(await whoAnswers(port), 'backup');
      primary = await named('primary', primaryPort);
      // Within the return interval the dialer stays on the backup that worked...
      assert.equal(await whoAnswers(port), 'backup');
      await sleep(1200);
      // ...and after it, it goes back to the primary and stays there.
      for (let i = 0; i < 4; i++) assert.equal(await whoAnswers(port), 'primary');
    } finally {
      await primary?.close();
      await backup.close();
      assert.equal(await fwd.stop(), 0);
    }
  });

  test('lbs=1: picks the target that connects fastest', async () => {
    const slow = await hangingTarget();
    const fast = await named('fast');
    const port = await freePort();
    const fwd = await startForwarder(
      `client://127.0.0.1:${port}/127.0.0.1:${slow.port},127.0.0.1:${fast.port}?mode=1&lbs=1`,
      { NP_TCP_DIAL_TIMEOUT: '3s' },
    );
    try {
      await sleep(300);
      for (let i = 0; i < 6; i++) {
        const started = Date.now();
        assert.equal(await whoAnswers(port), 'fast');
        assert.ok(Date.now() - started < 500, 'no dial waited on the slow target');
      }
    } finally {
      slow.stop();
      await fast.close();
      assert.equal(await fwd.stop(), 0);
    }
  });

  test('lbs=0 control: the same hanging first target delays dials that start on it', async () => {
    const slow = await hangingTarget();
    const fast = await named('fast');
    const port = await freePort();
    const fwd = await startForwarder(
      `client://127.0.0.1:${port}/127.0.0.1:${slow.port},127.0.0.1:${fast.port}?mode=1&lbs=0`,
      { NP_TCP_DIAL_TIMEOUT: '700ms' },
    );
    try {
      const times = [];
      for (let i = 0; i < 2; i++) {
        const started = Date.now();
        assert.equal(await whoAnswers(port), 'fast');
        times.push(Date.now() - started);
      }
      assert.ok(Math.max(...times) >= 600, `one dial started on the hanging target: ${times}`);
    } finally {
      slow.stop();
      await fast.close();
      assert.equal(await fwd.stop(), 0);
    }
  });
});

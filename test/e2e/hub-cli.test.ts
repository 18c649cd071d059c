import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  BOOT_TOKEN,
  CLIENT,
  type ConnectorProcess,
  call,
  configureConnector,
  type HubProcess,
  removeDir,
  runConfigure,
  startConnector,
  startHub,
  tempDir,
  transfer,
  until,
} from '../helpers/hub.js';
import { echoServer, freePort, type TestServer } from '../helpers/net.js';
import { runPorthole, spawnPorthole } from '../helpers/porthole.js';

describe('porthole hub / connector command lines', () => {
  let hub: HubProcess;
  let dir: string;
  let echo: TestServer;

  before(async () => {
    dir = tempDir('porthole-cli-');
    hub = await startHub();
    echo = await echoServer();
  });
  after(async () => {
    await hub?.stop();
    await echo?.close();
    removeDir(dir);
    if (hub) removeDir(hub.stateDir);
  });

  test('hub: bad flags and config files are clear errors (exit 1), nothing starts', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['hub', '--port-range', '9-x'], /--port-range: expected BEGIN-END/],
      [['hub', '--port-range', '30000-20000'], /is empty/],
      [['hub', '--tunnel-listen', 'nope'], /has no port/],
      [['hub', '--bogus', '1'], /unknown option "--bogus"/],
      [['hub', '--config', `${dir}/missing.json`], /hub config .*missing\.json/],
    ];
    writeFileSync(`${dir}/bad.json`, '{"portRange": {"begin": 1}}');
    cases.push([['hub', '--config', `${dir}/bad.json`], /hub config: \/portRange/]);
    writeFileSync(`${dir}/notjson.json`, '{');
    cases.push([['hub', '--config', `${dir}/notjson.json`], /not JSON/]);
    for (const [args, message] of cases) {
      const r = await runPorthole(args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.output}`);
      assert.match(r.output, message);
    }
    const corrupt = tempDir('porthole-corrupt-');
    writeFileSync(`${corrupt}/porthole-hub.json`, '{"version": 1');
    const r = await runPorthole([
      'hub',
      '--state-dir',
      corrupt,
      '--tunnel-listen',
      '127.0.0.1:0',
      '--admin-listen',
      '127.0.0.1:0',
    ]);
    assert.equal(r.code, 1);
    assert.match(r.output, /hub state .* is not JSON/);
    assert.equal(
      readFileSync(`${corrupt}/porthole-hub.json`, 'utf8'),
      '{"version": 1',
      'a corrupt state is left alone',
    );
    removeDir(corrupt);
  });

  test('connector: configure, route tcp allocate / forward / ls / release, info; offline forward edits the config', async () => {
    const config = await configureConnector(hub, 'cli', dir);
    const saved = JSON.parse(readFileSync(config, 'utf8'));
    assert.equal(saved.fingerprint, hub.fingerprint, 'configure pins the hub certificate');
    const c: ConnectorProcess = await startConnector(config);
    const cli = (...args: string[]) =>
      runPorthole(['connector', '--config', config, ...args, '--api-port', String(c.apiPort)]);
    try {
      const alloc = await cli('route', 'tcp', 'allocate');
      assert.equal(alloc.code, 0, alloc.output);
      const port = Number(/allocated port (\d+)/.exec(alloc.output)?.[1]);
      assert.ok(port >= hub.range.begin && port <= hub.range.end);
      const fwd = await cli(
        'route',
        'tcp',
        'forward',
        '--port',
        String(port),
        '--destination',
        '127.0.0.1',
        '--dstport',
        String(echo.port),
      );
      assert.equal(fwd.code, 0, fwd.output);
      await until(
        async () =>
          (await transfer(port, Buffer.from('ping'), 'ping').catch(() => Buffer.alloc(0))).toString() === 'ping',
        'forwarding',
      );
      const ls = await cli('route', 'tcp', 'ls');
      assert.match(ls.output, new RegExp(`${port}\\s+-> 127\\.0\\.0\\.1:${echo.port}`));
      const info = await cli('info');
      assert.match(info.output, /running:\s+yes/);
      assert.match(info.output, /connected: yes/);
      const bad = await cli('route', 'tcp', 'forward', '--port', '1', '--destination', '127.0.0.1', '--dstport', '2');
      assert.equal(bad.code, 1);
      assert.match(bad.output, /port 1 is not allocated/);
      const bad2 = await cli(
        'route',
        'tcp',
        'forward',
        '--port',
        String(port),
        '--destination',
        '127.0.0.1',
        '--dstport',
        'x',
      );
      assert.equal(bad2.code, 1);
      assert.match(bad2.output, /--dstport: expected/);
      const rel = await cli('route', 'tcp', 'release', '--port', String(port));
      assert.equal(rel.code, 0, rel.output);
      assert.match((await cli('route', 'tcp', 'ls')).output, /no ports allocated/);

      // Offline: forward edits the file; allocate needs the running connector.
      const again = Number(/allocated port (\d+)/.exec((await cli('route', 'tcp', 'allocate')).output)?.[1]);
      await c.stop();
      const off = await cli(
        'route',
        'tcp',
        'forward',
        '--port',
        String(again),
        '--destination',
        '127.0.0.1',
        '--dstport',
        String(echo.port),
      );
      assert.equal(off.code, 0, off.output);
      assert.match(off.output, /saved; applies when the connector starts/);
      assert.match((await cli('info')).output, /running:\s+no/);
      const offAlloc = await cli('route', 'tcp', 'allocate');
      assert.equal(offAlloc.code, 1);
      assert.match(offAlloc.output, /needs the running connector/);
      const restarted = await startConnector(config, c.apiPort);
      try {
        await until(
          async () =>
            (await transfer(again, Buffer.from('pong'), 'pong').catch(() => Buffer.alloc(0))).toString() === 'pong',
          'the offline rule to apply at start',
        );
      } finally {
        await restarted.stop();
      }
    } finally {
      await c.stop();
    }
  });

  test('connector: configure again keeps the tunnel (id, ports); --new-tunnel or a wrong secret registers a new one', async () => {
    const config = await configureConnector(hub, 'again', dir);
    const first = JSON.parse(readFileSync(config, 'utf8'));
    const c = await startConnector(config);
    let port: number;
    try {
      const alloc = await runPorthole([
        'connector',
        '--config',
        config,
        'route',
        'tcp',
        'allocate',
        '--api-port',
        String(c.apiPort),
      ]);
      assert.equal(alloc.code, 0, alloc.output);
      port = Number(/allocated port (\d+)/.exec(alloc.output)?.[1]);
    } finally {
      await c.stop();
    }
    const configure = (...extra: string[]) => runConfigure(hub, config, '--name', 'again', ...extra);
    const again = await configure();
    assert.equal(again.code, 0, again.output);
    assert.match(again.output, new RegExp(`Kept tunnel ${first.tunnelId}`));
    const kept = JSON.parse(readFileSync(config, 'utf8'));
    assert.equal(kept.tunnelId, first.tunnelId);
    assert.equal(kept.secret, first.secret);
    assert.deepEqual(
      kept.ports.map((p: { port: number }) => p.port),
      [port],
    );
    // A forged secret cannot take the tunnel over: a new tunnel, the old one untouched.
    writeFileSync(config, JSON.stringify({ ...kept, secret: 'f'.repeat(64) }));
    const forged = await configure();
    assert.equal(forged.code, 0, forged.output);
    assert.match(forged.output, /Registered tunnel/);
    const other = JSON.parse(readFileSync(config, 'utf8'));
    assert.notEqual(other.tunnelId, first.tunnelId);
    assert.deepEqual(other.ports, []);
    const fresh = await configure('--new-tunnel');
    assert.equal(fresh.code, 0, fresh.output);
    assert.notEqual(JSON.parse(readFileSync(config, 'utf8')).tunnelId, other.tunnelId);
  });

  test('connector: usage errors and a missing config are clear', async () => {
    const none = await runPorthole(['connector', 'start', '--config', `${dir}/none.json`]);
    assert.equal(none.code, 1);
    assert.match(none.output, /no connector config .* run "porthole connector configure/);
    const unknown = await runPorthole(['connector', 'frobnicate', '--config', `${dir}/none.json`]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.output, /unknown command "frobnicate"/);
    const noToken = await runPorthole(['connector', 'configure', '--hub', hub.address, '--config', `${dir}/n.json`]);
    assert.equal(noToken.code, 1);
    assert.match(noToken.output, /--token is required/);
    const wrongPin = await runPorthole([
      'connector',
      'configure',
      '--hub',
      hub.address,
      '--token',
      BOOT_TOKEN,
      '--fingerprint',
      'sha256:00',
      '--config',
      `${dir}/p.json`,
    ]);
    assert.equal(wrongPin.code, 1);
    assert.match(wrongPin.output, /does not match the pinned/);
    const help = await runPorthole(['connector', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.output, /route tcp allocate/);
  });

  test('connector: reconnect.maxRetries bounds the attempts; tun/start tries again', async () => {
    const hubPort = await freePort();
    const apiPort = await freePort();
    const config = `${dir}/retries.json`;
    writeFileSync(
      config,
      JSON.stringify({
        hub: `127.0.0.1:${hubPort}`,
        tls: false,
        tunnelId: 'ab'.repeat(8),
        secret: 'cd'.repeat(32),
        reconnect: { initialDelay: 50, maxDelay: 200, maxRetries: 3 },
      }),
    );
    const p = spawnPorthole(['connector', 'start', '--config', config, '--api-port', String(apiPort)]);
    try {
      await p.waitFor(/giving up after 3 failed attempts/, 15_000);
      assert.equal((p.output().match(/connecting to the hub failed/g) ?? []).length, 3);
      const info = await call(apiPort, 'GET', `${CLIENT}/info`);
      assert.equal(info.body.isTunConnected, false);
      assert.equal(info.body.state, 'gave-up');
      assert.match(info.body.lastError, /ECONNREFUSED/);
      assert.deepEqual((await call(apiPort, 'GET', `${CLIENT}/tun/start`)).body, {
        status: true,
        isTunConnected: false,
        error: '',
      });
      await until(() => (p.output().match(/giving up/g) ?? []).length === 2, 'a second round of attempts');
    } finally {
      await p.stop();
    }
  });
});

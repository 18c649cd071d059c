import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type ConnectorProcess,
  configureConnector,
  type HubProcess,
  removeDir,
  startConnector,
  startHub,
  tempDir,
  transfer,
  until,
} from '../helpers/hub.js';
import { echoServer } from '../helpers/net.js';
import { runPorthole, spawnPorthole } from '../helpers/porthole.js';

/** fetch() will not send a Host of our choosing; node:http does. */
function status(port: number, host: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host, ...headers }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('connector CLI: route http add | rm | ls', () => {
  let hub: HubProcess;
  let dir: string;
  let configPath: string;
  let c: ConnectorProcess | undefined;

  before(async () => {
    dir = tempDir('porthole-sites-cli-');
    mkdirSync(join(dir, 'www'));
    writeFileSync(join(dir, 'www', 'index.html'), 'cli site');
    hub = await startHub();
    configPath = await configureConnector(hub, 'cli', dir);
  });

  after(async () => {
    await c?.stop();
    await hub?.stop();
    if (dir) removeDir(dir);
    if (hub) removeDir(hub.stateDir);
  });

  const route = (...args: string[]) => runPorthole(['connector', 'route', 'http', ...args, '--config', configPath]);

  test('offline: add saves to the config, ls lists it, bad flags are refused without a change', async () => {
    const add = await route('add', '--domain', 'Static.Test', '--webroot', join(dir, 'www'));
    assert.equal(add.code, 0, add.output);
    assert.match(add.output, /site static\.test added \(saved/);
    const before = readFileSync(configPath, 'utf8');
    for (const bad of [
      ['add', '--domain', 'no_such domain', '--webroot', dir],
      ['add', '--domain', 'x.test'],
      ['add', '--domain', 'x.test', '--upstream-url', 'ftp://x'],
      ['add', '--domain', 'x.test', '--webroot', dir, '--ca', 'a.pem'],
      ['add', '--domain', 'x.test', '--webroot', dir, '--basic-auth', 'nocolon'],
      ['add', '--domain', 'x.test', '--http', '99999', '--destination', '127.0.0.1'],
      ['rm', '--domain', 'nosuch.test'],
      ['frob'],
    ]) {
      const r = await route(...bad);
      assert.notEqual(r.code, 0, `${bad.join(' ')}: ${r.output}`);
    }
    assert.equal(readFileSync(configPath, 'utf8'), before);
    const ls = await route('ls');
    assert.match(ls.output, /static\.test\t-> webroot .*www\t\(http\)/);
  });

  test('running: the saved site is served; add with --basic-auth applies live; rm stops routing', async () => {
    c = await startConnector(configPath);
    await until(async () => (await status(hub.httpPort, 'static.test')) === 200, 'static.test routed');
    const apiPort = String(c.apiPort);
    const add = await route(
      'add',
      '--domain',
      'guarded.test',
      '--webroot',
      join(dir, 'www'),
      '--basic-auth',
      'ann:pw',
      '--api-port',
      apiPort,
    );
    assert.equal(add.code, 0, add.output);
    assert.doesNotMatch(readFileSync(configPath, 'utf8'), /ann:pw/);
    await until(async () => (await status(hub.httpPort, 'guarded.test')) === 401, 'guarded.test routed');
    const auth = { authorization: `Basic ${Buffer.from('ann:pw').toString('base64')}` };
    assert.equal(await status(hub.httpPort, 'guarded.test', auth), 200);
    const ls = await route('ls', '--api-port', apiPort);
    assert.match(ls.output, /guarded\.test.*basic auth/);
    const rm = await route('rm', '--domain', 'guarded.test', '--api-port', apiPort);
    assert.equal(rm.code, 0, rm.output);
    await until(async () => (await status(hub.httpPort, 'guarded.test')) === 404, 'guarded.test unrouted');
    assert.equal(await status(hub.httpPort, 'static.test'), 200);
  });

  test('quick tunnels: tcp <port> forwards a fresh hub port for the run; http --webroot serves a site, unsaved', async () => {
    const quickConfig = await configureConnector(hub, 'quick', dir);
    const saved = readFileSync(quickConfig, 'utf8');
    const echo = await echoServer();
    const tcp = spawnPorthole(['connector', 'tcp', String(echo.port), '--config', quickConfig]);
    try {
      const line = await tcp.waitFor(/tcp: \S+:(\d+) -> 127\.0\.0\.1:\d+/, 15_000);
      const port = Number(/tcp: \S+:(\d+)/.exec(line)?.[1]);
      await until(
        async () =>
          (await transfer(port, Buffer.from('quick'), 'quick').catch(() => Buffer.alloc(0))).toString() === 'quick',
        'quick tcp port echoes',
      );
      await tcp.stop();
      assert.equal(readFileSync(quickConfig, 'utf8'), saved);
      const http = spawnPorthole([
        'connector',
        'http',
        '--webroot',
        join(dir, 'www'),
        '--domain',
        'quick.test',
        '--config',
        quickConfig,
      ]);
      try {
        await http.waitFor(/http: http:\/\/quick\.test\/ -> /, 15_000);
        await until(async () => (await status(hub.httpPort, 'quick.test')) === 200, 'quick.test routed');
      } finally {
        await http.stop();
      }
      assert.equal(readFileSync(quickConfig, 'utf8'), saved);
      const bad = await runPorthole(['connector', 'tcp', 'notaport', '--config', quickConfig]);
      assert.notEqual(bad.code, 0);
      assert.match(bad.output, /expected a local port/);
    } finally {
      await tcp.stop();
      await echo.close();
    }
  });
});

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { connectTcp, echoServer, exchange, freePort, readBytes, tcpServer } from '../helpers/net.js';
import { runPorthole, spawnPorthole, startForwarder } from '../helpers/porthole.js';

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

describe('porthole CLI', () => {
  test('--help prints usage and exits 0', async () => {
    const { code, output } = await runPorthole(['--help']);
    assert.equal(code, 0);
    assert.match(output, /Usage:/);
    assert.match(output, /client:\/\//);
  });

  test('--version prints the package version', async () => {
    const { code, output } = await runPorthole(['--version']);
    assert.equal(code, 0);
    assert.equal(output.trim(), `porthole ${VERSION}`);
  });

  test('no arguments prints usage and exits 2', async () => {
    const { code, output } = await runPorthole([]);
    assert.equal(code, 2);
    assert.match(output, /Usage:/);
  });

  const bad: Array<[string, RegExp]> = [
    ['client://127.0.0.1:1080/a:80?mode=1&rate=fast', /rate: invalid value "fast"/],
    ['client://127.0.0.1:1080/a:80?mode=9', /mode: invalid value "9" \(accepted: 0, 1, 2\)/],
    ['client://127.0.0.1:1080/a:80?lbs=3', /lbs: invalid value "3"/],
    ['client://127.0.0.1:1080/a:80?read=5', /read: invalid duration "5"/],
    ['client://127.0.0.1:1080/a:80?colour=red', /unknown parameter "colour"/],
    ['client://127.0.0.1/a:80', /has no port/],
    ['client://127.0.0.1:99999/a:80', /invalid port "99999"/],
    ['client://127.0.0.1:1080', /target address is required/],
    ['client://::1:1080/a:80', /must be written in brackets/],
    ['tcp://127.0.0.1:1080/a:80', /invalid URL scheme "tcp"/],
    ['client://127.0.0.1:1080/127.0.0.1:1080?mode=1', /tunnel port conflicts/],
    ['client://127.0.0.1:1080/a:80?mode=1&notcp=1&noudp=1', /nothing to forward/],
    ['nonsense', /unknown command "nonsense"/],
  ];
  for (const [url, message] of bad) {
    test(`rejects ${url} with a clear message`, async () => {
      const { code, output } = await runPorthole([url]);
      assert.notEqual(code, 0);
      assert.match(output, message);
      assert.doesNotMatch(output, /at .*\.js:\d+/, 'no stack trace');
    });
  }

  test('a bad NP_* variable is refused with its name', async () => {
    const p = spawnPorthole(['client://127.0.0.1:1080/a:80?mode=1'], { NP_TCP_DIAL_TIMEOUT: 'soon' });
    const [code] = await once(p.proc, 'exit');
    assert.equal(code, 1);
    assert.match(p.output(), /NP_TCP_DIAL_TIMEOUT: invalid duration "soon"/);
  });

  test('a tunnel address already in use is an error, not a crash loop', async () => {
    const taken = await echoServer();
    const { code, output } = await runPorthole([`client://127.0.0.1:${taken.port}/127.0.0.1:9?mode=1`]);
    await taken.close();
    assert.equal(code, 1);
    assert.match(output, /EADDRINUSE/);
  });

  test('SIGTERM closes listeners and ends in-flight sessions within NP_SHUTDOWN_TIMEOUT', async () => {
    // A target that keeps its connections open and never ends them.
    const sticky = await tcpServer(() => {});
    const port = await freePort();
    const fwd = await startForwarder(`client://127.0.0.1:${port}/127.0.0.1:${sticky.port}?mode=1`, {
      NP_SHUTDOWN_TIMEOUT: '1s',
    });
    const user = await connectTcp(port);
    user.on('error', () => {});
    user.write('in flight');
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const userDone = readBytes(user, 1, 5000);
    assert.equal(await fwd.stop(10_000), 0);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 2500, `exited after ${elapsed} ms`);
    assert.equal((await userDone).length, 0, 'the user saw its session end');
    await assert.rejects(exchange(port, Buffer.from('x')), /ECONNREFUSED/);
    await sticky.close();
  });
});

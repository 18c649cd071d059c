import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hashSecret } from '../../src/connector/site-auth.js';
import {
  type ConnectorProcess,
  client,
  configureConnector,
  type HubProcess,
  removeDir,
  startConnector,
  startHub,
  tempDir,
  until,
} from '../helpers/hub.js';
import { connectTcp } from '../helpers/net.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(
  port: number,
  host: string,
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method, headers: { host, ...headers }, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** A raw request line (node:http would normalize the path): the status code the hub/connector answers. */
async function rawStatus(port: number, host: string, path: string): Promise<number> {
  const s = await connectTcp(port);
  return new Promise((resolve, reject) => {
    let text = '';
    s.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m) {
        s.destroy();
        resolve(Number(m[1]));
      }
    });
    s.on('error', reject);
    s.setTimeout(10_000, () => s.destroy(new Error('timed out')));
    s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  });
}

describe('sites: static webRoot, basic auth, password page', () => {
  let hub: HubProcess;
  let dir: string;
  let root: string;
  let c: ConnectorProcess;

  before(async () => {
    dir = tempDir('porthole-static-');
    root = join(dir, 'www');
    mkdirSync(join(root, 'docs'), { recursive: true });
    writeFileSync(join(root, 'index.html'), '<h1>home</h1>');
    writeFileSync(join(root, 'docs', 'index.html'), '<h1>docs</h1>');
    writeFileSync(join(root, 'style.css'), 'body{}');
    writeFileSync(join(root, 'data.bin'), Buffer.from('0123456789'));
    writeFileSync(join(dir, 'secret.txt'), 'outside the root');
    symlinkSync(join(dir, 'secret.txt'), join(root, 'escape.txt'));
    symlinkSync(join(root, 'style.css'), join(root, 'inside.css'));
    utimesSync(join(root, 'style.css'), new Date('2024-01-02T03:04:05Z'), new Date('2024-01-02T03:04:05Z'));
    hub = await startHub();
    c = await startConnector(await configureConnector(hub, 'static', dir));
    const r = await client(c, 'POST', '/traffic/create', {
      https: [
        { domain: 'www.test', webRoot: root },
        { domain: 'basic.test', webRoot: root, basicHttpAuth: hashSecret('ann:s3cret') },
        { domain: 'pw.test', webRoot: root, password: hashSecret('letmein'), authPageOpts: { title: 'Private' } },
      ],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await until(async () => (await get(hub.httpPort, 'www.test', '/')).status === 200, 'www.test routed');
  });

  after(async () => {
    await c?.stop();
    await hub?.stop();
    if (dir) removeDir(dir);
    if (hub) removeDir(hub.stateDir);
  });

  test('index.html for / and for a directory; a directory without a slash redirects', async () => {
    const home = await get(hub.httpPort, 'www.test', '/');
    assert.equal(home.body, '<h1>home</h1>');
    assert.equal(home.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal((await get(hub.httpPort, 'www.test', '/docs/')).body, '<h1>docs</h1>');
    const dirNoSlash = await get(hub.httpPort, 'www.test', '/docs');
    assert.equal(dirNoSlash.status, 301);
    assert.equal(dirNoSlash.headers.location, '/docs/');
    assert.equal((await get(hub.httpPort, 'www.test', '/missing.txt')).status, 404);
    assert.equal((await get(hub.httpPort, 'www.test', '/', {}, 'POST', 'x')).status, 405);
  });

  test('content types, ETag and Last-Modified with 304 answers', async () => {
    const css = await get(hub.httpPort, 'www.test', '/style.css');
    assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
    assert.equal(css.headers['last-modified'], 'Tue, 02 Jan 2024 03:04:05 GMT');
    const etag = String(css.headers.etag);
    assert.match(etag, /^W\/"/);
    assert.equal((await get(hub.httpPort, 'www.test', '/style.css', { 'if-none-match': etag })).status, 304);
    assert.equal(
      (await get(hub.httpPort, 'www.test', '/style.css', { 'if-modified-since': 'Tue, 02 Jan 2024 03:04:05 GMT' }))
        .status,
      304,
    );
    assert.equal((await get(hub.httpPort, 'www.test', '/style.css', { 'if-none-match': '"other"' })).status, 200);
    assert.equal(
      (await get(hub.httpPort, 'www.test', '/data.bin')).headers['content-type'],
      'application/octet-stream',
    );
  });

  test('Range: 206 with Content-Range, suffix ranges, 416 when unsatisfiable', async () => {
    const part = await get(hub.httpPort, 'www.test', '/data.bin', { range: 'bytes=2-5' });
    assert.equal(part.status, 206);
    assert.equal(part.body, '2345');
    assert.equal(part.headers['content-range'], 'bytes 2-5/10');
    assert.equal((await get(hub.httpPort, 'www.test', '/data.bin', { range: 'bytes=-3' })).body, '789');
    assert.equal((await get(hub.httpPort, 'www.test', '/data.bin', { range: 'bytes=7-' })).body, '789');
    const bad = await get(hub.httpPort, 'www.test', '/data.bin', { range: 'bytes=20-30' });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers['content-range'], 'bytes */10');
  });

  test('traversal is refused: ../, encoded %2e%2e and %2f, backslashes, a symlink out of the root', async () => {
    for (const path of [
      '/../secret.txt',
      '/docs/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/%2E%2E%2Fsecret.txt',
      '/..%2fsecret.txt',
      '/..%5csecret.txt',
      '/%00index.html',
      '/%E0%A4%A',
    ]) {
      const status = await rawStatus(hub.httpPort, 'www.test', path);
      assert.ok(status === 403 || status === 400, `${path}: ${status}`);
    }
    assert.equal((await get(hub.httpPort, 'www.test', '/escape.txt')).status, 403);
    assert.equal((await get(hub.httpPort, 'www.test', '/inside.css')).body, 'body{}');
  });

  test('basicHttpAuth: 401 with a challenge without or with wrong credentials, 200 with the right ones', async () => {
    const none = await get(hub.httpPort, 'basic.test', '/');
    assert.equal(none.status, 401);
    assert.match(String(none.headers['www-authenticate']), /^Basic realm="basic\.test"/);
    const auth = (s: string) => ({ authorization: `Basic ${Buffer.from(s).toString('base64')}` });
    assert.equal((await get(hub.httpPort, 'basic.test', '/', auth('ann:wrong'))).status, 401);
    assert.equal((await get(hub.httpPort, 'basic.test', '/', auth('bob:s3cret'))).status, 401);
    const ok = await get(hub.httpPort, 'basic.test', '/', auth('ann:s3cret'));
    assert.equal(ok.status, 200);
    assert.equal(ok.body, '<h1>home</h1>');
  });

  test('password: a login page, a wrong password refused, the right one sets a signed cookie', async () => {
    const page = await get(hub.httpPort, 'pw.test', '/docs/');
    assert.equal(page.status, 401);
    assert.match(page.body, /<title>Private<\/title>/);
    assert.match(page.body, /type="password"/);
    const form = (pw: string, back = '/docs/') =>
      get(
        hub.httpPort,
        'pw.test',
        '/.porthole/login',
        { 'content-type': 'application/x-www-form-urlencoded' },
        'POST',
        new URLSearchParams({ password: pw, back }).toString(),
      );
    const wrong = await form('nope');
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /Wrong password/);
    const right = await form('letmein');
    assert.equal(right.status, 303);
    assert.equal(right.headers.location, '/docs/');
    const cookie = String(right.headers['set-cookie']).split(';')[0] as string;
    assert.match(cookie, /^porthole_site=\d+\.[\w-]+$/);
    assert.equal((await get(hub.httpPort, 'pw.test', '/docs/', { cookie })).body, '<h1>docs</h1>');
    const forged = cookie.replace(/.$/, (ch) => (ch === 'A' ? 'B' : 'A'));
    assert.equal((await get(hub.httpPort, 'pw.test', '/docs/', { cookie: forged })).status, 401);
    assert.equal((await form('letmein', '//evil.example/')).headers.location, '/');
  });
});

import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { type MasterProcess, removeDir, startMaster } from '../helpers/master.js';

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000), redirect: 'manual' });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** node:https with the master's self-signed certificate accepted. */
function getTls(url: string): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type'] ?? '') }),
      );
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

const assetUrls = (html: string) =>
  [...html.matchAll(/(?:src|href)="(\/[^"]+\/assets\/[^"]+)"/g)].map((m) => m[1] as string);

describe('dashboard assets served by the master', () => {
  let m: MasterProcess;
  let origin: string;

  before(async () => {
    m = await startMaster();
    origin = `http://127.0.0.1:${m.port}`;
  });
  after(async () => {
    await m.stop();
    removeDir(m.stateDir);
  });

  test('/ and /api/ui serve the page: no-cache, ETag, CSP, the API base, hashed assets', async () => {
    const root = await get(`${origin}/`);
    const ui = await get(`${origin}/api/ui`);
    const uiSlash = await get(`${origin}/api/ui/`);
    for (const r of [root, ui, uiSlash]) {
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.equal(r.headers.get('cache-control'), 'no-cache');
      assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    }
    const html = root.body.toString();
    assert.equal(ui.body.toString(), html);
    assert.match(html, /<meta name="porthole-api" content="\/api\/v1">/);
    const assets = assetUrls(html);
    assert.equal(assets.filter((a) => /^\/api\/ui\/assets\/main-[A-Z0-9]+\.js$/.test(a)).length, 1, html);
    assert.equal(assets.filter((a) => /^\/api\/ui\/assets\/main-[A-Z0-9]+\.css$/.test(a)).length, 1, html);
    const etag = root.headers.get('etag') as string;
    assert.equal((await get(`${origin}/`, { 'If-None-Match': etag })).status, 304);
    assert.doesNotMatch(html, /(?:src|href)="(?:https?:)?\/\//, 'nothing loaded from elsewhere (no CDN)');
  });

  test('assets: content type, a year of immutable cache, compression, 304', async () => {
    const html = (await get(`${origin}/`)).body.toString();
    for (const path of assetUrls(html)) {
      const plain = await get(`${origin}${path}`, { 'Accept-Encoding': 'identity' });
      assert.equal(plain.status, 200, path);
      assert.equal(
        plain.headers.get('content-type'),
        path.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8',
      );
      assert.equal(plain.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      assert.equal(plain.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(plain.headers.get('content-encoding'), null);
      const gz = await fetch(`${origin}${path}`, { headers: { 'Accept-Encoding': 'gzip' } });
      // fetch decodes gzip itself; read the raw header and compare the decoded body.
      assert.equal(gz.headers.get('content-encoding'), 'gzip');
      assert.deepEqual(Buffer.from(await gz.arrayBuffer()), plain.body);
      const etag = plain.headers.get('etag') as string;
      assert.equal((await get(`${origin}${path}`, { 'If-None-Match': etag })).status, 304);
      if (path.endsWith('.js')) assert.ok(plain.body.length < 200_000, `bundle is ${plain.body.length} bytes`);
    }
  });

  test('unknown assets and path tricks are 404, never a file from elsewhere', async () => {
    for (const path of [
      '/api/ui/assets/nope.js',
      '/api/ui/assets/..%2f..%2fpackage.json',
      '/api/ui/assets/%2e%2e%2findex.html',
      '/api/ui/assets/',
      '/api/ui/index.html',
    ]) {
      const r = await get(`${origin}${path}`);
      assert.equal(r.status, 404, path);
      assert.doesNotMatch(r.body.toString(), /"name": "porthole"/);
    }
  });

  test('a master with another prefix and TLS serves the dashboard there, over https', async () => {
    const tls = await startMaster({ query: 'log=info&tls=1', prefix: '/edge' });
    try {
      const page = await getTls(`https://127.0.0.1:${tls.port}/edge/ui`);
      assert.equal(page.status, 200);
      assert.equal(page.type, 'text/html; charset=utf-8');
      assert.match(page.body, /<meta name="porthole-api" content="\/edge\/v1">/);
      assert.equal((await getTls(`https://127.0.0.1:${tls.port}/`)).body, page.body);
      assert.equal((await getTls(`https://127.0.0.1:${tls.port}/api/ui`)).status, 404);
      const [js] = assetUrls(page.body).filter((a) => a.endsWith('.js'));
      assert.ok(js);
      const asset = await getTls(`https://127.0.0.1:${tls.port}${js}`);
      assert.equal(asset.status, 200);
      assert.equal(asset.type, 'text/javascript; charset=utf-8');
    } finally {
      await tls.stop();
      removeDir(tls.stateDir);
    }
  });
});

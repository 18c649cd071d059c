import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { createSelfSignedCertificate } from '../../src/tunnel/certificates.js';
import { api, removeDir, startMaster } from '../helpers/master.js';

/** The sha256 fingerprint of the certificate the TLS listener on `port` presents. */
async function servedFingerprint(port: number): Promise<string | undefined> {
  const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'master.test' });
  await once(socket, 'secureConnect');
  const fingerprint = socket.getPeerX509Certificate()?.fingerprint256;
  socket.destroy();
  return fingerprint;
}

/** GET {prefix}/v1/info over HTTPS without verifying the certificate; resolves with the status. */
function infoStatus(port: number, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `https://127.0.0.1:${port}/api/v1/info`,
      { rejectUnauthorized: false, headers: { 'X-API-Key': key }, timeout: 10_000 },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('master: OpenAPI, Swagger UI served locally, TLS', () => {
  test('/openapi.json is OpenAPI 3.1 from the route schemas; /docs and every asset it references are local', async (t) => {
    const m = await startMaster();
    t.after(async () => {
      await m.stop();
      removeDir(m.stateDir);
    });
    const doc = await api(m, 'GET', '/openapi.json', undefined, null);
    assert.equal(doc.status, 200);
    assert.match(doc.body.openapi, /^3\.1\./);
    assert.equal(doc.body.servers[0].url, m.base);
    for (const path of ['/instances', '/instances/{id}', '/events', '/info', '/tcping', '/metrics']) {
      assert.ok(doc.body.paths[path], path);
    }
    assert.ok(doc.body.paths['/instances/{id}'].patch.requestBody);
    assert.equal((await api(`http://127.0.0.1:${m.port}/api`, 'GET', '/openapi.json')).status, 200);

    const page = await fetch(`${m.base}/docs`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /swagger-ui/i);
    const docsUrl = `${m.base}/docs/`;
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((x) => x[1] as string);
    assert.ok(refs.length >= 3, `assets: ${refs.join(', ')}`);
    const seen = new Set<string>();
    const queue = refs.map((r) => new URL(r, docsUrl).href);
    while (queue.length > 0) {
      const href = queue.shift() as string;
      if (seen.has(href)) continue;
      seen.add(href);
      assert.ok(href.startsWith(`http://127.0.0.1:${m.port}/`), `asset ${href} is served by the master`);
      const res = await fetch(href, { signal: AbortSignal.timeout(10_000) });
      assert.equal(res.status, 200, href);
      const body = await res.text();
      if (href.endsWith('/docs/json')) assert.match(JSON.parse(body).openapi, /^3\.1\./);
      if (href.endsWith('swagger-initializer.js')) {
        // The initializer points the UI at the spec, also served locally.
        const spec = /url: resolveUrl\('([^']+)'\)/.exec(body)?.[1];
        assert.ok(spec, 'spec url in the initializer');
        // resolveUrl() resolves against the page URL with a trailing slash.
        queue.push(new URL(spec, docsUrl).href);
        assert.doesNotMatch(body.replace(/https:\/\/stackoverflow\.com\S*/, ''), /https?:\/\//, 'no remote URL');
      }
    }
    // The CSP allows nothing but this origin.
    assert.doesNotMatch(page.headers.get('content-security-policy') ?? '', /https?:\/\/|validator|upgrade-insecure/);
    // {prefix}/docs leads to the same page.
    const legacy = await fetch(`http://127.0.0.1:${m.port}/api/docs`, { redirect: 'manual' });
    assert.equal(legacy.status, 302);
    // The dashboard route is there (a placeholder until the dashboard lands).
    const dash = await fetch(`http://127.0.0.1:${m.port}/`);
    assert.equal(dash.status, 200);
    assert.match(await dash.text(), /porthole master/);
  });

  test('tls=1 serves the API over HTTPS with an in-memory certificate', async (t) => {
    const m = await startMaster({ query: 'log=info&tls=1' });
    t.after(async () => {
      await m.stop();
      removeDir(m.stateDir);
    });
    assert.match(m.output(), /API: +https:\/\/127\.0\.0\.1/);
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(
        `https://127.0.0.1:${m.port}/api/v1/info`,
        { rejectUnauthorized: false, headers: { 'X-API-Key': m.key }, timeout: 10_000 },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      req.end();
    });
    const info = JSON.parse(body);
    assert.equal(info.tls, '1');
    // Server instances inherit the master's tls; the config string shows it.
    const created = await new Promise<string>((resolve, reject) => {
      const req = request(
        `https://127.0.0.1:${m.port}/api/v1/instances`,
        {
          method: 'POST',
          rejectUnauthorized: false,
          headers: { 'X-API-Key': m.key, 'Content-Type': 'application/json' },
          timeout: 10_000,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ url: 'server://127.0.0.1:1/127.0.0.1:2' }));
    });
    const inst = JSON.parse(created);
    assert.equal(inst.type, 'server');
    assert.equal(inst.url, 'server://127.0.0.1:1/127.0.0.1:2?log=info&tls=1');
    assert.match(inst.config, /tls=1/);
  });

  test('tls=2 serves the given certificate; a key that cannot be read falls back to an in-memory one, with a warning', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'porthole-master-tls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const pair = await createSelfSignedCertificate('master.test', ['master.test']);
    writeFileSync(join(dir, 'crt.pem'), pair.cert);
    writeFileSync(join(dir, 'key.pem'), pair.key);
    const expected = new X509Certificate(pair.cert).fingerprint256;

    const given = await startMaster({
      query: `log=info&tls=2&crt=${join(dir, 'crt.pem')}&key=${join(dir, 'key.pem')}`,
    });
    try {
      assert.equal(await servedFingerprint(given.port), expected);
      assert.equal(await infoStatus(given.port, given.key), 200);
      assert.doesNotMatch(given.output(), /failed to load/);
    } finally {
      await given.stop();
      removeDir(given.stateDir);
    }

    const fallback = await startMaster({
      query: `log=info&tls=2&crt=${join(dir, 'crt.pem')}&key=${join(dir, 'missing-key.pem')}`,
    });
    try {
      assert.match(fallback.output(), /missing-key\.pem failed to load .*; using tls=1/);
      const served = await servedFingerprint(fallback.port);
      assert.ok(served && served !== expected, 'an in-memory certificate, not the file one');
      assert.equal(await infoStatus(fallback.port, fallback.key), 200);
    } finally {
      await fallback.stop();
      removeDir(fallback.stateDir);
    }
  });
});

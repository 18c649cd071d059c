import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Fastify from 'fastify';
import type { App } from '../../src/master/context.js';
import { dashboardRoutes } from '../../src/master/dashboard.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'porthole-dashboard-'));
  dirs.push(dir);
  return dir;
}

function appWith(dir: string, prefix = '/api'): App {
  const app = Fastify() as unknown as App;
  dashboardRoutes(app, prefix, `${prefix}/v1`, dir);
  return app;
}

describe('dashboard static files', () => {
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('without a build, / says how to build it and names the API; no asset is served', async () => {
    const app = appWith(tempDir());
    const page = await app.inject({ url: '/' });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /npm run build/);
    assert.match(page.body, /\/api\/v1\/docs/);
    assert.equal((await app.inject({ url: '/api/ui/assets/main-X.js' })).statusCode, 404);
    await app.close();
  });

  test('the page names the prefix’s assets and API; only built files with known types are served', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'assets'));
    writeFileSync(
      join(dir, 'index.html'),
      '<meta name="porthole-api" content="__API_BASE__"><script src="__ASSETS__/main-X.js"></script>',
    );
    writeFileSync(join(dir, 'assets', 'main-X.js'), `console.log(${JSON.stringify('x'.repeat(4000))});`);
    writeFileSync(join(dir, 'assets', 'secret.env'), 'KEY=1');
    const app = appWith(dir, '/edge');
    const page = await app.inject({ url: '/edge/ui' });
    assert.equal(
      page.body,
      '<meta name="porthole-api" content="/edge/v1"><script src="/edge/ui/assets/main-X.js"></script>',
    );
    const js = await app.inject({ url: '/edge/ui/assets/main-X.js', headers: { 'accept-encoding': 'br, gzip' } });
    assert.equal(js.statusCode, 200);
    assert.equal(js.headers['content-encoding'], 'br');
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.ok(js.rawPayload.length < 200, 'compressed');
    const again = await app.inject({
      url: '/edge/ui/assets/main-X.js',
      headers: { 'if-none-match': `W/${js.headers.etag}, "other"` },
    });
    assert.equal(again.statusCode, 304);
    assert.equal((await app.inject({ url: '/edge/ui/assets/secret.env' })).statusCode, 404);
    assert.equal((await app.inject({ url: '/api/ui' })).statusCode, 404);
    await app.close();
  });
});

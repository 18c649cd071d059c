import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { launchChromium, type RunningBrowser, screenshotPath } from '../helpers/browser.js';
import { api, type MasterProcess, removeDir, startMaster, until } from '../helpers/master.js';
import { echoServer, exchange, freePort, type TestServer } from '../helpers/net.js';

/**
 * The dashboard in headless Chromium against a real master: everything a person does, through the page only.
 * The API is called directly only to check what the page did.
 */
describe('dashboard in a browser', () => {
  let m: MasterProcess;
  let echo: TestServer;
  let chromium: RunningBrowser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    // NO_COLOR off: instance log lines carry ANSI colours, which the log view must render.
    m = await startMaster({ env: { NO_COLOR: '' }, query: 'log=debug' });
    echo = await echoServer();
    chromium = await launchChromium();
    context = await chromium.browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: `http://127.0.0.1:${m.port}` });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });

  /** A test whose failure leaves a picture of the page behind, to see what it showed instead. */
  const step = (name: string, fn: () => Promise<void>) =>
    test(name, async () => {
      try {
        await fn();
      } catch (err) {
        if (page && !page.isClosed()) {
          await page.screenshot({ path: screenshotPath(`failed-${name.slice(0, 40).replace(/\W+/g, '-')}`) });
        }
        throw err;
      }
    });

  after(async () => {
    await chromium?.stop();
    await m?.stop();
    await echo?.close();
    if (m) removeDir(m.stateDir);
  });

  step('a wrong API key is refused with the master’s message, and nothing is stored', async () => {
    await page.goto(`http://127.0.0.1:${m.port}/`);
    await page.getByLabel('API key').fill('0123456789abcdef0123456789abcdef');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Unauthorized: Invalid API key' }).waitFor();
    await page.screenshot({ path: screenshotPath('01-sign-in-refused'), fullPage: true });
    assert.equal(await page.evaluate('localStorage.length + sessionStorage.length'), 0);
  });

  step('sign in, create a forwarder through the form, watch it run, move bytes, read logs, stop, delete', async () => {
    await page.getByLabel('API key').fill(m.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Instances' }).waitFor();
    await page.locator('.feed-live').waitFor();
    await page.getByText('No instances yet').waitFor();

    // The form builds the URL from fields.
    const port = await freePort();
    await page.getByRole('link', { name: 'New instance' }).click();
    await page.getByLabel('Alias').fill('web');
    await page.locator('#tunnel-host').fill('127.0.0.1');
    await page.locator('#tunnel-port').fill(String(port));
    await page.locator('#targets').fill(`127.0.0.1:${echo.port}`);
    await page.locator('#param-mode').selectOption('1');
    await page.locator('#param-read').fill('30s');
    const url = `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1&read=30s`;
    assert.equal(await page.locator('#url-preview').textContent(), url);
    await page.screenshot({ path: screenshotPath('02-new-instance-form'), fullPage: true });
    await page.getByRole('button', { name: 'Create and start' }).click();

    // The detail view; the status turns running through the event stream (no reload).
    await page.getByRole('heading', { name: /web/ }).waitFor();
    const list = (await api(m, 'GET', '/instances')).body as Array<{ id: string; alias: string; config: string }>;
    const created = list.find((i) => i.alias === 'web');
    assert.ok(created, 'the master has the instance');
    assert.match(page.url(), new RegExp(`#/i/${created.id}$`));
    await page.locator('h1 .badge.status-running').waitFor();
    // The instance reports its mode once its listener is up (its first stats report).
    await page.getByText('single-end (mode 1)').waitFor();
    assert.equal(await page.locator('#config-string').textContent(), created.config);

    // Bytes through the forwarder: counters, live rate and chart move.
    const samplesBefore = Number(await page.locator('.chart').getAttribute('data-samples'));
    const payload = Buffer.alloc(200_000, 7);
    assert.equal((await exchange(port, payload)).length, payload.length);
    await page.locator('.tcprx', { hasText: '195 KiB' }).waitFor();
    await page.locator('.tcptx', { hasText: '195 KiB' }).waitFor();
    await page.waitForFunction("Number(document.querySelector('.chart')?.getAttribute('data-peak')) > 0", undefined, {
      timeout: 15_000,
    });
    const samplesAfter = Number(await page.locator('.chart').getAttribute('data-samples'));
    assert.ok(samplesAfter > samplesBefore, `chart samples ${samplesBefore} → ${samplesAfter}`);
    assert.ok((await page.locator('.chart canvas').count()) > 0, 'uPlot drew a canvas');

    // Log lines arrive live, with colours as spans and no raw escape characters.
    await page.locator('.log-line').first().waitFor();
    const logHtml = await page.locator('.log-lines').innerHTML();
    assert.match(logHtml, /class="ansi-fg-/);
    assert.ok(!(await page.locator('.log-lines').innerText()).includes('\u001b'), 'no raw escape characters');
    const total = await page.locator('.log-line').count();
    await page.getByLabel('Search logs').fill('no line contains this');
    await page.getByText(`0 of ${total} lines`).waitFor();
    await page.getByLabel('Search logs').fill('');
    await page.screenshot({ path: screenshotPath('03-instance-detail'), fullPage: true });

    // The copy button puts the config string on the clipboard.
    await page.getByRole('button', { name: 'Copy config' }).click();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), created.config);

    // Reset counters, after confirming: the totals go back to zero.
    await page.getByRole('button', { name: 'Reset counters' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Reset' }).click();
    await page.locator('.tcprx', { hasText: /^0 B$/ }).waitFor();
    assert.equal((await api(m, 'GET', `/instances/${created.id}`)).body.tcprx, 0);
    assert.equal((await exchange(port, Buffer.alloc(3000, 1))).length, 3000);
    await page.locator('.tcprx', { hasText: '2.9 KiB' }).waitFor();

    // The list shows it with its totals.
    await page.getByRole('link', { name: 'Instances', exact: true }).click();
    const row = page.locator(`tr[data-id="${created.id}"]`);
    await row.getByText('↓ 2.9 KiB').waitFor();
    await page.screenshot({ path: screenshotPath('04-instance-list'), fullPage: true });
    await row.getByRole('link', { name: 'web' }).click();

    // Stop, after confirming.
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Open sessions end').waitFor();
    await dialog.getByRole('button', { name: 'Stop' }).click();
    await page.locator('h1 .badge.status-stopped').waitFor();
    await assert.rejects(exchange(port, Buffer.from('x')), /ECONNREFUSED/);
    assert.equal((await api(m, 'GET', `/instances/${created.id}`)).body.status, 'stopped');

    // Delete, after confirming: back to the empty list, gone from the master.
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.getByText('No instances yet').waitFor();
    assert.equal((await api(m, 'GET', `/instances/${created.id}`)).status, 404);
    assert.deepEqual(pageErrors, []);
  });

  step('an invalid field is refused by the master and the error is shown beside that field', async () => {
    const before = ((await api(m, 'GET', '/instances')).body as unknown[]).length;
    await page.goto(`http://127.0.0.1:${m.port}/#/new`);
    await page.locator('#tunnel-host').fill('127.0.0.1');
    await page.locator('#tunnel-port').fill(String(await freePort()));
    await page.locator('#targets').fill(`127.0.0.1:${echo.port}`);
    await page.locator('#param-mode').selectOption('1');
    await page.locator('#param-rate').fill('fast');
    await page.getByRole('button', { name: 'Create and start' }).click();
    const error = page.locator('#err-rate');
    await error.waitFor();
    assert.match((await error.textContent()) ?? '', /rate: invalid value "fast"/);
    assert.equal(await page.locator('#param-rate').getAttribute('aria-invalid'), 'true');
    await page.screenshot({ path: screenshotPath('05-form-field-error'), fullPage: true });
    assert.equal(((await api(m, 'GET', '/instances')).body as unknown[]).length, before, 'nothing was created');

    // Paste mode starts from the URL the fields built; the master's error shows beside the pasted URL.
    await page.getByRole('button', { name: 'Paste a URL' }).click();
    const pasted = page.getByLabel('URL', { exact: true });
    assert.match(await pasted.inputValue(), /\?mode=1&rate=fast$/);
    await page.getByRole('button', { name: 'Create and start' }).click();
    await page.locator('#err-url', { hasText: 'rate: invalid value "fast"' }).waitFor();
    await pasted.fill('client://127.0.0.1:1/a:2?bogus=1');
    await page.getByRole('button', { name: 'Create and start' }).click();
    await page.locator('#err-url', { hasText: 'unknown parameter "bogus"' }).waitFor();
    const port = await freePort();
    await pasted.fill(`client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1&slot=10`);
    await page.getByLabel('Alias').fill('pasted');
    await page.getByRole('button', { name: 'Create and start' }).click();
    await page.getByRole('heading', { name: /pasted/ }).waitFor();
    assert.match(await page.locator('#config-string').innerText(), /&slot=10&/);
  });

  step('an instance in error shows why, from its log', async () => {
    // Its listen port is taken (by the echo server): it exits with EADDRINUSE, again after every restart.
    const made = await api(m, 'POST', '/instances', {
      alias: 'clash',
      url: `client://127.0.0.1:${echo.port}/127.0.0.1:9?mode=1`,
    });
    assert.equal(made.status, 201);
    try {
      await page.goto(`http://127.0.0.1:${m.port}/#/i/${made.body.id}`);
      await page.locator('h1 .badge.status-error').waitFor();
      await page.locator('.banner', { hasText: 'EADDRINUSE' }).waitFor();
      // Coming from another instance's page, the settings are this instance's, not the last one's.
      assert.equal(await page.locator('.settings').getByLabel('Alias', { exact: true }).inputValue(), 'clash');
      await page.screenshot({ path: screenshotPath('05b-instance-in-error'), fullPage: true });
    } finally {
      await api(m, 'DELETE', `/instances/${made.body.id}`);
    }
  });

  step('master panel: figures, alias, TCP ping, key regeneration with the stream reconnecting', async () => {
    await page.goto(`http://127.0.0.1:${m.port}/#/master`);
    await page.getByText('1.14.0+porthole.').waitFor();
    await page.locator('#master-alias').fill('edge-1');
    await page.getByRole('button', { name: 'Save alias' }).click();
    await page.locator('header .brand', { hasText: 'edge-1' }).waitFor();
    assert.equal((await api(m, 'GET', '/info')).body.alias, 'edge-1');

    await page.locator('#tcping-target').fill(`127.0.0.1:${echo.port}`);
    await page.getByRole('button', { name: 'Ping' }).click();
    await page.locator('#tcping-result', { hasText: 'connected in' }).waitFor();
    await page.screenshot({ path: screenshotPath('06-master-panel'), fullPage: true });

    const oldKey = m.key;
    await page.getByRole('button', { name: 'Regenerate API key' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Regenerate' }).click();
    const newKey = (await page.locator('#new-key').textContent()) ?? '';
    assert.match(newKey, /^[0-9a-f]{32}$/);
    assert.notEqual(newKey, oldKey);
    assert.equal((await api(m, 'GET', '/info', undefined, oldKey)).status, 401);
    m.key = newKey;
    assert.equal(await page.evaluate("localStorage.getItem('porthole.apiKey')"), newKey);

    // The stream came back with the new key: an instance made elsewhere appears without a reload.
    await page.locator('.feed-live').waitFor();
    await page.getByRole('link', { name: 'Instances', exact: true }).click();
    const port = await freePort();
    const made = await api(m, 'POST', '/instances', {
      alias: 'made-elsewhere',
      url: `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1`,
    });
    assert.equal(made.status, 201);
    await page.getByRole('link', { name: 'made-elsewhere' }).waitFor();
  });

  step('when the event stream keeps failing, the page polls and stays current', async () => {
    const fresh = await context.newPage();
    try {
      await fresh.route('**/events', (route) => route.abort('connectionrefused'));
      await fresh.goto(`http://127.0.0.1:${m.port}/`);
      await fresh.locator('.feed-polling').waitFor({ timeout: 20_000 });
      const port = await freePort();
      const made = await api(m, 'POST', '/instances', {
        alias: 'seen-by-polling',
        url: `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1`,
      });
      assert.equal(made.status, 201);
      await fresh.getByRole('link', { name: 'seen-by-polling' }).waitFor({ timeout: 15_000 });
    } finally {
      await fresh.close();
    }
  });

  step('settings, tag and text filters, and editing the URL (the instance moves to the new port)', async () => {
    await page.getByRole('link', { name: 'Instances', exact: true }).click();
    await page.getByRole('link', { name: 'made-elsewhere' }).click();
    await page.getByLabel('Tags (one key=value per line)').fill('env=prod\nteam=edge');
    await page.locator('.settings').getByLabel('Alias', { exact: true }).fill('renamed');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByRole('heading', { name: /renamed/ }).waitFor();
    const list = (await api(m, 'GET', '/instances')).body as Array<{
      id: string;
      alias: string;
      meta: { tags: Record<string, string> };
    }>;
    const inst = list.find((i) => i.alias === 'renamed');
    assert.deepEqual(inst?.meta.tags, { env: 'prod', team: 'edge' });

    // A bad peer id is refused whole: the tags stay as they were.
    await page.getByLabel('Peer service id (UUID v4)').fill('not-a-uuid');
    await page.getByLabel('Tags (one key=value per line)').fill('env=dev');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.locator('.settings .error', { hasText: 'Invalid peer.sid' }).waitFor();
    const after = (await api(m, 'GET', `/instances/${inst?.id}`)).body;
    assert.deepEqual(after.meta.tags, { env: 'prod', team: 'edge' });

    await page.getByRole('link', { name: 'Instances', exact: true }).click();
    await page.getByLabel('Tag').selectOption({ label: 'env=prod' });
    await page.getByRole('link', { name: 'renamed' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'seen-by-polling' }).count(), 0);
    await page.getByLabel('Tag').selectOption({ label: 'all' });
    await page.getByLabel('Search').fill('seen-by');
    await page.getByRole('link', { name: 'seen-by-polling' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'renamed' }).count(), 0);
    await page.getByLabel('Search').fill('');

    // Edit: a new port through the form; PUT restarts it there.
    await page.getByRole('link', { name: 'renamed' }).click();
    await page.getByRole('link', { name: 'Edit' }).click();
    const port = await freePort();
    await page.locator('#tunnel-port').fill(String(port));
    await page.getByRole('button', { name: 'Save and restart' }).click();
    await page.getByRole('heading', { name: /renamed/ }).waitFor();
    await until(
      async () => (await api(m, 'GET', `/instances/${inst?.id}`)).body.url.includes(`:${port}/`),
      10_000,
      'PUT',
    );
    await page.getByText('single-end (mode 1)').waitFor();
    await until(
      async () => (await exchange(port, Buffer.from('moved')).catch(() => Buffer.alloc(0))).toString() === 'moved',
      10_000,
      'the instance answers on its new port',
    );
  });

  step('phone width: the list and an instance are readable without sideways scrolling', async () => {
    const phone = await chromium.browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    try {
      const p = await phone.newPage();
      await p.goto(`http://127.0.0.1:${m.port}/api/ui`);
      await p.getByLabel('API key').fill(m.key);
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.getByRole('link', { name: 'renamed' }).waitFor();
      const overflow = Number(await p.evaluate('document.documentElement.scrollWidth - window.innerWidth'));
      assert.ok(overflow <= 1, `page is ${overflow}px wider than the screen`);
      await p.screenshot({ path: screenshotPath('07-phone-list'), fullPage: true });
      await p.getByRole('link', { name: 'renamed' }).click();
      await p.locator('h1 .badge').waitFor();
      const overflow2 = Number(await p.evaluate('document.documentElement.scrollWidth - window.innerWidth'));
      assert.ok(overflow2 <= 1, `detail is ${overflow2}px wider than the screen`);
      await p.screenshot({ path: screenshotPath('08-phone-detail'), fullPage: true });
    } finally {
      await phone.close();
    }
  });

  step('a key regenerated elsewhere signs the page out with a clear message', async () => {
    await page.goto(`http://127.0.0.1:${m.port}/`);
    await page.locator('.feed-live').waitFor();
    const regenerated = await api(m, 'PATCH', '/instances/********', { action: 'restart' });
    assert.equal(regenerated.status, 200);
    m.key = regenerated.body.url;
    await page
      .getByRole('alert')
      .filter({ hasText: /Signed out: .*Invalid API key/ })
      .waitFor();
    assert.equal(await page.evaluate("localStorage.getItem('porthole.apiKey')"), null);
    await page.getByLabel('API key').fill(m.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('.feed-live').waitFor();
  });

  step('over the master’s TLS (tls=1): sign in and get the live stream', async () => {
    const tls = await startMaster({ query: 'log=info&tls=1' });
    const secure = await chromium.browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const p = await secure.newPage();
      await p.goto(`https://127.0.0.1:${tls.port}/api/ui`);
      await p.getByLabel('API key').fill(tls.key);
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.locator('.feed-live').waitFor();
      await p.getByText('No instances yet').waitFor();
    } finally {
      await secure.close();
      await tls.stop();
      removeDir(tls.stateDir);
    }
  });
});

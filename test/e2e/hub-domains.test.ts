import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  admin,
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
import { runPorthole } from '../helpers/porthole.js';

interface Origin {
  server: Server;
  port: number;
}

/** An origin that answers with its name, to tell which tunnel a domain reached. */
async function origin(name: string): Promise<Origin> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(name) });
    res.end(name);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** GET / through the hub's HTTP listener: status and body. */
function get(hub: HubProcess, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: hub.httpPort, path: '/', headers: { host }, agent: false, timeout: 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET http://${host}/ timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function site(domain: string, o: Origin) {
  return { https: [{ domain, destination: '127.0.0.1', port: o.port }] };
}

async function reservations(hub: HubProcess): Promise<Array<{ domain: string; tunID: string; online: boolean }>> {
  const r = await admin(hub, 'GET', '/domain/list');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.domains;
}

function tunnelIdOf(configPath: string): string {
  return JSON.parse(readFileSync(configPath, 'utf8')).tunnelId;
}

/** tunnel/info's `https`: the tunnel's domains as the hub sees them. */
async function siteStates(hub: HubProcess, configPath: string): Promise<Array<Record<string, string>>> {
  const r = await admin(hub, 'GET', `/tunnel/info/${tunnelIdOf(configPath)}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.tunnel.https;
}

describe('domain ownership at the hub', { timeout: 120_000 }, () => {
  let hub: HubProcess;
  let dir = '';
  let originA: Origin;
  let originB: Origin;
  let a: ConnectorProcess | undefined;
  let b: ConnectorProcess | undefined;
  let configA = '';
  let configB = '';

  before(async () => {
    dir = tempDir('porthole-domains-');
    [originA, originB] = await Promise.all([origin('A'), origin('B')]);
    hub = await startHub();
    configA = await configureConnector(hub, 'owner-a', dir);
    configB = await configureConnector(hub, 'rival-b', dir);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await hub?.stop();
    originA?.server.close();
    originB?.server.close();
    removeDir(dir);
    if (hub) removeDir(hub.stateDir);
  });

  test('a claimed domain stays reserved while its tunnel is offline: another tunnel is refused, nothing routes', async () => {
    a = await startConnector(configA);
    assert.equal((await client(a, 'POST', '/traffic/create', site('own.test', originA))).status, 200);
    await until(async () => (await get(hub, 'own.test')).body === 'A', 'own.test served by A');
    assert.deepEqual(
      (await reservations(hub)).map((d) => [d.domain, d.tunID, d.online]),
      [['own.test', tunnelIdOf(configA), true]],
    );

    await a.stop();
    a = undefined;
    await until(async () => (await get(hub, 'own.test')).status === 404, 'own.test unrouted');
    b = await startConnector(configB);
    assert.equal((await client(b, 'POST', '/traffic/create', site('own.test', originB))).status, 200);
    await b.waitFor(
      /site own\.test refused by the hub: domain own\.test is reserved for another tunnel \([0-9a-f]{16}, offline\)/,
      10_000,
    );
    assert.equal((await get(hub, 'own.test')).status, 404, 'B did not take it');
    assert.deepEqual(
      (await reservations(hub)).map((d) => [d.domain, d.tunID, d.online]),
      [['own.test', tunnelIdOf(configA), false]],
    );
    // The admin sees both sides: reserved for offline A, refused (with the reason) for B.
    assert.deepEqual(await siteStates(hub, configA), [{ domain: 'own.test', state: 'reserved' }]);
    const [refused] = await siteStates(hub, configB);
    assert.equal(refused?.state, 'refused');
    assert.match(String(refused?.error), /reserved for another tunnel/);
    const config = (await admin(hub, 'GET', `/tunnel/config/${tunnelIdOf(configB)}`)).body;
    assert.deepEqual(
      config.https.map((h: { domain: string }) => h.domain),
      ['own.test'],
    );
  });

  test('the reservation survives a hub restart; the owner gets its domain back on reconnect', async () => {
    await hub.stop();
    hub = await startHub({ stateDir: hub.stateDir, tunnelPort: hub.tunnelPort, range: hub.range });
    assert.ok(b);
    // B reconnects and claims its sites again after the welcome: still refused.
    await until(
      async () => (await client(b as ConnectorProcess, 'GET', '/info')).body.isTunConnected,
      'B reconnected',
      20_000,
    );
    await until(
      () => (b?.output().match(/site own\.test refused by the hub/g) ?? []).length >= 2,
      'B refused again after the restart',
    );
    assert.equal((await reservations(hub))[0]?.tunID, tunnelIdOf(configA));
    a = await startConnector(configA);
    await until(async () => (await get(hub, 'own.test')).body === 'A', 'own.test served by A again');
    assert.equal((await reservations(hub))[0]?.online, true);
  });

  test('admin release: refused while the owner serves it, then hands it to the tunnel that was refused it', async () => {
    const busy = await admin(hub, 'POST', '/domain/release', { domain: 'own.test' });
    assert.equal(busy.status, 409);
    assert.match(busy.body.error, /online/);
    assert.equal((await admin(hub, 'POST', '/domain/release', { domain: 'nobody.test' })).status, 404);
    assert.equal((await admin(hub, 'POST', '/domain/release', {})).status, 400);
    assert.equal((await admin(hub, 'POST', '/domain/release', { domain: 7 })).status, 400);
    assert.equal((await reservations(hub)).length, 1, 'bad requests changed nothing');

    await a?.stop();
    a = undefined;
    const released = await admin(hub, 'POST', '/domain/release', { domain: 'OWN.test.' });
    assert.equal(released.status, 200, JSON.stringify(released.body));
    assert.equal(released.body.tunID, tunnelIdOf(configA));
    // B claimed it before and was refused: the release hands it over at once, with no site change on B.
    assert.ok(b);
    await until(async () => (await get(hub, 'own.test')).body === 'B', 'own.test served by B');
    assert.deepEqual(await siteStates(hub, configB), [{ domain: 'own.test', state: 'routed' }]);
    await b.waitFor(/site own\.test: the hub routes it to this tunnel now/, 5000);
    assert.equal((await reservations(hub))[0]?.tunID, tunnelIdOf(configB));
    // The admin cannot push the domain to A now: B owns it.
    const push = await admin(
      hub,
      'POST',
      `/tunnel/traffic/http/update/${tunnelIdOf(configA)}`,
      site('own.test', originA),
    );
    assert.equal(push.status, 409);
    assert.match(push.body.error, /own\.test is served by another tunnel/);
  });

  test('removing the site from its tunnel frees the domain', async () => {
    assert.ok(b);
    assert.equal((await client(b, 'POST', '/traffic/delete', { https: [{ domain: 'own.test' }] })).status, 200);
    await until(async () => (await reservations(hub)).length === 0, 'own.test no longer reserved');
  });

  test('a token restricted to *.allowed.test: matching domains are claimed, others refused with a clear error', async () => {
    const bad = await admin(hub, 'POST', '/token/registration/create', { description: 'x', domains: ['bad pattern!'] });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /bad pattern!/);
    const tokensBefore = (await admin(hub, 'GET', '/token/registration/list')).body.tokens.length;
    const created = await admin(hub, 'POST', '/token/registration/create', {
      description: 'customer C',
      domains: ['*.Allowed.test'],
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.deepEqual(created.body.token.domains, ['*.allowed.test']);
    assert.equal((await admin(hub, 'GET', '/token/registration/list')).body.tokens.length, tokensBefore + 1);

    const configC = join(dir, 'restricted-c.json');
    const r = await runPorthole([
      'connector',
      'configure',
      '--config',
      configC,
      '--hub',
      hub.address,
      '--token',
      created.body.token.token,
      '--name',
      'restricted-c',
    ]);
    assert.equal(r.code, 0, r.output);
    const c = await startConnector(configC);
    try {
      const ok = await client(c, 'POST', '/traffic/create', {
        https: [
          { domain: 'shop.allowed.test', destination: '127.0.0.1', port: originA.port },
          { domain: 'evil.test', destination: '127.0.0.1', port: originA.port },
          { domain: 'allowed.test', destination: '127.0.0.1', port: originA.port },
        ],
      });
      assert.equal(ok.status, 200);
      await c.waitFor(
        /site evil\.test refused by the hub: domain evil\.test is not allowed by this tunnel's registration token \(allowed: \*\.allowed\.test\)/,
        10_000,
      );
      await c.waitFor(/site allowed\.test refused by the hub: .*not allowed/, 10_000);
      await until(async () => (await get(hub, 'shop.allowed.test')).body === 'A', 'shop.allowed.test served');
      assert.equal((await get(hub, 'evil.test')).status, 404);
      assert.deepEqual(
        (await reservations(hub)).map((d) => d.domain),
        ['shop.allowed.test'],
      );

      const tunC = tunnelIdOf(configC);
      const pushed = await admin(hub, 'POST', `/tunnel/traffic/http/update/${tunC}`, site('other.test', originA));
      assert.equal(pushed.status, 403);
      assert.match(pushed.body.error, /not allowed by this tunnel's registration token/);

      // Lifting the restriction (domains: []) lets the next claim through.
      const tokenID = created.body.token.id;
      assert.equal((await admin(hub, 'POST', '/token/registration/edit', { tokenID, domains: ['*.'] })).status, 400);
      const edited = await admin(hub, 'POST', '/token/registration/edit', { tokenID, domains: [] });
      assert.equal(edited.status, 200);
      assert.equal(edited.body.token.domains, undefined);
      assert.equal(
        (
          await client(c, 'POST', '/traffic/update', {
            https: [{ domain: 'evil.test', destination: '127.0.0.1', port: originB.port }],
          })
        ).status,
        200,
      );
      await until(async () => (await get(hub, 'evil.test')).body === 'B', 'evil.test served once allowed');
    } finally {
      await c.stop();
    }
  });
});

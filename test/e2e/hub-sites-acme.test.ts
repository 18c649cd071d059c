import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { createSelfSignedCertificate } from '../../src/tunnel/certificates.js';
import {
  admin,
  type ConnectorProcess,
  client,
  configureConnector,
  type HubProcess,
  removeDir,
  runConfigure,
  startConnector,
  startHub,
  tempDir,
  until,
} from '../helpers/hub.js';
import { freePort } from '../helpers/net.js';
import { type Pebble, pebbleMissing, startPebble } from '../helpers/pebble.js';

const missing = pebbleMissing();
if (missing) console.log(`# Let's Encrypt tests skipped: ${missing}`);

interface Served {
  authorized: boolean;
  authorizationError: string | undefined;
  cert: X509Certificate;
  body: string;
}

/** GET / over the hub's HTTPS listener with `domain` as SNI; verifies against `ca` when given (never rejects on it). */
function fetchOverHub(hub: HubProcess, domain: string, ca?: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: hub.httpsPort,
      servername: domain,
      rejectUnauthorized: false,
      ...(ca ? { ca } : {}),
    });
    const timer = setTimeout(() => socket.destroy(new Error(`GET https://${domain}/ timed out`)), 15_000);
    let text = '';
    let peer: X509Certificate | undefined;
    let authorized = false;
    let authorizationError: string | undefined;
    socket.once('secureConnect', () => {
      // Read now: after close the socket no longer has them.
      peer = socket.getPeerX509Certificate();
      authorized = socket.authorized;
      authorizationError = socket.authorizationError ? String(socket.authorizationError) : undefined;
      // No half-close: the server ends the connection after its answer (Connection: close).
      socket.write(`GET / HTTP/1.1\r\nHost: ${domain}\r\nConnection: close\r\n\r\n`);
    });
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => {
      text += c;
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (!peer) return reject(new Error(`no certificate from https://${domain}/; got ${JSON.stringify(text)}`));
      resolve({
        authorized,
        authorizationError,
        cert: peer,
        body: text.split('\r\n\r\n').slice(1).join('\r\n\r\n'),
      });
    });
  });
}

/** The status of a plain HTTP GET through the hub's HTTP listener. */
function httpStatus(hub: HubProcess, host: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: hub.httpPort, path, headers: { host }, agent: false, timeout: 10_000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET http://${host}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

describe("Let's Encrypt certificates (useLetsEnc) through the hub", { timeout: 120_000 }, () => {
  let hub: HubProcess;
  let origin: Server;
  let originPort = 0;
  let dir = '';

  before(async () => {
    dir = tempDir('porthole-acme-');
    origin = createServer((req, res) => {
      const body = `origin saw ${req.url}`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originPort = (origin.address() as { port: number }).port;
    hub = await startHub();
  });

  after(async () => {
    await hub?.stop();
    origin?.close();
    origin?.closeAllConnections();
    removeDir(dir);
  });

  /** A connector with one secure useLetsEnc site proxied to the origin, trusting pebble's directory. */
  async function connectorFor(
    pebble: Pick<Pebble, 'directory' | 'trustFile'>,
    name: string,
    domain: string,
    extra: Record<string, unknown> = {},
  ): Promise<{ config: string; env: Record<string, string> }> {
    const config = await configureConnector(hub, name, dir);
    const data = JSON.parse(readFileSync(config, 'utf8'));
    data.https = [{ domain, secure: true, useLetsEnc: true, destination: '127.0.0.1', port: originPort, ...extra }];
    data.acme = { email: 'ops@porthole.test' };
    writeFileSync(config, JSON.stringify(data, null, 2));
    const env: Record<string, string> = { PORTHOLE_ACME_DIRECTORY: pebble.directory };
    if (pebble.trustFile) env.NODE_EXTRA_CA_CERTS = pebble.trustFile;
    return { config, env };
  }

  describe('issuance, cache and renewal (pebble)', { skip: missing }, () => {
    const domain = `le-${randomBytes(4).toString('hex')}.porthole.test`;
    let pebble: Pebble;
    let connector: ConnectorProcess | undefined;
    let setup: { config: string; env: Record<string, string> };
    let first: X509Certificate;
    let orders = 0;

    before(async () => {
      // 36 s certificates: renewal (at two thirds) comes 24 s after issuance, after the restart test, within this suite.
      pebble = await startPebble({ httpPort: hub.httpPort, dir: join(dir, 'issue'), validity: 36 });
      // redirect: the challenge must be answered before the HTTP→HTTPS redirect would turn the CA away.
      setup = await connectorFor(pebble, 'le', domain, { redirect: true });
    });

    after(async () => {
      await connector?.stop();
      await pebble?.stop();
    });

    test('says it serves self-signed meanwhile, then serves the certificate pebble issued after an HTTP-01 challenge through the tunnel', async () => {
      connector = await startConnector(setup.config, undefined, setup.env);
      await connector.waitFor(
        /requesting a certificate from https:\/\/127\.0\.0\.1:\d+\/dir; serving a self-signed/,
        10_000,
      );
      await connector.waitFor(/obtained the Let's Encrypt certificate/, 40_000);
      assert.match(connector.output(), /answered the ACME HTTP-01 challenge/);
      const [root, intermediate] = await Promise.all([pebble.root(), pebble.intermediate()]);
      const served = await fetchOverHub(hub, domain, root);
      assert.equal(served.authorized, true, `verification against pebble's root: ${served.authorizationError}`);
      assert.equal(served.cert.checkHost(domain), domain);
      assert.equal(served.cert.publicKey.asymmetricKeyType, 'ec', 'an ECDSA key');
      assert.ok(served.cert.checkIssued(new X509Certificate(intermediate)), "issued by pebble's intermediate");
      assert.equal(served.body, 'origin saw /');
      assert.equal(await httpStatus(hub, domain, '/'), 301, 'plain HTTP redirects');
      assert.equal(
        await httpStatus(hub, domain, '/.well-known/acme-challenge/not-ours'),
        301,
        'a token the connector did not ask for goes on to the site',
      );
      first = served.cert;
      const health = (await client(connector, 'GET', '/health')).body.services[0];
      assert.equal(health.certificate.source, 'letsencrypt');
      assert.equal(health.certificate.state, 'valid');
      assert.equal(new Date(health.certificate.notAfter).getTime(), new Date(first.validTo).getTime());
      assert.ok(new Date(health.certificate.next) < new Date(health.certificate.notAfter), 'renewal before expiry');
      orders = pebble.orders();
      assert.equal(orders, 1);

      // Cached beside the config: account key and certificate key readable by the owner only.
      const acmeDir = join(dir, 'acme');
      const store = readdirSync(acmeDir)[0] ?? '';
      assert.ok(store.startsWith('127.0.0.1_'), `ACME store dir ${store}`);
      assert.equal(modeOf(join(acmeDir, store, 'account.key')), 0o600);
      assert.equal(modeOf(join(acmeDir, store, 'certs', `${domain}.key`)), 0o600);
      assert.equal(
        new X509Certificate(readFileSync(join(acmeDir, store, 'certs', `${domain}.crt`))).serialNumber,
        first.serialNumber,
      );
    });

    test('a restarted connector serves the cached certificate without a new order', async () => {
      assert.ok(connector, 'the first test started the connector');
      await connector.stop();
      connector = await startConnector(setup.config, undefined, setup.env);
      await connector.waitFor(/using the cached Let's Encrypt certificate/, 10_000);
      const served = await fetchOverHub(hub, domain, await pebble.root());
      assert.equal(served.authorized, true, String(served.authorizationError));
      assert.equal(served.cert.serialNumber, first.serialNumber);
      assert.equal(pebble.orders(), orders, 'no new order');
      assert.doesNotMatch(connector.output(), /self-signed/);
    });

    test('renews before expiry and serves the new certificate on the running listener', async () => {
      assert.ok(connector);
      await connector.waitFor(/renewed the Let's Encrypt certificate/, 45_000);
      const served = await fetchOverHub(hub, domain, await pebble.root());
      assert.equal(served.authorized, true, String(served.authorizationError));
      assert.notEqual(served.cert.serialNumber, first.serialNumber);
      assert.ok(new Date(served.cert.validTo) > new Date(first.validTo));
      assert.equal(pebble.orders(), orders + 1);
      assert.equal(served.body, 'origin saw /');
    });
  });

  test(
    'a failed challenge is logged, retried later, and the site keeps serving self-signed',
    { skip: missing },
    async () => {
      // The CA's validation requests go to a port where nothing listens: the challenge fails.
      const pebble = await startPebble({ httpPort: await freePort(), dir: join(dir, 'fail') });
      let connector: ConnectorProcess | undefined;
      try {
        const domain = `fail-${randomBytes(4).toString('hex')}.porthole.test`;
        const setup = await connectorFor(pebble, 'fail', domain);
        connector = await startConnector(setup.config, undefined, setup.env);
        const line = await connector.waitFor(/Let's Encrypt certificate not obtained \(attempt 1\).*/, 40_000);
        assert.match(line, /still serving a self-signed certificate, retrying in \d+s/);
        const health = (await client(connector, 'GET', '/health')).body.services[0];
        assert.equal(health.certificate.state, 'failed');
        assert.match(health.certificate.error, /certificate for fail-/);
        assert.ok(new Date(health.certificate.next).getTime() > Date.now(), 'a retry is scheduled');
        const served = await fetchOverHub(hub, domain);
        assert.equal(served.cert.subject, served.cert.issuer, 'self-signed');
        assert.equal(served.cert.checkHost(domain), domain);
        assert.equal(served.body, 'origin saw /');
        assert.equal(connector.proc.exitCode, null, 'the connector is still running');
      } finally {
        await connector?.stop();
        await pebble.stop();
      }
    },
  );

  test('an unreachable ACME directory is logged and the site keeps serving self-signed', async () => {
    const closed = await freePort();
    const domain = `nodir-${randomBytes(4).toString('hex')}.porthole.test`;
    const setup = await connectorFor({ directory: `https://127.0.0.1:${closed}/dir`, trustFile: '' }, 'nodir', domain);
    const connector = await startConnector(setup.config, undefined, setup.env);
    try {
      const line = await connector.waitFor(/Let's Encrypt certificate not obtained \(attempt 1\).*/, 40_000);
      assert.match(line, new RegExp(`127\\.0\\.0\\.1:${closed}.*ECONNREFUSED`));
      const served = await fetchOverHub(hub, domain);
      assert.equal(served.cert.subject, served.cert.issuer, 'self-signed');
      assert.equal(served.body, 'origin saw /');
      assert.equal((await client(connector, 'GET', '/info')).body.isTunConnected, true);
    } finally {
      await connector.stop();
    }
  });

  test('a domain the hub refuses (another tunnel owns it) gets no certificate order', async () => {
    const domain = `taken-${randomBytes(4).toString('hex')}.porthole.test`;
    const owner = await startConnector(await configureConnector(hub, 'owner', dir));
    let rival: ConnectorProcess | undefined;
    try {
      const created = await client(owner, 'POST', '/traffic/create', {
        https: [{ domain, destination: '127.0.0.1', port: originPort }],
      });
      assert.equal(created.status, 200);
      await until(async () => (await httpStatus(hub, domain, '/')) === 200, 'the owner serves the domain');
      const closed = await freePort();
      const setup = await connectorFor(
        { directory: `https://127.0.0.1:${closed}/dir`, trustFile: '' },
        'rival',
        domain,
      );
      rival = await startConnector(setup.config, undefined, setup.env);
      await rival.waitFor(/no Let's Encrypt certificate ordered: the hub does not route the domain/, 10_000);
      // The order would have started 2 s after the claim: give it well past that.
      await new Promise((r) => setTimeout(r, 4000));
      assert.doesNotMatch(rival.output(), /ACME: new account key|not obtained/);
      const health = (await client(rival, 'GET', '/health')).body.services[0];
      assert.equal(health.certificate.state, 'refused');
    } finally {
      await rival?.stop();
      await owner.stop();
    }
  });

  test('configure keeps --acme-email/--acme-directory; bad values are refused before registering', async () => {
    const path = join(dir, 'flags.json');
    const bad = await runConfigure(hub, path, '--acme-email', 'nobody');
    assert.notEqual(bad.code, 0);
    assert.match(bad.output, /--acme-email: expected an e-mail address, got "nobody"/);
    const badDir = await runConfigure(hub, path, '--acme-directory', 'ftp://x');
    assert.match(badDir.output, /--acme-directory: expected an https:\/\/ URL/);
    assert.equal(existsSync(path), false, 'nothing registered or saved');
    const tunnelsBefore = (await admin(hub, 'GET', '/tunnel/list')).body.tunnels.length;
    const ok = await runConfigure(
      hub,
      path,
      '--acme-email',
      'ops@example.test',
      '--acme-directory',
      'https://acme.example.test/dir',
    );
    assert.equal(ok.code, 0, ok.output);
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')).acme, {
      directoryUrl: 'https://acme.example.test/dir',
      email: 'ops@example.test',
    });
    assert.equal((await admin(hub, 'GET', '/tunnel/list')).body.tunnels.length, tunnelsBefore + 1);
  });

  test('health names where each secure site certificate comes from', async () => {
    const pair = await createSelfSignedCertificate('files.test', ['files.test']);
    const config = await configureConnector(hub, 'sources', dir);
    const data = JSON.parse(readFileSync(config, 'utf8'));
    const upstream = { destination: '127.0.0.1', port: originPort };
    data.https = [
      { domain: 'files.test', secure: true, ca: pair.cert, privateKey: pair.key, ...upstream },
      { domain: 'self.test', secure: true, ...upstream },
      { domain: 'plain.test', ...upstream },
      { domain: 'pass.test', secure: true, destination: '127.0.0.1', tls: originPort },
    ];
    writeFileSync(config, JSON.stringify(data, null, 2));
    const connector = await startConnector(config);
    try {
      const services = (await client(connector, 'GET', '/health')).body.services;
      const byDomain = Object.fromEntries(services.map((s: { domain: string }) => [s.domain, s]));
      assert.deepEqual(byDomain['files.test'].certificate, { source: 'files' });
      assert.deepEqual(byDomain['self.test'].certificate, { source: 'self-signed' });
      assert.equal(byDomain['plain.test'].certificate, undefined);
      assert.equal(byDomain['pass.test'].certificate, undefined, 'TLS passed through: not ours');
    } finally {
      await connector.stop();
    }
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Agent, createServer, type IncomingMessage, request, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer as createTlsServer, type Server as TlsServer, connect as tlsConnect } from 'node:tls';
import { createSelfSignedCertificate } from '../../src/tunnel/certificates.js';
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
import { connectTcp, readBytes } from '../helpers/net.js';

const BIG = 64 * 1024 * 1024;
const CHUNK = 1024 * 1024;

/** The 64 MiB body: 64 distinct 1 MiB chunks, derived so the origin never holds it whole. */
function bigChunk(i: number): Buffer {
  const seed = createHash('sha256').update(`chunk-${i}`).digest();
  const out = Buffer.allocUnsafe(CHUNK);
  for (let at = 0; at < CHUNK; at += seed.length) seed.copy(out, at);
  out[0] = i;
  return out;
}

function bigSha(): string {
  const h = createHash('sha256');
  for (let i = 0; i < BIG / CHUNK; i++) h.update(bigChunk(i));
  return h.digest('hex');
}

interface Origin {
  server: Server;
  port: number;
  name: string;
}

/** An HTTP origin: /headers answers the request's headers as JSON, /big 64 MiB, POST /echo the body, upgrades echo. */
async function startOrigin(name: string): Promise<Origin> {
  const server = createServer((req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-length': BIG, 'content-type': 'application/octet-stream' });
      let i = 0;
      const pump = () => {
        while (i < BIG / CHUNK) {
          if (!res.write(bigChunk(i++))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    if (req.url === '/echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res);
      return;
    }
    const body = JSON.stringify({ origin: name, url: req.url, headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json', 'x-origin': name });
    res.end(body);
  });
  server.on('upgrade', (req: IncomingMessage, socket) => {
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade}\r\nConnection: Upgrade\r\nX-Seen-Host: ${req.headers.host}\r\n\r\n`,
    );
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, name };
}

interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
  localPort: number;
}

function get(
  port: number,
  host: string,
  path: string,
  options: { agent?: Agent; method?: string; body?: Buffer; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        headers: { host, ...options.headers },
        agent: options.agent ?? false,
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
            localPort: res.socket?.localPort ?? 0,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${host}${path} timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** One HTTP/1.1 request over TLS to the hub's HTTPS listener with `servername` as SNI. */
function getTls(
  port: number,
  servername: string,
  path: string,
): Promise<{ text: string; fingerprint: string; subject: string }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const cert = s.getPeerCertificate();
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () =>
        resolve({
          text: Buffer.concat(chunks).toString('utf8'),
          fingerprint: `sha256:${cert.fingerprint256}`,
          subject: String(cert.subject?.CN),
        }),
      );
    });
    s.setTimeout(15_000, () => s.destroy(new Error('TLS request timed out')));
    s.on('error', reject);
  });
}

describe('hub + connectors: HTTP and HTTPS sites', () => {
  let hub: HubProcess;
  let dir: string;
  let a: ConnectorProcess;
  let b: ConnectorProcess;
  let originA: Origin;
  let originB: Origin;
  let tlsOrigin: TlsServer;
  let tlsOriginPort: number;
  let siteCert: { cert: string; key: string; fingerprint: string };
  let originCert: { cert: string; key: string; fingerprint: string };

  before(async () => {
    dir = tempDir('porthole-sites-');
    hub = await startHub();
    originA = await startOrigin('A');
    originB = await startOrigin('B');
    siteCert = await createSelfSignedCertificate('b.test', ['b.test']);
    originCert = await createSelfSignedCertificate('pass.test', ['pass.test']);
    tlsOrigin = createTlsServer({ cert: originCert.cert, key: originCert.key }, (s) => {
      s.on('error', () => {});
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\npassthrough'));
    });
    tlsOrigin.listen(0, '127.0.0.1');
    await once(tlsOrigin, 'listening');
    tlsOriginPort = (tlsOrigin.address() as { port: number }).port;
    writeFileSync(join(dir, 'b.crt'), siteCert.cert);
    a = await startConnector(await configureConnector(hub, 'alpha', dir));
    b = await startConnector(await configureConnector(hub, 'beta', dir));
    const ra = await client(a, 'POST', '/traffic/create', {
      https: [
        { domain: 'a.test', destination: '127.0.0.1', port: originA.port, secure: true },
        { domain: 'rewrite.test', destination: '127.0.0.1', port: originA.port, rewriteHost: 'internal.example' },
        {
          domain: 'walled.test',
          destination: '127.0.0.1',
          port: originA.port,
          firewall: [{ sequence: 1, action: 'drop', network: '127.0.0.0/8' }],
        },
        { domain: 'redirect.test', destination: '127.0.0.1', port: originA.port, redirect: true },
        { domain: 'moved.test', redirectURL: 'https://elsewhere.example/new' },
        { domain: 'pass.test', destination: '127.0.0.1', tls: tlsOriginPort },
      ],
    });
    assert.equal(ra.status, 200, JSON.stringify(ra.body));
    const rb = await client(b, 'POST', '/traffic/create', {
      https: [
        {
          domain: 'b.test',
          upstreamURL: `http://127.0.0.1:${originB.port}`,
          secure: true,
          ca: join(dir, 'b.crt'),
          privateKey: Buffer.from(siteCert.key).toString('base64'),
        },
      ],
    });
    assert.equal(rb.status, 200, JSON.stringify(rb.body));
    await until(async () => (await get(hub.httpPort, 'b.test', '/')).status === 200, 'b.test routed');
    await until(async () => (await get(hub.httpPort, 'a.test', '/')).status === 200, 'a.test routed');
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await hub?.stop();
    originA?.server.close();
    originB?.server.close();
    tlsOrigin?.close();
    if (dir) removeDir(dir);
    if (hub) removeDir(hub.stateDir);
  });

  test('the hub listens for HTTP and HTTPS on the configured ports', () => {
    assert.ok(hub.httpPort > 0, hub.output());
    assert.ok(hub.httpsPort > 0, hub.output());
  });

  test('Host routes to the connector serving the domain; an unknown host gets a 404 page', async () => {
    const ra = await get(hub.httpPort, 'a.test', '/x');
    assert.equal(JSON.parse(ra.body.toString()).origin, 'A');
    const rb = await get(hub.httpPort, 'B.TEST:80', '/y');
    assert.equal(JSON.parse(rb.body.toString()).origin, 'B');
    const unknown = await get(hub.httpPort, 'nobody.test', '/');
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.toString(), /No site nobody\.test/);
    assert.match(String(unknown.headers['content-type']), /text\/html/);
  });

  test('garbage, a request without Host and an oversized head get 400/431 from the hub; it keeps serving', async () => {
    const answer = async (bytes: string) => {
      const s = await connectTcp(hub.httpPort);
      s.on('error', () => {});
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.write(bytes);
      await Promise.race([once(s, 'close'), new Promise((r) => setTimeout(r, 10_000))]);
      s.destroy();
      return Buffer.concat(chunks).toString('latin1');
    };
    assert.match(await answer('\x16\x03\x01garbage\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await answer('GET / HTTP/1.1\r\nX: y\r\n\r\n'), /^HTTP\/1\.1 400 [\s\S]*no Host header/);
    assert.match(await answer(`GET / HTTP/1.1\r\nHost: a.test\r\nX: ${'y'.repeat(20_000)}`), /^HTTP\/1\.1 431 /);
    assert.equal((await get(hub.httpPort, 'a.test', '/')).status, 200);
  });

  test('X-Forwarded-For/-Proto/-Host carry the client; Host passes unchanged without rewriteHost', async () => {
    const r = await get(hub.httpPort, 'a.test', '/h', { headers: { 'x-forwarded-for': '203.0.113.9' } });
    const seen = JSON.parse(r.body.toString()).headers;
    assert.equal(seen['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], 'a.test');
    assert.equal(seen.host, 'a.test');
  });

  test('rewriteHost is the Host the upstream sees', async () => {
    const seen = JSON.parse((await get(hub.httpPort, 'rewrite.test', '/')).body.toString()).headers;
    assert.equal(seen.host, 'internal.example');
    assert.equal(seen['x-forwarded-host'], 'rewrite.test');
  });

  test('keep-alive: sequential requests reuse one client connection', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const ports = new Set<number>();
      for (let i = 0; i < 10; i++) {
        const r = await get(hub.httpPort, 'a.test', `/k${i}`, { agent });
        assert.equal(r.status, 200);
        assert.equal(JSON.parse(r.body.toString()).url, `/k${i}`);
        ports.add(r.localPort);
      }
      assert.equal(ports.size, 1);
    } finally {
      agent.destroy();
    }
  });

  test('100 concurrent requests all answer with their own response', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 100 });
    try {
      const replies = await Promise.all(
        Array.from({ length: 100 }, (_, i) => get(hub.httpPort, i % 2 ? 'a.test' : 'b.test', `/c${i}`, { agent })),
      );
      replies.forEach((r, i) => {
        const body = JSON.parse(r.body.toString());
        assert.equal(body.url, `/c${i}`);
        assert.equal(body.origin, i % 2 ? 'A' : 'B');
      });
    } finally {
      agent.destroy();
    }
  });

  test('a 64 MiB download arrives sha256-equal; a 4 MiB upload streams back intact', async () => {
    const r = await get(hub.httpPort, 'a.test', '/big');
    assert.equal(r.status, 200);
    assert.equal(r.body.length, BIG);
    assert.equal(createHash('sha256').update(r.body).digest('hex'), bigSha());
    const up = Buffer.alloc(4 * 1024 * 1024, 7);
    const e = await get(hub.httpPort, 'b.test', '/echo', { method: 'POST', body: up });
    assert.ok(e.body.equals(up));
  });

  test('a WebSocket upgrade passes through and echoes', async () => {
    const req = request({
      host: '127.0.0.1',
      port: hub.httpPort,
      path: '/ws',
      headers: {
        host: 'rewrite.test',
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    });
    req.end();
    const [res, socket] = (await once(req, 'upgrade')) as [IncomingMessage, import('node:net').Socket];
    assert.equal(res.statusCode, 101);
    assert.equal(res.headers['x-seen-host'], 'internal.example');
    const payload = Buffer.from('ping through the tunnel');
    socket.write(payload);
    assert.ok((await readBytes(socket, payload.length, 10_000)).equals(payload));
    socket.destroy();
  });

  test('a domain another tunnel serves is refused with a clear error; the owner keeps it', async () => {
    const r = await client(b, 'POST', '/traffic/create', {
      https: [{ domain: 'a.test', destination: '127.0.0.1', port: originB.port }],
    });
    assert.equal(r.status, 200);
    await b.waitFor(/site a\.test refused by the hub: domain a\.test is served by another tunnel/, 10_000);
    assert.equal(JSON.parse((await get(hub.httpPort, 'a.test', '/')).body.toString()).origin, 'A');
    assert.equal((await client(b, 'POST', '/traffic/delete', { https: [{ domain: 'a.test' }] })).status, 200);
  });

  test('a site firewall drops the client before any byte reaches the connector', async () => {
    await assert.rejects(get(hub.httpPort, 'walled.test', '/'), /ECONNRESET|socket hang up/);
    assert.equal((await get(hub.httpPort, 'a.test', '/')).status, 200);
  });

  test('redirect answers 301 to https, redirectURL 302 to its URL', async () => {
    const r = await get(hub.httpPort, 'redirect.test', '/p?q=1');
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, 'https://redirect.test/p?q=1');
    const m = await get(hub.httpPort, 'moved.test', '/');
    assert.equal(m.status, 302);
    assert.equal(m.headers.location, 'https://elsewhere.example/new');
  });

  test('HTTPS: SNI routes to the right connector, which terminates TLS with the site certificate', async () => {
    const rb = await getTls(hub.httpsPort, 'b.test', '/tls');
    assert.equal(rb.fingerprint, siteCert.fingerprint);
    assert.match(rb.text, /^HTTP\/1\.1 200/);
    assert.match(rb.text, /"origin":"B"/);
    assert.match(rb.text, /"x-forwarded-proto":"https"/);
    const ra = await getTls(hub.httpsPort, 'a.test', '/tls');
    assert.match(ra.text, /"origin":"A"/);
    assert.equal(ra.subject, 'a.test'); // self-signed, made by connector alpha
    await a.waitFor(/site a\.test: no ca\/privateKey: serving a self-signed certificate/, 5000);
  });

  test('HTTPS: tls pass-through reaches the destination with its own certificate', async () => {
    const r = await getTls(hub.httpsPort, 'pass.test', '/');
    assert.equal(r.fingerprint, originCert.fingerprint);
    assert.match(r.text, /passthrough$/);
  });

  test('HTTPS: an unknown SNI name or a non-TLS client is closed', async () => {
    await assert.rejects(getTls(hub.httpsPort, 'nobody.test', '/'));
    const s = await connectTcp(hub.httpsPort);
    s.on('error', () => {});
    s.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
    const got = await readBytes(s, 1, 5000).catch(() => Buffer.alloc(0));
    assert.equal(got.length, 0);
    s.destroy();
  });

  test('the hub never holds a site private key: not in its state directory, not in its output', () => {
    const keyBody = siteCert.key.split('\n').slice(1, -2).join('');
    const walk = (d: string): string[] =>
      readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
    for (const file of walk(hub.stateDir)) {
      const text = readFileSync(file, 'utf8').replace(/\s/g, '');
      assert.ok(!text.includes(keyBody.slice(0, 60)), `${file} holds the site key`);
      assert.ok(!text.includes(Buffer.from(siteCert.key).toString('base64').slice(0, 60)), file);
    }
    assert.ok(!hub.output().includes(keyBody.slice(0, 60)));
  });

  test("hub admin http/update and http/remove change the connector's sites live and in its config", async () => {
    const tunnelId = JSON.parse(readFileSync(a.configPath, 'utf8')).tunnelId;
    const up = await admin(hub, 'POST', `/tunnel/traffic/http/update/${tunnelId}`, {
      https: [{ domain: 'admin.test', destination: '127.0.0.1', port: originB.port }],
    });
    assert.equal(up.status, 200, JSON.stringify(up.body));
    await until(async () => (await get(hub.httpPort, 'admin.test', '/')).status === 200, 'admin.test routed');
    assert.equal(JSON.parse((await get(hub.httpPort, 'admin.test', '/')).body.toString()).origin, 'B');
    assert.match(readFileSync(a.configPath, 'utf8'), /admin\.test/);
    const info = await admin(hub, 'GET', `/tunnel/info/${tunnelId}`);
    assert.ok(JSON.stringify(info.body).includes('admin.test'), JSON.stringify(info.body));
    const rm = await admin(hub, 'POST', `/tunnel/traffic/http/remove/${tunnelId}`, { domains: ['admin.test'] });
    assert.equal(rm.status, 200);
    // The hub's own 404 page (HTML), not the connector's answer for a site it no longer has.
    await until(async () => {
      const r = await get(hub.httpPort, 'admin.test', '/');
      return r.status === 404 && /No site admin\.test on this hub/.test(r.body.toString());
    }, 'admin.test unrouted at the hub');
    assert.doesNotMatch(readFileSync(a.configPath, 'utf8'), /admin\.test/);
    assert.equal((await get(hub.httpPort, 'a.test', '/')).status, 200);
  });

  test('sites stop routing when their connector goes offline and come back with it', async () => {
    await b.stop();
    await until(async () => (await get(hub.httpPort, 'b.test', '/')).status === 404, 'b.test unrouted');
    b = await startConnector(b.configPath, b.apiPort);
    await until(async () => (await get(hub.httpPort, 'b.test', '/')).status === 200, 'b.test routed again');
  });
});

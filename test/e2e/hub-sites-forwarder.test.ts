import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { createSelfSignedCertificate } from '../../src/tunnel/certificates.js';
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
import { connectTcp, freePort, sleep, type TestServer, tcpServer } from '../helpers/net.js';

/**
 * The connector's forwarder (src/connector/site-forwarder.ts), which serves plain proxy sites: heads rewritten, bytes
 * passed through, responses paired with requests. Raw sockets against a real hub and connector, so every byte the
 * client sends and gets is the test's own.
 */

interface Origin {
  server: Server;
  port: number;
  /** Requests the origin has seen, in order: "METHOD url". */
  seen: string[];
  /** TCP connections the origin has accepted. */
  connections: () => number;
}

/**
 * An origin with no 'upgrade' listener (node:http then answers upgrade requests as plain requests, i.e. declines):
 * /headers answers the raw headers as JSON, /digest the body's length and sha256, /truncate promises 100 bytes and
 * sends 10.
 */
async function startOrigin(): Promise<Origin> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.url === '/truncate') {
      res.writeHead(200, { 'content-length': 100 });
      res.write('0123456789');
      setTimeout(() => res.destroy(), 50);
      return;
    }
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      length += c.length;
    });
    req.on('end', () => {
      const body =
        req.url === '/digest'
          ? JSON.stringify({ length, sha256: hash.digest('hex'), trailers: req.trailers })
          : JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 30_000;
  let connections = 0;
  server.on('connection', () => connections++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, seen, connections: () => connections };
}

interface RawResponse {
  status: number;
  head: string;
  body: Buffer;
}

/**
 * Reads whole responses off a raw socket as they arrive (Content-Length bodies; none for HEAD, 1xx, 204, 304).
 * `methods` says which request each response answers, so HEAD responses are read without a body.
 */
class ResponseReader {
  private buffered = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, c]);
      this.wake?.();
    });
    const onEnd = () => {
      this.ended = true;
      this.wake?.();
    };
    // The test's sockets allow half-open: the peer's FIN ('end') is its close.
    socket.on('end', onEnd);
    socket.on('close', onEnd);
  }

  async next(method = 'GET', timeoutMs = 10_000): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.buffered.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = this.buffered.toString('latin1', 0, end);
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]);
        const length =
          method === 'HEAD' || status < 200 || status === 204 || status === 304
            ? 0
            : Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (this.buffered.length >= end + 4 + length) {
          const body = this.buffered.subarray(end + 4, end + 4 + length);
          this.buffered = this.buffered.subarray(end + 4 + length);
          return { status, head, body };
        }
      }
      if (this.ended) throw new Error(`connection closed; unread: ${JSON.stringify(this.buffered.toString())}`);
      if (Date.now() > deadline) throw new Error(`no whole response within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  }

  /** Resolves once the peer has closed, with the bytes nobody read. */
  async closed(timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('the connection stayed open');
      await sleep(20);
    }
    return this.buffered;
  }
}

function headers(r: RawResponse): Array<[string, string]> {
  const raw = (JSON.parse(r.body.toString()) as { rawHeaders: string[] }).rawHeaders;
  const out: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i] as string, raw[i + 1] as string]);
  return out;
}

/**
 * A hand-written upstream for what node:http would never send: by request path, two responses to one request, a 101
 * nobody asked for, Content-Length with Transfer-Encoding, an answer saying whether our FIN came first, or nothing
 * at all (counting the request heads it gets).
 */
async function startRawOrigin(): Promise<TestServer & { heads: () => number }> {
  let heads = 0;
  const server = await tcpServer((s) => {
    s.on('error', () => {});
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      for (let end = text.indexOf('\r\n\r\n'); end >= 0; end = text.indexOf('\r\n\r\n')) {
        const path = / (\S+) HTTP/.exec(text.slice(0, end))?.[1] ?? '';
        text = text.slice(end + 4);
        heads++;
        if (path === '/two')
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL');
        else if (path === '/switch') s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nraw bytes');
        else if (path === '/both')
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
        else if (path === '/fin-check') {
          setTimeout(() => {
            const body = s.readableEnded ? 'ended' : 'open';
            s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
          }, 300);
        }
      }
    });
  });
  return Object.assign(server, { heads: () => heads });
}

describe('hub + connector: the site forwarder (plain proxy sites)', () => {
  let hub: HubProcess;
  let dir: string;
  let connector: ConnectorProcess;
  let origin: Origin;
  let garbage: TestServer;
  let httpsOrigin: Server;
  let closing: TestServer;
  let raw: TestServer & { heads: () => number };

  const open = async (): Promise<{ socket: Socket; responses: ResponseReader }> => {
    const socket = await connectTcp(hub.httpPort);
    socket.on('error', () => {});
    return { socket, responses: new ResponseReader(socket) };
  };

  before(async () => {
    dir = tempDir('porthole-forwarder-');
    hub = await startHub();
    origin = await startOrigin();
    garbage = await tcpServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.write('SSH-2.0-NotHttp\r\n\r\n'));
    });
    // An HTTPS upstream with a self-signed certificate, answering the path and Host it saw.
    const cert = await createSelfSignedCertificate('internal.example', ['internal.example']);
    httpsOrigin = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => {
      res.end(
        JSON.stringify({
          url: req.url,
          host: req.headers.host,
          servername: (req.socket as { servername?: string }).servername,
        }),
      );
    });
    httpsOrigin.listen(0, '127.0.0.1');
    await once(httpsOrigin, 'listening');
    const httpsPort = (httpsOrigin.address() as { port: number }).port;
    // Answers a connection's first request, then closes it at the second without an answer: an upstream whose
    // keep-alive timeout fired as a request arrived; a request with "crash" in it gets no answer at all.
    closing = await tcpServer((s) => {
      s.on('error', () => {});
      let requests = 0;
      s.on('data', (d: Buffer) => {
        requests++;
        if (requests === 1 && !d.includes('crash')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        else s.destroy();
      });
    });
    raw = await startRawOrigin();
    connector = await startConnector(await configureConnector(hub, 'forwarder', dir));
    const closedPort = await freePort();
    const r = await client(connector, 'POST', '/traffic/create', {
      https: [
        { domain: 'fwd.test', destination: '127.0.0.1', port: origin.port },
        { domain: 'change.test', destination: '127.0.0.1', port: origin.port },
        { domain: 'down.test', destination: '127.0.0.1', port: closedPort },
        { domain: 'garbage.test', destination: '127.0.0.1', port: garbage.port },
        { domain: 'closing.test', destination: '127.0.0.1', port: closing.port },
        { domain: 'raw.test', destination: '127.0.0.1', port: raw.port },
        { domain: 'redirect.test', destination: '127.0.0.1', port: origin.port, redirect: true },
        { domain: 'secure.test', destination: '127.0.0.1', port: origin.port, secure: true },
        { domain: 'secure-down.test', destination: '127.0.0.1', port: closedPort, secure: true },
        {
          domain: 'tls-up.test',
          upstreamURL: `https://127.0.0.1:${httpsPort}/base`,
          insecureUpstream: true,
          rewriteHost: 'internal.example',
        },
        { domain: 'tls-strict.test', upstreamURL: `https://127.0.0.1:${httpsPort}/` },
      ],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await until(async () => {
      const { socket, responses } = await open();
      socket.write('GET /headers HTTP/1.1\r\nHost: change.test\r\n\r\n');
      const ok = (await responses.next().catch(() => ({ status: 0 }))).status === 200;
      socket.destroy();
      return ok;
    }, 'sites routed');
  });

  after(async () => {
    await connector?.stop();
    await hub?.stop();
    origin?.server.close();
    httpsOrigin?.close();
    await garbage?.close();
    await closing?.close();
    await raw?.close();
    if (dir) removeDir(dir);
    if (hub) removeDir(hub.stateDir);
  });

  test('heads are rewritten: X-Forwarded-* set, hop fields dropped, everything else passes as sent', async () => {
    const { socket, responses } = await open();
    socket.write(
      'GET /headers HTTP/1.1\r\nHost: fwd.test\r\nX-Custom-Case: kept\r\nConnection: keep-alive, X-Secret\r\n' +
        'X-Secret: hidden\r\nProxy-Authorization: Basic eDp5\r\nX-Forwarded-For: 203.0.113.9\r\n' +
        'X-Forwarded-Proto: gopher\r\nX-Forwarded-Host: spoofed.example\r\nX_Forwarded_For: 198.51.100.1\r\n' +
        'Forwarded: for=198.51.100.2\r\nX-Real-IP: 198.51.100.3\r\n\r\n',
    );
    const fields = headers(await responses.next());
    const value = (name: string) => fields.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
    // Names keep their case: node:http (the full proxy) would have lower-cased them.
    assert.ok(
      fields.some(([n, v]) => n === 'X-Custom-Case' && v === 'kept'),
      JSON.stringify(fields),
    );
    assert.deepEqual(value('x-secret'), []);
    assert.deepEqual(value('proxy-authorization'), []);
    assert.deepEqual(value('connection'), ['keep-alive']);
    assert.deepEqual(value('x-forwarded-for'), ['203.0.113.9, 127.0.0.1']);
    assert.deepEqual(value('x-forwarded-proto'), ['http']);
    assert.deepEqual(value('x-forwarded-host'), ['fwd.test']);
    // The client's own forwarding fields, in any spelling, do not pass for ours.
    assert.deepEqual(value('x_forwarded_for'), []);
    assert.deepEqual(value('forwarded'), []);
    assert.deepEqual(value('x-real-ip'), []);
    socket.destroy();
  });

  test('pipelined GET, HEAD and POST on one connection are answered in order', async () => {
    const { socket, responses } = await open();
    socket.write(
      'GET /headers?n=1 HTTP/1.1\r\nHost: fwd.test\r\n\r\n' +
        'HEAD /headers?n=2 HTTP/1.1\r\nHost: fwd.test\r\n\r\n' +
        'POST /digest HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 5\r\n\r\nhello' +
        'GET /headers?n=4 HTTP/1.1\r\nHost: fwd.test\r\n\r\n',
    );
    const first = await responses.next();
    assert.equal(JSON.parse(first.body.toString()).url, '/headers?n=1');
    const second = await responses.next('HEAD');
    assert.equal(second.status, 200);
    assert.equal(second.body.length, 0);
    const third = JSON.parse((await responses.next()).body.toString());
    assert.equal(third.length, 5);
    assert.equal(third.sha256, createHash('sha256').update('hello').digest('hex'));
    assert.equal(JSON.parse((await responses.next()).body.toString()).url, '/headers?n=4');
    socket.destroy();
  });

  test('a chunked upload sent in odd pieces, with a trailer, reaches the upstream whole', async () => {
    const payload = Buffer.alloc(300_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) % 251;
    let wire = 'POST /digest HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n';
    const parts: Buffer[] = [Buffer.from(wire)];
    for (let at = 0, size = 1; at < payload.length; at += size, size = (size * 3 + 1) % 40_000 || 1) {
      const piece = payload.subarray(at, at + size);
      parts.push(Buffer.from(`${piece.length.toString(16)};ext=1\r\n`), piece, Buffer.from('\r\n'));
    }
    parts.push(Buffer.from('0\r\nX-Sum: done\r\n\r\n'));
    wire = '';
    const all = Buffer.concat(parts);
    const { socket, responses } = await open();
    // Odd write sizes so that size lines, data and CRLFs straddle reads.
    for (let at = 0, step = 1; at < all.length; at += step, step = (step * 5 + 3) % 9000 || 7) {
      socket.write(all.subarray(at, at + step));
      if (step % 3 === 0) await sleep(1);
    }
    const r = JSON.parse((await responses.next()).body.toString());
    assert.equal(r.length, payload.length);
    assert.equal(r.sha256, createHash('sha256').update(payload).digest('hex'));
    assert.deepEqual(r.trailers, { 'x-sum': 'done' });
    socket.destroy();
  });

  test('ambiguous requests get 400 after the responses before them and never reach the upstream', async () => {
    const shapes = [
      'POST /smuggle HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'POST /smuggle HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde',
      'POST /smuggle HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: gzip\r\n\r\n',
      'GET /smuggle HTTP/1.1\r\nHost: fwd.test\r\nX-Fold: a\r\n b\r\n\r\n',
      'GET /smuggle HTTP/1.1\r\nHost: fwd.test\r\nHost: other.test\r\n\r\n',
      // Connection may not make a proxy drop the length: the upstream would read the body as a request.
      'POST /smuggle HTTP/1.1\r\nHost: fwd.test\r\nConnection: Content-Length\r\nContent-Length: 28\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n',
      'POST /smuggle HTTP/1.1\r\nHost: fwd.test\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ];
    for (const shape of shapes) {
      const { socket, responses } = await open();
      socket.write(`GET /headers?before HTTP/1.1\r\nHost: fwd.test\r\n\r\n${shape}`);
      assert.equal((await responses.next()).status, 200, shape);
      const refused = await responses.next();
      assert.equal(refused.status, 400, shape);
      assert.match(refused.head, /\r\nConnection: close/i);
      await responses.closed();
    }
    assert.equal(origin.seen.filter((s) => s.includes('/smuggle')).length, 0, origin.seen.join('\n'));
  });

  test('a chunked body with a bad chunk is cut off: the connection closes, nothing after it is forwarded', async () => {
    const { socket, responses } = await open();
    socket.write(
      'POST /digest HTTP/1.1\r\nHost: fwd.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n' +
        'GET /smuggle-after-chunk HTTP/1.1\r\nHost: fwd.test\r\n\r\n',
    );
    await responses.closed();
    assert.equal(origin.seen.filter((s) => s.includes('/smuggle-after-chunk')).length, 0);
  });

  test('a declined upgrade returns the connection to HTTP: the next request is still rewritten', async () => {
    const { socket, responses } = await open();
    socket.write(
      'GET /headers?upgrade HTTP/1.1\r\nHost: fwd.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n' +
        'GET /headers?after HTTP/1.1\r\nHost: fwd.test\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n',
    );
    const declined = await responses.next();
    assert.equal(declined.status, 200);
    const after = await responses.next();
    const fields = headers(after);
    assert.equal(JSON.parse(after.body.toString()).url, '/headers?after');
    assert.deepEqual(
      fields.filter(([n]) => n.toLowerCase() === 'x-forwarded-for').map(([, v]) => v),
      ['198.51.100.7, 127.0.0.1'],
    );
    socket.destroy();
  });

  test('Expect: 100-continue gets the interim answer before the body is sent, then the final one', async () => {
    const { socket, responses } = await open();
    socket.write('POST /digest HTTP/1.1\r\nHost: fwd.test\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n');
    assert.equal((await responses.next()).status, 100);
    socket.write('abc');
    assert.equal(JSON.parse((await responses.next()).body.toString()).length, 3);
    socket.destroy();
  });

  test('a client that half-closes after its request still gets the whole response', async () => {
    const { socket, responses } = await open();
    socket.end('GET /headers?half HTTP/1.1\r\nHost: fwd.test\r\n\r\n');
    assert.equal(JSON.parse((await responses.next()).body.toString()).url, '/headers?half');
    await responses.closed();
  });

  test('an upstream that is down or speaks garbage answers 502; one that cuts a response off closes the client', async () => {
    for (const host of ['down.test', 'garbage.test']) {
      const { responses, socket } = await open();
      socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      assert.equal((await responses.next()).status, 502, host);
      await responses.closed();
    }
    const { socket, responses } = await open();
    socket.write('GET /truncate HTTP/1.1\r\nHost: fwd.test\r\n\r\n');
    const rest = await responses.closed();
    assert.match(rest.toString(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n0123456789$/);
  });

  test('an upstream that closes a reused connection under a request closes the client too, with no 502', async () => {
    const { socket, responses } = await open();
    socket.write('GET /one HTTP/1.1\r\nHost: closing.test\r\n\r\n');
    assert.equal((await responses.next()).body.toString(), 'ok');
    socket.write('GET /two HTTP/1.1\r\nHost: closing.test\r\n\r\n');
    // As if the client had talked to the upstream itself: closed without an answer, so it retries elsewhere.
    assert.equal((await responses.closed()).length, 0);
    const crash = await open();
    crash.socket.write('GET /crash HTTP/1.1\r\nHost: closing.test\r\n\r\n');
    assert.equal((await crash.responses.next()).status, 502);
  });

  test('an https upstreamURL: its path prefixes requests, rewriteHost is Host and SNI; an untrusted certificate is a 502', async () => {
    const { socket, responses } = await open();
    socket.write('GET /page?q=1 HTTP/1.1\r\nHost: tls-up.test\r\n\r\n');
    const seen = JSON.parse((await responses.next()).body.toString());
    assert.deepEqual(seen, { url: '/base/page?q=1', host: 'internal.example', servername: 'internal.example' });
    socket.destroy();
    const strict = await open();
    strict.socket.write('GET / HTTP/1.1\r\nHost: tls-strict.test\r\n\r\n');
    assert.equal((await strict.responses.next()).status, 502);
    strict.socket.destroy();
  });

  test('a later request on a connection may not name another site: 421, on the forwarder and on node:http', async () => {
    const fwd = await open();
    fwd.socket.write(
      'GET /headers HTTP/1.1\r\nHost: fwd.test\r\n\r\nGET /headers?other HTTP/1.1\r\nHost: change.test\r\n\r\n',
    );
    assert.equal((await fwd.responses.next()).status, 200);
    assert.equal((await fwd.responses.next()).status, 421);
    await fwd.responses.closed();
    // redirect.test is served by node:http (it redirects plain HTTP): the same rule there.
    const full = await open();
    full.socket.write(
      'GET / HTTP/1.1\r\nHost: redirect.test\r\n\r\nGET /headers?other HTTP/1.1\r\nHost: fwd.test:80\r\n\r\n',
    );
    assert.equal((await full.responses.next()).status, 301);
    assert.equal((await full.responses.next()).status, 421);
    full.socket.destroy();
    assert.equal(origin.seen.filter((r) => r.includes('?other')).length, 0);
  });

  test('requests that are not a path are refused; an absolute-form target becomes a path', async () => {
    const { socket, responses } = await open();
    socket.write(
      'GET http://fwd.test?q=1 HTTP/1.1\r\nHost: fwd.test\r\n\r\nGET admin HTTP/1.1\r\nHost: fwd.test\r\n\r\n',
    );
    assert.equal(JSON.parse((await responses.next()).body.toString()).url, '/?q=1');
    assert.equal((await responses.next()).status, 400);
    await responses.closed();
  });

  test('at most 64 requests are in flight on one connection, however many arrive at once', async () => {
    const { socket } = await open();
    const before = raw.heads();
    socket.write('GET /sink HTTP/1.1\r\nHost: raw.test\r\n\r\n'.repeat(200));
    await until(() => raw.heads() - before >= 64, 'the first 64 requests upstream');
    await sleep(300);
    assert.equal(raw.heads() - before, 64);
    socket.destroy();
  });

  test('a misbehaving upstream: extra responses are dropped, a 101 nobody asked for and Content-Length with chunked are 502s', async () => {
    const two = await open();
    two.socket.write('GET /two HTTP/1.1\r\nHost: raw.test\r\n\r\n');
    assert.equal((await two.responses.next()).body.toString(), 'ok');
    assert.equal((await two.responses.closed()).length, 0, 'the unsolicited response is not passed on');
    for (const path of ['/switch', '/both']) {
      const { socket, responses } = await open();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: raw.test\r\n\r\n`);
      assert.equal((await responses.next()).status, 502, path);
      assert.equal((await responses.closed()).length, 0, path);
    }
  });

  test("the client's FIN reaches the upstream only after the answer (as node:http does)", async () => {
    const { socket, responses } = await open();
    socket.end('GET /fin-check HTTP/1.1\r\nHost: raw.test\r\n\r\n');
    assert.equal((await responses.next()).body.toString(), 'open');
    await responses.closed();
  });

  test('HTTPS sites: no upstream connection before a request; an upstream that is down still answers 502', async () => {
    const tlsOpen = async (servername: string) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: hub.httpsPort, servername, rejectUnauthorized: false });
      socket.on('error', () => {});
      await once(socket, 'secureConnect');
      return { socket, responses: new ResponseReader(socket as unknown as Socket) };
    };
    const before = origin.connections();
    const idle = await tlsOpen('secure.test');
    await sleep(500);
    assert.equal(origin.connections(), before, 'a connection with no request opened none upstream');
    idle.socket.write('GET /headers HTTP/1.1\r\nHost: secure.test\r\n\r\n');
    assert.equal(JSON.parse((await idle.responses.next()).body.toString()).url, '/headers');
    idle.socket.destroy();
    const down = await tlsOpen('secure-down.test');
    await sleep(300); // the old eager connect had failed by now and closed the client without an answer
    down.socket.write('GET / HTTP/1.1\r\nHost: secure-down.test\r\n\r\n');
    assert.equal((await down.responses.next()).status, 502);
    down.socket.destroy();
  });

  /** Replaces change.test's settings at the connector. */
  const changeSite = async (settings: Record<string, unknown>) => {
    const r = await client(connector, 'POST', '/traffic/update', { https: [{ domain: 'change.test', ...settings }] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };

  /** A connection with one request to change.test answered (on the forwarder while change.test is a plain proxy). */
  const openChangeSite = async () => {
    const opened = await open();
    opened.socket.write('GET /headers?first HTTP/1.1\r\nHost: change.test\r\n\r\n');
    assert.equal((await opened.responses.next()).status, 200);
    return opened;
  };

  test('a site that stops being a plain proxy applies to connections already open, between their requests', async () => {
    const { socket, responses } = await openChangeSite();
    await changeSite({ redirectURL: 'https://moved.example/' });
    socket.write('GET /headers?second HTTP/1.1\r\nHost: change.test\r\n\r\n');
    const moved = await responses.next();
    assert.equal(moved.status, 302);
    assert.match(moved.head, /\r\nlocation: https:\/\/moved\.example\//i);
    assert.equal(origin.seen.filter((s) => s.includes('/headers?second')).length, 0);
    socket.destroy();
  });

  test('a connection handed to node:http after the client half-closed still gets its answer', async () => {
    await changeSite({ destination: '127.0.0.1', port: origin.port });
    const { socket, responses } = await openChangeSite();
    await changeSite({ redirectURL: 'https://moved.example/' });
    socket.end('GET /headers?after-fin HTTP/1.1\r\nHost: change.test\r\n\r\n');
    assert.equal((await responses.next()).status, 302);
    await responses.closed();
  });
});

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
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

const BODY = 1024 * 1024;
/** Generous room for request and response heads and TLS framing, small beside the bodies. */
const SLACK = 64 * 1024;

/** GET through the hub's HTTP listener (Connection: close); resolves with the body length. */
function getPlain(hub: HubProcess, host: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: hub.httpPort, path, headers: { host }, agent: false, timeout: 15_000 },
      (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
        });
        res.on('end', () => resolve(n));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET http://${host}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Writes `text` once connected and resolves with every byte received until the peer closes. */
function writeAndCollect(socket: Socket, connected: 'connect' | 'secureConnect', text: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => socket.destroy(new Error(`no close within 15 s`)), 15_000);
    const chunks: Buffer[] = [];
    socket.once(connected, () => socket.write(text));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** Raw TLS through the hub's HTTPS listener: sends `text`, resolves with every byte received until close. */
function overTls(hub: HubProcess, servername: string, text: string): Promise<Buffer> {
  const socket = tlsConnect({ host: '127.0.0.1', port: hub.httpsPort, servername, rejectUnauthorized: false });
  return writeAndCollect(socket, 'secureConnect', text);
}

describe('site traffic is counted at the connector and in the hub bandwidth', { timeout: 90_000 }, () => {
  let hub: HubProcess;
  let origin: Server;
  let tlsOrigin: TlsServer;
  let connector: ConnectorProcess | undefined;
  let dir = '';
  let tunnelId = '';

  before(async () => {
    dir = tempDir('porthole-site-traffic-');
    const big = Buffer.alloc(BODY, 'x');
    origin = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': BODY });
      res.end(big);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const pair = await createSelfSignedCertificate('pass.test', ['pass.test']);
    // The pass-through origin holds the certificate and answers BODY bytes, then closes.
    tlsOrigin = createTlsServer({ cert: pair.cert, key: pair.key }, (s) => {
      s.on('error', () => {});
      s.once('data', () => s.end(big));
    });
    await new Promise<void>((r) => tlsOrigin.listen(0, '127.0.0.1', r));
    hub = await startHub();
    const config = await configureConnector(hub, 'counted', dir);
    const data = JSON.parse(readFileSync(config, 'utf8'));
    const port = (origin.address() as { port: number }).port;
    data.https = [
      { domain: 'plain.test', destination: '127.0.0.1', port },
      { domain: 'secure.test', secure: true, destination: '127.0.0.1', port },
      { domain: 'pass.test', destination: '127.0.0.1', tls: (tlsOrigin.address() as { port: number }).port },
    ];
    writeFileSync(config, JSON.stringify(data, null, 2));
    tunnelId = data.tunnelId;
    connector = await startConnector(config);
    await until(async () => (await getPlain(hub, 'plain.test', '/').catch(() => 0)) === BODY, 'plain.test routed');
    // A connection counts its bytes when it closes, which may come a little after its response (the client's FIN).
    await until(
      async () => (await client(connector as ConnectorProcess, 'GET', '/info')).body.traffic.bytesOut >= BODY,
      'the routing probe counted',
    );
  });

  after(async () => {
    await connector?.stop();
    await hub?.stop();
    origin?.close();
    origin?.closeAllConnections();
    tlsOrigin?.close();
    removeDir(dir);
    if (hub) removeDir(hub.stateDir);
  });

  test('HTTP, TLS-terminated and TLS pass-through site streams add to the stream and byte counters', async () => {
    assert.ok(connector);
    const start = (await client(connector, 'GET', '/info')).body.traffic;
    assert.equal(start.httpStreams, 1, 'the routing probe');
    const hubStart = (await admin(hub, 'GET', `/tunnel/info/${tunnelId}`)).body.tunnel.bandwidth.daily;
    assert.ok(hubStart >= BODY, `the hub counted the probe: ${hubStart}`);

    assert.equal(await getPlain(hub, 'plain.test', '/big'), BODY);
    const https = await overTls(hub, 'secure.test', 'GET / HTTP/1.1\r\nHost: secure.test\r\nConnection: close\r\n\r\n');
    assert.ok(https.length > BODY, `HTTPS answer ${https.length} bytes`);
    assert.equal((await overTls(hub, 'pass.test', 'hello')).length, BODY);

    // Terminated connections count when they close; wait for the three to be in.
    let traffic = start;
    await until(async () => {
      traffic = (await client(connector as ConnectorProcess, 'GET', '/info')).body.traffic;
      return traffic.httpStreams === start.httpStreams + 3;
    }, 'three more site streams counted');
    const out = traffic.bytesOut - start.bytesOut;
    assert.ok(out >= 3 * BODY && out < 3 * BODY + SLACK, `connector bytesOut +${out}`);
    const inn = traffic.bytesIn - start.bytesIn;
    assert.ok(inn > 0 && inn < SLACK, `connector bytesIn +${inn} (three requests)`);
    assert.equal(traffic.tcpStreams, 0);

    const hubNow = (await admin(hub, 'GET', `/tunnel/info/${tunnelId}`)).body.tunnel.bandwidth.daily;
    const added = hubNow - hubStart;
    // Both directions on the wire, TLS framing and the routing heads included.
    assert.ok(added >= 3 * BODY && added < 3 * BODY + SLACK, `hub bandwidth +${added}`);
  });

  test('the hub counts every byte of a site connection, the request head it routed by included', async () => {
    const before = (await admin(hub, 'GET', `/tunnel/info/${tunnelId}`)).body.tunnel.bandwidth.daily;
    const head = 'GET /exact HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n';
    const answer = await writeAndCollect(netConnect({ host: '127.0.0.1', port: hub.httpPort }), 'connect', head);
    assert.ok(answer.length > BODY);
    const expected = before + Buffer.byteLength(head) + answer.length;
    await until(
      async () => (await admin(hub, 'GET', `/tunnel/info/${tunnelId}`)).body.tunnel.bandwidth.daily === expected,
      `hub bandwidth to reach exactly ${expected}`,
      5000,
    );
  });
});

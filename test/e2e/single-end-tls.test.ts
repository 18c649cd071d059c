import assert from 'node:assert/strict';
import { randomBytes, type X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { createSelfSignedCertificate } from '../../src/tunnel/certificates.js';
import { echoServer, freePort, sha256 } from '../helpers/net.js';
import { withForwarder } from '../helpers/porthole.js';

function tlsExchange(
  port: number,
  payload: Buffer,
  options: { ca?: string; servername?: string },
): Promise<{ reply: Buffer; protocol: string | null; peer: X509Certificate | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      ...(options.ca ? { ca: options.ca, servername: options.servername } : { rejectUnauthorized: false }),
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('error', reject);
    let protocol: string | null = null;
    let peer: X509Certificate | undefined;
    socket.once('secureConnect', () => {
      protocol = socket.getProtocol();
      peer = socket.getPeerX509Certificate();
      socket.end(payload);
    });
    socket.once('close', () => resolve({ reply: Buffer.concat(chunks), protocol, peer }));
  });
}

describe('TLS on the single-end listener', () => {
  test('tls=1 serves TLS 1.3 with a fresh self-signed ECDSA P-256 certificate', async (t) => {
    const echo = await echoServer();
    t.after(() => echo.close());
    const port = await freePort();
    await withForwarder(`client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1&tls=1`, async (fwd) => {
      const payload = randomBytes(1024 * 1024);
      const { reply, protocol, peer } = await tlsExchange(port, payload, {});
      assert.equal(sha256(reply), sha256(payload));
      assert.equal(protocol, 'TLSv1.3');
      const cert = peer as X509Certificate;
      assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      assert.match(fwd.output(), new RegExp(`TLS certificate sha256:${cert.fingerprint256}`));
    });
  });

  test('tls=2 serves the given certificate, which a client verifies by name', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'porthole-tls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const pair = await createSelfSignedCertificate('tunnel.test', ['tunnel.test']);
    writeFileSync(join(dir, 'crt.pem'), pair.cert);
    writeFileSync(join(dir, 'key.pem'), pair.key);
    const echo = await echoServer();
    t.after(() => echo.close());
    const port = await freePort();
    await withForwarder(
      `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1&tls=2&crt=${join(dir, 'crt.pem')}&key=${join(dir, 'key.pem')}`,
      async () => {
        const payload = Buffer.from('verified end to end');
        const { reply } = await tlsExchange(port, payload, { ca: pair.cert, servername: 'tunnel.test' });
        assert.equal(reply.toString(), payload.toString());
        // A client that expects another name refuses the certificate.
        await assert.rejects(tlsExchange(port, payload, { ca: pair.cert, servername: 'other.test' }), /altnames/);
      },
    );
  });

  test('tls=2 with unreadable files falls back to tls=1 with a warning', async (t) => {
    const echo = await echoServer();
    t.after(() => echo.close());
    const port = await freePort();
    await withForwarder(
      `client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1&tls=2&crt=/nonexistent/c.pem&key=/nonexistent/k.pem`,
      async (fwd) => {
        assert.match(fwd.output(), /WARN {2}TLS certificate \/nonexistent\/c.pem .* failed to load .*; using tls=1/);
        const { reply } = await tlsExchange(port, Buffer.from('still served'), {});
        assert.equal(reply.toString(), 'still served');
      },
    );
  });

  test('a plain-TCP client on a TLS listener is dropped without harming the forwarder', async (t) => {
    const echo = await echoServer();
    t.after(() => echo.close());
    const port = await freePort();
    await withForwarder(`client://127.0.0.1:${port}/127.0.0.1:${echo.port}?mode=1&tls=1`, async () => {
      const { connectTcp } = await import('../helpers/net.js');
      const plain = await connectTcp(port);
      plain.on('error', () => {});
      plain.end('GET / HTTP/1.1\r\n\r\n');
      await once(plain, 'close');
      const { reply } = await tlsExchange(port, Buffer.from('after garbage'), {});
      assert.equal(reply.toString(), 'after garbage');
    });
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { connect } from 'node:tls';
import { readSni } from '../../src/hub/sni.js';

/** The first bytes a real Node TLS client sends for `servername`. */
async function clientHello(servername: string): Promise<Buffer> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const got = once(server, 'connection').then(async ([socket]) => {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    socket.destroy();
    return chunk;
  });
  const client = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, servername });
  client.on('error', () => {});
  const hello = await got;
  client.destroy();
  server.close();
  return hello;
}

test('readSni finds the server name of a real ClientHello', async () => {
  const hello = await clientHello('site.example.test');
  assert.deepEqual(readSni(hello), { state: 'done', name: 'site.example.test' });
});

test('readSni: every truncation is incomplete, garbage is invalid, nothing throws', async () => {
  const hello = await clientHello('a.test');
  for (let n = 0; n < hello.length; n++) assert.equal(readSni(hello.subarray(0, n)).state, 'incomplete');
  assert.equal(readSni(Buffer.from('GET / HTTP/1.1\r\n\r\n')).state, 'invalid');
  for (let i = 0; i < 2000; i++) {
    const fuzzed = Buffer.from(hello);
    for (let k = 0; k < 4; k++)
      fuzzed[5 + Math.floor(Math.random() * (fuzzed.length - 5))] = randomBytes(1)[0] as number;
    assert.doesNotThrow(() => readSni(fuzzed));
  }
});

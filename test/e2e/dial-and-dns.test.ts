import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { exchange, freePort, tcpServer } from '../helpers/net.js';
import { withForwarder } from '../helpers/porthole.js';

/** A target that answers each connection with the address it came from. */
function whoCalls() {
  return tcpServer((s) => s.end(s.remoteAddress ?? '?'), '0.0.0.0');
}

describe('outbound dial settings', () => {
  test('dial=127.0.0.2 makes target connections come from that source address', async (t) => {
    const target = await whoCalls();
    t.after(() => target.close());
    const port = await freePort();
    await withForwarder(`client://127.0.0.1:${port}/127.0.0.1:${target.port}?mode=1&dial=127.0.0.2`, async () => {
      assert.equal((await exchange(port, Buffer.alloc(0))).toString(), '127.0.0.2');
    });
  });

  for (const dns of ['5m', '0']) {
    test(`a hostname target resolves (dns=${dns})`, async (t) => {
      const target = await whoCalls();
      t.after(() => target.close());
      const port = await freePort();
      await withForwarder(`client://127.0.0.1:${port}/localhost:${target.port}?mode=1&dns=${dns}`, async () => {
        for (let i = 0; i < 3; i++) {
          assert.match((await exchange(port, Buffer.alloc(0))).toString(), /127\.0\.0\.1|::1/);
        }
      });
    });
  }
});

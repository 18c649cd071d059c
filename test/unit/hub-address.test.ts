import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../src/config/errors.js';
import { hubAddressFor, parseHubAddress } from '../../src/connector/hub-dialer.js';

describe('hub address: host:port or a WebSocket URL', () => {
  test('host:port is the framed protocol on TCP', () => {
    assert.deepEqual(parseHubAddress('hub.example.com:7443'), {
      transport: 'tcp',
      endpoint: { host: 'hub.example.com', port: 7443 },
    });
    assert.deepEqual(parseHubAddress('[::1]:7443').endpoint, { host: '::1', port: 7443 });
  });

  test('ws:// and wss:// URLs: default ports 80/443, default path /porthole/ws, a given path kept', () => {
    assert.deepEqual(parseHubAddress('wss://hub.example.com'), {
      transport: 'wss',
      endpoint: { host: 'hub.example.com', port: 443 },
      url: 'wss://hub.example.com/porthole/ws',
    });
    assert.deepEqual(parseHubAddress('ws://10.0.0.1:8080/'), {
      transport: 'ws',
      endpoint: { host: '10.0.0.1', port: 8080 },
      url: 'ws://10.0.0.1:8080/porthole/ws',
    });
    assert.deepEqual(parseHubAddress('WSS://edge.example.com/tunnels/porthole?x=1'), {
      transport: 'wss',
      endpoint: { host: 'edge.example.com', port: 443 },
      url: 'wss://edge.example.com/tunnels/porthole?x=1',
    });
    assert.deepEqual(parseHubAddress('ws://[::1]:9000/porthole/ws').endpoint, { host: '::1', port: 9000 });
  });

  test('malformed addresses are ConfigErrors naming the flag', () => {
    for (const bad of ['ws://', 'wss://user:pw@hub', 'wss://hub/#frag', 'ws://hub:99999', 'hub-without-port']) {
      assert.throws(
        () => parseHubAddress(bad, '--hub'),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, `${bad}: ${String(err)}`);
          assert.match((err as Error).message, /--hub/);
          return true;
        },
      );
    }
  });

  test('--transport turns host:port into the hub WebSocket endpoint, and refuses a contradiction', () => {
    assert.equal(hubAddressFor('hub.example.com:7443', 'wss'), 'wss://hub.example.com:7443/porthole/ws');
    assert.equal(hubAddressFor('[::1]:7443', 'ws'), 'ws://[::1]:7443/porthole/ws');
    assert.equal(hubAddressFor('hub.example.com:7443', 'tcp'), 'hub.example.com:7443');
    assert.equal(hubAddressFor('wss://hub.example.com', 'wss'), 'wss://hub.example.com/porthole/ws');
    assert.throws(() => hubAddressFor('ws://hub.example.com', 'wss'), /contradicts/);
    assert.throws(() => hubAddressFor('wss://hub.example.com', 'tcp'), /contradicts/);
  });
});

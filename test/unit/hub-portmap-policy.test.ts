import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../src/config/errors.js';
import { PortmapPolicy } from '../../src/hub/portmap-policy.js';

test('portmap policy: empty allow-list denies every outside destination', () => {
  const p = new PortmapPolicy([]);
  assert.equal(p.allows('127.0.0.1', 80), false);
  assert.equal(p.allows('example.com', 443), false);
});

test('portmap policy: hosts, host:port, CIDR and [v6]:port entries', () => {
  const p = new PortmapPolicy(['db.internal', 'cache.internal:6379', '10.0.0.0/8', '[::1]:5432']);
  assert.equal(p.allows('DB.internal', 1), true);
  assert.equal(p.allows('cache.internal', 6379), true);
  assert.equal(p.allows('cache.internal', 6380), false);
  assert.equal(p.allows('10.2.3.4', 22), true);
  assert.equal(p.allows('11.2.3.4', 22), false);
  assert.equal(p.allows('::1', 5432), true);
  assert.equal(p.allows('::1', 5433), false);
  assert.equal(p.allows('other.internal', 1), false);
});

test('portmap policy: malformed entries are config errors', () => {
  assert.throws(() => new PortmapPolicy(['10.0.0.0/40']), ConfigError);
  assert.throws(() => new PortmapPolicy(['host:99999']), ConfigError);
  assert.throws(() => new PortmapPolicy(['bad host']), ConfigError);
});

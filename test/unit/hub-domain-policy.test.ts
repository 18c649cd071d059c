import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Logger } from '../../src/common/logger.js';
import { ConfigError } from '../../src/config/errors.js';
import { readHubConfig } from '../../src/hub/config.js';
import { checkDomainPatterns, DomainPatternError, domainAllowed } from '../../src/hub/domain-policy.js';
import { SiteTable } from '../../src/hub/sites.js';
import type { StoredDomain } from '../../src/hub/store.js';
import { HubStateError, HubStore } from '../../src/hub/store.js';

test('domain patterns: none = any; exact names; *.suffix matches below it at any depth, not the suffix itself', () => {
  assert.equal(domainAllowed(undefined, 'x.test'), true);
  assert.equal(domainAllowed([], 'x.test'), true);
  const p = checkDomainPatterns(['*.Example.test', 'app.other.test.']);
  assert.deepEqual(p, ['*.example.test', 'app.other.test']);
  assert.equal(domainAllowed(p, 'a.example.test'), true);
  assert.equal(domainAllowed(p, 'A.B.example.test'), true);
  assert.equal(domainAllowed(p, 'example.test'), false);
  assert.equal(domainAllowed(p, 'badexample.test'), false);
  assert.equal(domainAllowed(p, 'app.other.test'), true);
  assert.equal(domainAllowed(p, 'x.app.other.test'), false);
});

test('domain patterns: IPs, empty, bare * and inner wildcards are refused', () => {
  for (const bad of ['', '*', '*.', '10.0.0.1', 'a.*.test', 'bad pattern', '*.*.test']) {
    assert.throws(() => checkDomainPatterns([bad]), DomainPatternError, bad);
  }
});

test('site table: the owner keeps a domain offline; another tunnel is refused; dropping it from the claims frees it', () => {
  const owners = new Map<string, StoredDomain>();
  const table = new SiteTable(new Logger('none'), owners);
  const A = 'a'.repeat(16);
  const B = 'b'.repeat(16);
  assert.deepEqual(table.claim(A, [{ domain: 'Shop.test' }]), { refused: [], changed: true });
  table.unroute(A);
  assert.equal(table.lookup('shop.test'), undefined);
  const r = table.claim(B, [{ domain: 'shop.test' }, { domain: 'free.test' }]);
  assert.match(r.refused[0]?.error ?? '', /reserved for another tunnel \(a{16}, offline\)/);
  assert.equal(table.lookup('free.test')?.tunnelId, B);
  assert.equal(table.claim(A, [{ domain: 'shop.test' }]).changed, false, 'reclaiming its own domain changes nothing');
  assert.equal(table.lookup('shop.test')?.tunnelId, A);
  assert.equal(table.claim(A, []).changed, true);
  assert.equal(owners.has('shop.test'), false);
  assert.match(table.claim(B, [{ domain: 'x.test' }], ['*.ok.test']).refused[0]?.error ?? '', /not allowed/);
});

test('hub config: tokens may carry domain restrictions; a bad pattern is a config error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'porthole-domains-unit-'));
  try {
    const file = join(dir, 'hub.json');
    writeFileSync(
      file,
      JSON.stringify({ tokens: ['plain-token-1', { token: 'limited-token', domains: ['*.C.test'] }] }),
    );
    const config = await readHubConfig(['--config', file]);
    assert.deepEqual(config.tokens, [{ token: 'plain-token-1' }, { token: 'limited-token', domains: ['*.c.test'] }]);
    writeFileSync(file, JSON.stringify({ tokens: [{ token: 'limited-token', domains: ['a b'] }] }));
    await assert.rejects(readHubConfig(['--config', file]), ConfigError);
    // The same from flags: --token-domains restricts a token given with --token (or in the file).
    const flags = await readHubConfig([
      '--token',
      'flag-token-1',
      '--token=flag-token-2',
      '--token-domains',
      'flag-token-2=*.D.test,app.e.test',
    ]);
    assert.deepEqual(flags.tokens, [
      { token: 'flag-token-1' },
      { token: 'flag-token-2', domains: ['*.d.test', 'app.e.test'] },
    ]);
    for (const bad of [
      ['--token-domains', 'nope=*.x.test'],
      ['--token', 't', '--token-domains', 't='],
      ['--token', 't', '--token-domains', 't=a b'],
    ]) {
      await assert.rejects(readHubConfig(bad), ConfigError, bad.join(' '));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hub state: a domain reserved twice or for an unknown tunnel is refused at load', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'porthole-domains-state-'));
  try {
    const tunnel = {
      id: 'a'.repeat(16),
      name: '',
      hostname: '',
      secret: 'b'.repeat(64),
      tokenId: 't',
      created: '',
      lastActive: '',
      address: '',
      version: '',
      os: '',
      arch: '',
      shutdown: false,
      bandwidth: { daily: 0, monthly: 0, day: '', month: '' },
      ports: [],
    };
    const state = (domains: unknown[]) => ({
      version: 1,
      adminKey: 'k'.repeat(32),
      tokens: [],
      tunnels: [tunnel],
      domains,
    });
    const store = new HubStore(dir, () => state([]) as never, new Logger('none'));
    const d = { domain: 'x.test', tunnelId: tunnel.id, claimed: '' };
    writeFileSync(store.path, JSON.stringify(state([d])));
    assert.equal((await store.load())?.domains?.length, 1);
    writeFileSync(store.path, JSON.stringify(state([d, d])));
    await assert.rejects(store.load(), HubStateError);
    writeFileSync(store.path, JSON.stringify(state([{ ...d, tunnelId: 'c'.repeat(16) }])));
    await assert.rejects(store.load(), /unknown tunnel/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { renewalTime } from '../../src/connector/acme-certificates.js';
import { AcmeStore, AcmeStoreError, checkCertificate } from '../../src/connector/acme-store.js';
import { createSelfSignedCertificate } from '../../src/tunnel/certificates.js';

const DAY = 24 * 3600 * 1000;

test("renewal: 30 days before expiry for Let's Encrypt's 90 days, two thirds into shorter lifetimes", () => {
  const start = new Date('2026-01-01T00:00:00Z');
  const ninety = { notBefore: start, notAfter: new Date(start.getTime() + 90 * DAY) };
  assert.equal(renewalTime(ninety), start.getTime() + 60 * DAY);
  const short = { notBefore: start, notAfter: new Date(start.getTime() + 36_000) };
  assert.equal(renewalTime(short), start.getTime() + 24_000);
  const year = { notBefore: start, notAfter: new Date(start.getTime() + 365 * DAY) };
  assert.equal(renewalTime(year), start.getTime() + 335 * DAY);
});

test('store: a certificate round-trips with its key (0600), one directory per ACME directory URL', async () => {
  const root = mkdtempSync(join(tmpdir(), 'porthole-acme-store-'));
  try {
    const pair = await createSelfSignedCertificate('site.test', ['site.test']);
    const a = new AcmeStore(root, 'https://acme.example/dir');
    const b = new AcmeStore(root, 'https://acme-staging.example/dir');
    assert.notEqual(a.dir, b.dir);
    assert.equal(await a.loadCertificate('site.test'), undefined);
    await a.saveCertificate('Site.test', checkCertificate('site.test', pair.cert, pair.key));
    const loaded = await a.loadCertificate('site.test');
    assert.equal(loaded?.cert, pair.cert);
    assert.equal(await b.loadCertificate('site.test'), undefined, 'another directory has its own cache');
    for (const f of readdirSync(join(a.dir, 'certs')))
      assert.equal(statSync(join(a.dir, 'certs', f)).mode & 0o777, 0o600);
    assert.equal(await a.loadAccount(), undefined);
    await a.saveAccountKey('KEY');
    await a.saveAccountUrl('https://acme.example/acct/1');
    assert.deepEqual(await a.loadAccount(), { key: 'KEY', url: 'https://acme.example/acct/1' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('store: a cached certificate that does not parse, match its key or name the domain is refused', async () => {
  const root = mkdtempSync(join(tmpdir(), 'porthole-acme-store-'));
  try {
    const one = await createSelfSignedCertificate('one.test', ['one.test']);
    const two = await createSelfSignedCertificate('two.test', ['two.test']);
    assert.throws(() => checkCertificate('one.test', one.cert, two.key), /do not match/);
    assert.throws(() => checkCertificate('two.test', one.cert, one.key), /does not name two\.test/);
    assert.throws(() => checkCertificate('one.test', 'garbage', one.key), AcmeStoreError);
    const store = new AcmeStore(root, 'https://acme.example/dir');
    await store.saveCertificate('one.test', checkCertificate('one.test', one.cert, one.key));
    writeFileSync(join(store.dir, 'certs', 'one.test.key'), two.key);
    await assert.rejects(store.loadCertificate('one.test'), /do not match/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DnsCache, type LookupAll } from '../../src/tunnel/dns-cache.js';

function countingLookup(answers: string[]): { lookup: LookupAll; calls: () => number } {
  let calls = 0;
  return {
    lookup: async () => {
      const address = answers[Math.min(calls, answers.length - 1)] as string;
      calls++;
      return [{ address, family: 4 }];
    },
    calls: () => calls,
  };
}

describe('DnsCache', () => {
  test('answers from the cache within the TTL and looks up again after it', async () => {
    let now = 1000;
    const { lookup, calls } = countingLookup(['10.0.0.1', '10.0.0.2']);
    const cache = new DnsCache(5000, lookup, () => now);
    assert.equal((await cache.resolve('svc.test')).address, '10.0.0.1');
    now += 4999;
    assert.equal((await cache.resolve('svc.test')).address, '10.0.0.1');
    assert.equal(calls(), 1);
    now += 2;
    assert.equal((await cache.resolve('svc.test')).address, '10.0.0.2');
    assert.equal(calls(), 2);
  });

  test('dns=0 looks up every time', async () => {
    const { lookup, calls } = countingLookup(['10.0.0.1']);
    const cache = new DnsCache(0, lookup);
    await cache.resolve('svc.test');
    await cache.resolve('svc.test');
    assert.equal(calls(), 2);
  });

  test('IP literals never reach the resolver', async () => {
    const { lookup, calls } = countingLookup(['10.0.0.1']);
    const cache = new DnsCache(1000, lookup);
    assert.deepEqual(await cache.resolve('::1'), { address: '::1', family: 6 });
    assert.deepEqual(await cache.resolve('127.0.0.1'), { address: '127.0.0.1', family: 4 });
    assert.equal(calls(), 0);
  });

  test('a failed lookup is not cached', async () => {
    let fail = true;
    const cache = new DnsCache(60_000, async () => {
      if (fail) throw new Error('ENOTFOUND');
      return [{ address: '10.0.0.9', family: 4 }];
    });
    await assert.rejects(cache.resolve('flaky.test'), /ENOTFOUND/);
    fail = false;
    assert.equal((await cache.resolve('flaky.test')).address, '10.0.0.9');
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TokenBucket } from '../../src/tunnel/token-bucket.js';

/** A manual clock in milliseconds. */
function fakeClock(start = 1000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

const MB = 1_000_000; // bytes per second; burst = max(5% of a second, 16 KiB) = 50 000 bytes

describe('TokenBucket.take', () => {
  test('starts full: a first burst up to the capacity needs no wait', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(MB, clock.now);
    assert.equal(bucket.take(50_000), 0);
  });

  test('going over budget returns the time needed to pay the debt back', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(MB, clock.now);
    assert.equal(bucket.take(50_000), 0);
    assert.equal(bucket.take(1000), 1); // 1000 bytes at 1 MB/s
    assert.equal(bucket.take(9000), 10); // debt accumulates: 10 000 bytes
  });

  test('the wait is proportional to the debt and inversely to the rate', () => {
    const clock = fakeClock();
    const slow = new TokenBucket(125_000, clock.now); // 1 Mbps; burst floor 16 KiB
    assert.equal(slow.take(16_384 + 125_000), 1000);
  });

  test('after waiting the returned delay the bucket is back at zero debt', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(MB, clock.now);
    const wait = bucket.take(150_000);
    assert.equal(wait, 100);
    clock.advance(wait);
    assert.equal(bucket.take(0), 0);
    assert.equal(bucket.take(1000), 1);
  });

  test('tokens refill with time', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(MB, clock.now);
    bucket.take(50_000);
    clock.advance(20); // 20 000 bytes
    assert.equal(bucket.take(20_000), 0);
    assert.equal(bucket.take(5000), 5);
  });

  test('an idle bucket refills only up to its capacity', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(MB, clock.now);
    bucket.take(50_000);
    clock.advance(60_000); // a minute idle would be 60 MB without the cap
    assert.equal(bucket.take(50_000), 0);
    assert.equal(bucket.take(1000), 1);
  });

  test('the burst is at least 16 KiB, else 5% of a second by default', () => {
    const clock = fakeClock();
    const small = new TokenBucket(1000, clock.now);
    assert.equal(small.take(16_384), 0);
    assert.ok(small.take(1) > 0);
    const big = new TokenBucket(10 * MB, clock.now);
    assert.equal(big.take(500_000), 0);
    assert.ok(big.take(1) > 0);
  });

  test('burstSeconds sets the capacity', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(MB, clock.now, 1);
    assert.equal(bucket.take(MB), 0);
    assert.equal(bucket.take(1000), 1);
  });

  test('exposes its rate', () => {
    assert.equal(new TokenBucket(1234, () => 0).bytesPerSecond, 1234);
  });
});

describe('TokenBucket long-run rate', () => {
  for (const [rate, chunk] of [
    [125_000, 16_384],
    [MB, 16_384],
    [12_500_000, 65_536],
    [MB, 1],
  ] as const) {
    test(`a reader that obeys the waits moves ${rate} B/s with ${chunk}-byte reads`, () => {
      const clock = fakeClock(0);
      const bucket = new TokenBucket(rate, clock.now);
      const seconds = chunk === 1 ? 0.2 : 20;
      let moved = 0;
      let elapsed = 0;
      while (elapsed < seconds * 1000) {
        const wait = bucket.take(chunk);
        moved += chunk;
        clock.advance(wait);
        elapsed += wait;
      }
      const burst = Math.max(rate * 0.05, 16_384);
      const expected = rate * seconds + burst;
      assert.ok(
        Math.abs(moved - expected) <= chunk + 1,
        `moved ${moved} bytes in ${elapsed} ms, expected about ${expected}`,
      );
    });
  }

  test('a reader slower than the rate is never delayed', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(MB, clock.now);
    for (let i = 0; i < 1000; i++) {
      assert.equal(bucket.take(900), 0);
      clock.advance(1); // 900 bytes per ms < 1000 bytes per ms
    }
  });
});

describe('TokenBucket.tryTake', () => {
  test('takes when the bytes fit and refuses otherwise', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(MB, clock.now);
    assert.equal(bucket.tryTake(50_000), true);
    assert.equal(bucket.tryTake(1), false);
  });

  test('a refusal takes nothing', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(MB, clock.now);
    assert.equal(bucket.tryTake(40_000), true);
    assert.equal(bucket.tryTake(20_000), false);
    assert.equal(bucket.tryTake(10_000), true);
    assert.equal(bucket.tryTake(1), false);
  });

  test('refills with time', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(MB, clock.now);
    assert.equal(bucket.tryTake(50_000), true);
    clock.advance(1);
    assert.equal(bucket.tryTake(1001), false);
    assert.equal(bucket.tryTake(1000), true);
    assert.equal(bucket.tryTake(1), false);
  });

  test('never takes more than the capacity, however long the bucket was idle', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(MB, clock.now);
    clock.advance(3_600_000);
    assert.equal(bucket.tryTake(50_001), false);
    assert.equal(bucket.tryTake(50_000), true);
  });

  test('does not go into debt after take() did', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(MB, clock.now);
    assert.equal(bucket.take(60_000), 10);
    clock.advance(5);
    assert.equal(bucket.tryTake(1), false); // still 5 000 bytes in debt
    clock.advance(6);
    assert.equal(bucket.tryTake(1000), true);
  });

  test('datagrams admitted over time match the rate', () => {
    const clock = fakeClock(0);
    const bucket = new TokenBucket(MB, clock.now);
    let admitted = 0;
    for (let ms = 0; ms < 10_000; ms++) {
      for (let i = 0; i < 4; i++) if (bucket.tryTake(1000)) admitted += 1000; // offered 4 MB/s
      clock.advance(1);
    }
    const expected = MB * 10 + 50_000;
    assert.ok(Math.abs(admitted - expected) <= 2000, `admitted ${admitted}, expected about ${expected}`);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatGoDuration, parseGoDuration } from '../../src/config/duration.js';
import { ConfigError } from '../../src/config/errors.js';

const NS = 1;
const US = 1e3;
const MS = 1e6;
const S = 1e9;
const M = 60 * S;
const H = 60 * M;

describe('parseGoDuration', () => {
  const golden: Array<[string, number]> = [
    ['0', 0],
    ['0s', 0],
    ['0h0m0s', 0],
    ['1ns', 1 * NS],
    ['1us', 1 * US],
    ['1µs', 1 * US], // U+00B5 micro sign
    ['1μs', 1 * US], // U+03BC Greek mu
    ['300ms', 300 * MS],
    ['1.5s', 1.5 * S],
    ['.5s', 0.5 * S],
    ['1.s', 1 * S],
    ['30s', 30 * S],
    ['5m', 5 * M],
    ['5m0s', 5 * M],
    ['1h', H],
    ['1.5h', 1.5 * H],
    ['2h45m', 2 * H + 45 * M],
    ['1h30m', 90 * M],
    ['1h0m0s', H],
    ['1m30s', 90 * S],
    ['1h1m1.5s', H + M + 1.5 * S],
    ['1s500ms', 1.5 * S],
    ['100ms100ms', 200 * MS],
    ['24h', 24 * H],
  ];
  for (const [text, ns] of golden) {
    test(`"${text}" is ${ns} ns`, () => {
      assert.equal(parseGoDuration(text, 'd'), ns);
    });
  }

  test('the result is a whole number of nanoseconds', () => {
    assert.ok(Number.isInteger(parseGoDuration('1.0000000001s', 'd')));
    assert.ok(Number.isInteger(parseGoDuration('0.3ms', 'd')));
  });

  const bad = [
    '',
    '5',
    '00',
    '1h30',
    '-1s',
    '+1s',
    '-0',
    's',
    '.s',
    'abc',
    '1x',
    '1 s',
    ' 1s',
    '1s ',
    '1e3s',
    '1.5.5s',
    '1S',
    '1H',
    'ms',
    '1d',
    '0x10s',
    'Infinity',
  ];
  for (const text of bad) {
    test(`"${text}" is rejected with a ConfigError naming what was parsed`, () => {
      assert.throws(
        () => parseGoDuration(text, 'read'),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.equal(err.param, 'read');
          assert.ok(err.message.startsWith('read:'), err.message);
          assert.ok(err.message.includes(`"${text}"`), err.message);
          return true;
        },
      );
    });
  }

  test('an absurdly long number is rejected rather than giving Infinity', () => {
    assert.throws(() => parseGoDuration(`${'9'.repeat(400)}h`, 'dns'), ConfigError);
  });
});

describe('formatGoDuration', () => {
  const golden: Array<[number, string]> = [
    [0, '0s'],
    [1 * NS, '1ns'],
    [999 * NS, '999ns'],
    [1 * US, '1µs'],
    [1.5 * US, '1.5µs'],
    [1 * MS, '1ms'],
    [1.5 * MS, '1.5ms'],
    [100 * MS, '100ms'],
    [300 * MS, '300ms'],
    [999 * MS, '999ms'],
    [1 * S, '1s'],
    [1.5 * S, '1.5s'],
    [S + 1, '1.000000001s'],
    [10 * S, '10s'],
    [59 * S, '59s'],
    [60 * S, '1m0s'],
    [90 * S, '1m30s'],
    [5 * M, '5m0s'],
    [10 * M, '10m0s'],
    [H, '1h0m0s'],
    [1.5 * H, '1h30m0s'],
    [2 * H + 45 * M, '2h45m0s'],
    [H + M + 1.5 * S, '1h1m1.5s'],
    [100 * H, '100h0m0s'],
  ];
  for (const [ns, text] of golden) {
    test(`${ns} ns is "${text}"`, () => {
      assert.equal(formatGoDuration(ns), text);
    });
  }

  test('the micro sign is U+00B5, as Go writes it', () => {
    assert.equal(formatGoDuration(2 * US), '2\u00b5s');
  });
});

describe('round trip', () => {
  for (const text of ['0s', '1ns', '1.5µs', '300ms', '1.5s', '1m30s', '5m0s', '1h0m0s', '2h45m0s', '1h1m1.5s']) {
    test(`"${text}" formats back to itself`, () => {
      assert.equal(formatGoDuration(parseGoDuration(text, 'd')), text);
    });
  }

  test('short forms normalise: "0" → "0s", "5m" → "5m0s", "1.5h" → "1h30m0s", "2h45m" → "2h45m0s"', () => {
    assert.equal(formatGoDuration(parseGoDuration('0', 'd')), '0s');
    assert.equal(formatGoDuration(parseGoDuration('5m', 'd')), '5m0s');
    assert.equal(formatGoDuration(parseGoDuration('1.5h', 'd')), '1h30m0s');
    assert.equal(formatGoDuration(parseGoDuration('2h45m', 'd')), '2h45m0s');
    assert.equal(formatGoDuration(parseGoDuration('90s', 'd')), '1m30s');
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type RuntimeSettings, readRuntimeSettings } from '../../src/config/env.js';
import { ConfigError } from '../../src/config/errors.js';

const DEFAULTS: RuntimeSettings = {
  semaphoreLimit: 65536,
  tcpDataBufSize: 16384,
  udpDataBufSize: 16384,
  handshakeTimeout: 5000,
  tcpDialTimeout: 5000,
  udpDialTimeout: 5000,
  udpReadTimeout: 30_000,
  poolGetTimeout: 5000,
  minPoolInterval: 100,
  maxPoolInterval: 1000,
  reportInterval: 5000,
  serviceCooldown: 3000,
  shutdownTimeout: 5000,
  reloadInterval: 3_600_000,
  probeInterval: 5000,
  primaryReturnInterval: 300_000,
};

function rejects(env: NodeJS.ProcessEnv, variable: string, ...fragments: string[]): void {
  assert.throws(
    () => readRuntimeSettings(env),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
      assert.equal(err.param, variable);
      assert.ok(err.message.includes(variable), `message "${err.message}" should name ${variable}`);
      for (const fragment of fragments) {
        assert.ok(err.message.includes(fragment), `message "${err.message}" should contain "${fragment}"`);
      }
      return true;
    },
  );
}

describe('readRuntimeSettings defaults', () => {
  test('an empty environment gives the NodePass defaults (durations in ms)', () => {
    assert.deepEqual(readRuntimeSettings({}), DEFAULTS);
  });

  test('unrelated variables are ignored', () => {
    assert.deepEqual(readRuntimeSettings({ PATH: '/bin', NP_UNKNOWN: 'x', HOME: '/root' }), DEFAULTS);
  });

  test('an empty or blank variable means the default', () => {
    assert.deepEqual(readRuntimeSettings({ NP_SEMAPHORE_LIMIT: '', NP_HANDSHAKE_TIMEOUT: '   ' }), DEFAULTS);
  });

  test('every call returns a fresh object', () => {
    const a = readRuntimeSettings({});
    a.semaphoreLimit = 1;
    assert.equal(readRuntimeSettings({}).semaphoreLimit, 65536);
  });
});

describe('readRuntimeSettings overrides', () => {
  test('integer variables', () => {
    const s = readRuntimeSettings({
      NP_SEMAPHORE_LIMIT: '1024',
      NP_TCP_DATA_BUF_SIZE: '32768',
      NP_UDP_DATA_BUF_SIZE: '1500',
    });
    assert.equal(s.semaphoreLimit, 1024);
    assert.equal(s.tcpDataBufSize, 32768);
    assert.equal(s.udpDataBufSize, 1500);
  });

  test('duration variables take Go durations and give milliseconds', () => {
    const s = readRuntimeSettings({
      NP_HANDSHAKE_TIMEOUT: '10s',
      NP_TCP_DIAL_TIMEOUT: '1.5s',
      NP_UDP_DIAL_TIMEOUT: '250ms',
      NP_UDP_READ_TIMEOUT: '1m',
      NP_POOL_GET_TIMEOUT: '2s',
      NP_MIN_POOL_INTERVAL: '50ms',
      NP_MAX_POOL_INTERVAL: '2s',
      NP_REPORT_INTERVAL: '500ms',
      NP_SERVICE_COOLDOWN: '1s',
      NP_SHUTDOWN_TIMEOUT: '3s',
      NP_RELOAD_INTERVAL: '1h30m',
      PORTHOLE_PROBE_INTERVAL: '1s',
      PORTHOLE_PRIMARY_RETURN_INTERVAL: '30s',
    });
    assert.deepEqual(s, {
      ...DEFAULTS,
      handshakeTimeout: 10_000,
      tcpDialTimeout: 1500,
      udpDialTimeout: 250,
      udpReadTimeout: 60_000,
      poolGetTimeout: 2000,
      minPoolInterval: 50,
      maxPoolInterval: 2000,
      reportInterval: 500,
      serviceCooldown: 1000,
      shutdownTimeout: 3000,
      reloadInterval: 5_400_000,
      probeInterval: 1000,
      primaryReturnInterval: 30_000,
    });
  });

  test('sub-millisecond durations keep their fraction', () => {
    assert.equal(readRuntimeSettings({ NP_MIN_POOL_INTERVAL: '500us' }).minPoolInterval, 0.5);
  });

  test('surrounding whitespace is ignored', () => {
    const s = readRuntimeSettings({ NP_SEMAPHORE_LIMIT: ' 42 ', NP_REPORT_INTERVAL: '\t2s\n' });
    assert.equal(s.semaphoreLimit, 42);
    assert.equal(s.reportInterval, 2000);
  });

  test('an override changes only its own field', () => {
    assert.deepEqual(readRuntimeSettings({ NP_SERVICE_COOLDOWN: '7s' }), { ...DEFAULTS, serviceCooldown: 7000 });
  });
});

describe('readRuntimeSettings bad values', () => {
  const badInts = ['abc', '0', '-5', '1.5', '1e3', '0x10', '10k', '99999999999999999999'];
  for (const value of badInts) {
    test(`NP_SEMAPHORE_LIMIT=${value} is rejected naming the variable`, () => {
      rejects({ NP_SEMAPHORE_LIMIT: value }, 'NP_SEMAPHORE_LIMIT', `"${value}"`, 'positive integer');
    });
  }

  test('each integer variable is checked', () => {
    rejects({ NP_TCP_DATA_BUF_SIZE: 'big' }, 'NP_TCP_DATA_BUF_SIZE');
    rejects({ NP_UDP_DATA_BUF_SIZE: '-1' }, 'NP_UDP_DATA_BUF_SIZE');
  });

  const badDurations = ['30', 'abc', '-1s', '5 s', '1d'];
  for (const value of badDurations) {
    test(`NP_UDP_READ_TIMEOUT=${value} is rejected naming the variable`, () => {
      rejects({ NP_UDP_READ_TIMEOUT: value }, 'NP_UDP_READ_TIMEOUT', `"${value}"`);
    });
  }

  test('a zero duration is rejected', () => {
    rejects({ NP_SHUTDOWN_TIMEOUT: '0' }, 'NP_SHUTDOWN_TIMEOUT', 'greater than 0');
    rejects({ NP_REPORT_INTERVAL: '0s' }, 'NP_REPORT_INTERVAL', 'greater than 0');
  });

  test('each duration variable is checked, including porthole-specific ones', () => {
    for (const name of [
      'NP_HANDSHAKE_TIMEOUT',
      'NP_TCP_DIAL_TIMEOUT',
      'NP_UDP_DIAL_TIMEOUT',
      'NP_POOL_GET_TIMEOUT',
      'NP_MIN_POOL_INTERVAL',
      'NP_MAX_POOL_INTERVAL',
      'NP_SERVICE_COOLDOWN',
      'NP_RELOAD_INTERVAL',
      'PORTHOLE_PROBE_INTERVAL',
      'PORTHOLE_PRIMARY_RETURN_INTERVAL',
    ]) {
      rejects({ [name]: 'soon' }, name);
    }
  });
});

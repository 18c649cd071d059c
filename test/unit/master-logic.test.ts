import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { checkApiKey } from '../../src/master/auth.js';
import { rfc3339 } from '../../src/master/sse.js';
import { parseState, writeAtomic } from '../../src/master/store.js';
import { cpuPercent, parseDiskstats, parseMeminfo, parseNetDev, parseProcStat } from '../../src/master/sysinfo.js';
import { explainPatch, parseInstanceUrl } from '../../src/master/validate.js';

describe('master: /proc parsing', () => {
  test('cpu from two /proc/stat samples', () => {
    const a = parseProcStat('cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n');
    const b = parseProcStat('cpu  200 0 200 1300 100 0 0 0 0 0\n');
    assert.ok(a && b);
    assert.equal(cpuPercent(a, b), 25);
  });
  test('meminfo: used = total - available, swap used = total - free', () => {
    const m = parseMeminfo(
      'MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nSwapTotal: 200 kB\nSwapFree: 50 kB\n',
    );
    assert.deepEqual(m, { mem_total: 1024000, mem_used: 409600, swap_total: 204800, swap_used: 153600 });
  });
  test('net/dev skips lo, veth, docker, br-, virbr', () => {
    const text = `Inter-|   Receive |  Transmit
 face |bytes packets errs drop fifo frame compressed multicast|bytes packets
    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0
  eth0: 100 1 0 0 0 0 0 0 200 1 0 0 0 0 0 0
docker0: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0
vethab: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0
 wlan0: 10 1 0 0 0 0 0 0 20 1 0 0 0 0 0 0
`;
    assert.deepEqual(parseNetDev(text), { netrx: 110, nettx: 220 });
  });
  test('diskstats counts whole disks only, sectors × 512', () => {
    const text = [
      '   8       0 sda 10 0 4 0 20 0 8 0 0 0 0',
      '   8       1 sda1 10 0 100 0 20 0 100 0 0 0 0',
      ' 259       0 nvme0n1 1 0 2 0 1 0 2 0 0 0 0',
      ' 259       1 nvme0n1p1 1 0 50 0 1 0 50 0 0 0 0',
      '   7       0 loop0 1 0 70 0 1 0 70 0 0 0 0',
      ' 253       0 dm-0 1 0 70 0 1 0 70 0 0 0 0',
    ].join('\n');
    assert.deepEqual(parseDiskstats(text), { diskr: 6 * 512, diskw: 10 * 512 });
  });
});

describe('master: validation, auth, state file', () => {
  test('PATCH messages name the problem', () => {
    assert.equal(explainPatch({ action: 'fly' }), 'Invalid action: fly');
    assert.match(explainPatch({ meta: { peer: { sid: 'x' } } }), /peer\.sid/);
    assert.match(explainPatch({ meta: { peer: { type: '3' } } }), /peer\.type/);
    assert.match(explainPatch({ alias: 'é'.repeat(257) }), /256/);
    assert.equal(explainPatch('x'), 'Invalid request body');
  });
  test('instance URLs: NodePass messages for format and scheme, the grammar reason otherwise', () => {
    assert.equal(parseInstanceUrl('nonsense'), 'Invalid URL format');
    assert.equal(parseInstanceUrl('http://a:1/b:2'), 'Invalid URL scheme');
    assert.equal(parseInstanceUrl('master://127.0.0.1:9090/api'), 'Invalid URL scheme');
    assert.match(parseInstanceUrl('client://127.0.0.1:1/b:2?slot=x') as string, /^Invalid URL: slot/);
    assert.equal(typeof parseInstanceUrl('client://127.0.0.1:1/b:2?mode=1'), 'object');
  });
  test('API key check: required, invalid, valid', () => {
    const key = 'a'.repeat(32);
    assert.equal(checkApiKey(undefined, key), 'Unauthorized: API key required');
    assert.equal(checkApiKey('', key), 'Unauthorized: API key required');
    assert.equal(checkApiKey('b', key), 'Unauthorized: Invalid API key');
    assert.equal(checkApiKey(key, key), undefined);
  });
  test('rfc3339 has a zone', () => {
    assert.match(rfc3339(new Date(0)), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$/);
  });
  test('state file: schema-checked, duplicate ids refused', () => {
    const good = { version: 1, mid: '0'.repeat(16), key: 'f'.repeat(32), alias: '', instances: [] };
    assert.deepEqual(parseState(JSON.stringify(good)), good);
    assert.throws(() => parseState('{'), /not JSON/);
    assert.throws(() => parseState(JSON.stringify({ ...good, key: 'short' })), /schema/);
    const inst = {
      id: 'abcd1234',
      alias: '',
      type: 'client',
      url: 'client://a:1/b:2',
      config: '',
      restart: true,
      meta: { peer: { sid: '', type: '', alias: '' }, tags: {} },
      tcprx: 0,
      tcptx: 0,
      udprx: 0,
      udptx: 0,
    };
    assert.throws(() => parseState(JSON.stringify({ ...good, instances: [inst, inst] })), /twice/);
  });
  test('writeAtomic leaves only the target file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'porthole-atomic-'));
    try {
      await writeAtomic(join(dir, 'f.json'), 'one');
      await writeAtomic(join(dir, 'f.json'), 'two');
      assert.equal(readFileSync(join(dir, 'f.json'), 'utf8'), 'two');
      assert.deepEqual(readdirSync(dir), ['f.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

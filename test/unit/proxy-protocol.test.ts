import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeProxyV1 } from '../../src/tunnel/proxy-protocol.js';

const header = (src: string, srcPort: number, dst: string, dstPort: number) =>
  encodeProxyV1({ address: src, port: srcPort }, { address: dst, port: dstPort });

describe('encodeProxyV1', () => {
  test('IPv4 on both sides gives an exact TCP4 header', () => {
    const h = header('192.0.2.10', 56324, '198.51.100.20', 443);
    assert.ok(Buffer.isBuffer(h));
    assert.deepEqual(h, Buffer.from('PROXY TCP4 192.0.2.10 198.51.100.20 56324 443\r\n', 'ascii'));
  });

  test('IPv6 on both sides gives an exact TCP6 header', () => {
    assert.deepEqual(
      header('2001:db8::1', 40000, '2001:db8::2', 8080),
      Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 40000 8080\r\n', 'ascii'),
    );
  });

  test('the header is plain ASCII ending in CRLF with single spaces', () => {
    const h = header('10.0.0.1', 1, '10.0.0.2', 65535);
    assert.equal(h.toString('latin1'), 'PROXY TCP4 10.0.0.1 10.0.0.2 1 65535\r\n');
    assert.ok(h.every((b) => b < 0x80));
    assert.equal(h.subarray(-2).toString('latin1'), '\r\n');
    assert.equal(h.indexOf('\r\n'), h.length - 2);
  });

  test('the longest header fits the 107-byte limit of the spec', () => {
    const v6 = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const h = header(v6, 65535, v6, 65535);
    assert.equal(h.length, 104);
    assert.ok(h.length <= 107);
  });

  test('IPv4-mapped addresses are unmapped, so a dual-stack socket still gives TCP4', () => {
    assert.equal(
      header('::ffff:192.0.2.10', 56324, '::ffff:198.51.100.20', 443).toString('latin1'),
      'PROXY TCP4 192.0.2.10 198.51.100.20 56324 443\r\n',
    );
    assert.equal(
      header('::ffff:192.0.2.10', 1234, '198.51.100.20', 80).toString('latin1'),
      'PROXY TCP4 192.0.2.10 198.51.100.20 1234 80\r\n',
    );
  });

  test('unmapping is case-insensitive', () => {
    assert.equal(
      header('::FFFF:127.0.0.1', 5000, '::ffff:127.0.0.1', 6000).toString('latin1'),
      'PROXY TCP4 127.0.0.1 127.0.0.1 5000 6000\r\n',
    );
  });

  test('mixed families give TCP6 with the IPv4 side written IPv4-mapped', () => {
    assert.equal(
      header('192.0.2.10', 1111, '2001:db8::2', 2222).toString('latin1'),
      'PROXY TCP6 ::ffff:192.0.2.10 2001:db8::2 1111 2222\r\n',
    );
    assert.equal(
      header('2001:db8::1', 1111, '198.51.100.20', 2222).toString('latin1'),
      'PROXY TCP6 2001:db8::1 ::ffff:198.51.100.20 1111 2222\r\n',
    );
    assert.equal(
      header('::ffff:192.0.2.10', 1111, '::1', 2222).toString('latin1'),
      'PROXY TCP6 ::ffff:192.0.2.10 ::1 1111 2222\r\n',
    );
  });

  test('IPv6 loopback and unspecified are written as given', () => {
    assert.equal(header('::1', 1, '::', 2).toString('latin1'), 'PROXY TCP6 ::1 :: 1 2\r\n');
  });
});

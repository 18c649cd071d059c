import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BlockedProtocol } from '../../src/config/params.js';
import { classifyFirstBytes } from '../../src/tunnel/sniff.js';

const ALL: ReadonlySet<BlockedProtocol> = new Set(['socks', 'http', 'tls']);
const only = (...kinds: BlockedProtocol[]): ReadonlySet<BlockedProtocol> => new Set(kinds);
const ascii = (text: string) => Buffer.from(text, 'latin1');
const bytes = (...values: number[]) => Buffer.from(values);

const PASS = { kind: 'pass' } as const;
const MORE = { kind: 'more' } as const;
const block = (protocol: BlockedProtocol) => ({ kind: 'block', protocol }) as const;

describe('classifyFirstBytes: HTTP', () => {
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'PRI'];
  for (const method of methods) {
    test(`"${method} " is HTTP`, () => {
      assert.deepEqual(classifyFirstBytes(ascii(`${method} / HTTP/1.1\r\n`), only('http')), block('http'));
      assert.deepEqual(classifyFirstBytes(ascii(`${method} `), only('http')), block('http'));
    });
  }

  test('the HTTP/2 preface is HTTP', () => {
    assert.deepEqual(classifyFirstBytes(ascii('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), only('http')), block('http'));
  });

  test('CONNECT to a proxy is HTTP', () => {
    assert.deepEqual(classifyFirstBytes(ascii('CONNECT example.com:443 HTTP/1.1\r\n'), ALL), block('http'));
  });

  test('a prefix of a method (with or without the space still to come) needs more bytes', () => {
    for (const head of [
      'G',
      'GE',
      'GET',
      'P',
      'PO',
      'POS',
      'POST',
      'PA',
      'PR',
      'C',
      'CONNEC',
      'OPTIONS',
      'D',
      'T',
      'H',
    ]) {
      assert.deepEqual(classifyFirstBytes(ascii(head), only('http')), MORE, head);
    }
  });

  test('something that is not a method passes', () => {
    for (const head of [
      'GETX',
      'GET/',
      'get ',
      'Get ',
      'FOO ',
      'X',
      'SSH-2.0-OpenSSH_9.6\r\n',
      'POSTS ',
      'PUTT',
      '\r\n',
    ]) {
      assert.deepEqual(classifyFirstBytes(ascii(head), only('http')), PASS, JSON.stringify(head));
    }
  });

  test('a method without its space is not enough', () => {
    assert.deepEqual(classifyFirstBytes(ascii('GET\t/'), only('http')), PASS);
  });

  test('HTTP passes when only other protocols are blocked', () => {
    assert.deepEqual(classifyFirstBytes(ascii('GET / HTTP/1.1\r\n'), only('socks', 'tls')), PASS);
    assert.deepEqual(classifyFirstBytes(ascii('GE'), only('socks', 'tls')), PASS);
  });
});

describe('classifyFirstBytes: SOCKS', () => {
  test('SOCKS4 CONNECT and BIND are SOCKS', () => {
    assert.deepEqual(classifyFirstBytes(bytes(0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0), only('socks')), block('socks'));
    assert.deepEqual(classifyFirstBytes(bytes(0x04, 0x02), only('socks')), block('socks'));
  });

  test('SOCKS5 greetings with 1..255 methods are SOCKS', () => {
    assert.deepEqual(classifyFirstBytes(bytes(0x05, 0x01, 0x00), only('socks')), block('socks'));
    assert.deepEqual(classifyFirstBytes(bytes(0x05, 0x02, 0x00, 0x02), only('socks')), block('socks'));
    assert.deepEqual(classifyFirstBytes(bytes(0x05, 0xff), only('socks')), block('socks'));
  });

  test('a lone version byte needs more bytes', () => {
    assert.deepEqual(classifyFirstBytes(bytes(0x04), only('socks')), MORE);
    assert.deepEqual(classifyFirstBytes(bytes(0x05), only('socks')), MORE);
  });

  test('a version byte with an impossible second byte passes', () => {
    assert.deepEqual(classifyFirstBytes(bytes(0x04, 0x00), only('socks')), PASS);
    assert.deepEqual(classifyFirstBytes(bytes(0x04, 0x03), only('socks')), PASS);
    assert.deepEqual(classifyFirstBytes(bytes(0x05, 0x00), only('socks')), PASS);
  });

  test('other first bytes pass', () => {
    assert.deepEqual(classifyFirstBytes(bytes(0x03, 0x01), only('socks')), PASS);
    assert.deepEqual(classifyFirstBytes(bytes(0x06, 0x01), only('socks')), PASS);
  });

  test('SOCKS passes when only other protocols are blocked', () => {
    assert.deepEqual(classifyFirstBytes(bytes(0x05, 0x01, 0x00), only('http', 'tls')), PASS);
    assert.deepEqual(classifyFirstBytes(bytes(0x05), only('http', 'tls')), PASS);
  });
});

describe('classifyFirstBytes: TLS', () => {
  test('a handshake record (0x16) is TLS, decided on the first byte', () => {
    assert.deepEqual(classifyFirstBytes(bytes(0x16), only('tls')), block('tls'));
    assert.deepEqual(classifyFirstBytes(bytes(0x16, 0x03, 0x01, 0x02, 0x00, 0x01), only('tls')), block('tls'));
  });

  test('other record types pass', () => {
    assert.deepEqual(classifyFirstBytes(bytes(0x17, 0x03, 0x03), only('tls')), PASS);
    assert.deepEqual(classifyFirstBytes(bytes(0x15, 0x03, 0x03), only('tls')), PASS);
  });

  test('TLS passes when only other protocols are blocked', () => {
    assert.deepEqual(classifyFirstBytes(bytes(0x16, 0x03, 0x01), only('socks', 'http')), PASS);
  });
});

describe('classifyFirstBytes: general', () => {
  test('nothing is blocked when nothing is selected', () => {
    for (const head of [ascii('GET / HTTP/1.1\r\n'), bytes(0x05, 0x01, 0x00), bytes(0x16, 0x03), ascii('G')]) {
      assert.deepEqual(classifyFirstBytes(head, new Set()), PASS);
    }
  });

  test('no bytes yet needs more', () => {
    assert.deepEqual(classifyFirstBytes(Buffer.alloc(0), ALL), MORE);
  });

  test('each protocol is recognised with all of them blocked', () => {
    assert.deepEqual(classifyFirstBytes(ascii('POST /x HTTP/1.1\r\n'), ALL), block('http'));
    assert.deepEqual(classifyFirstBytes(bytes(0x04, 0x01), ALL), block('socks'));
    assert.deepEqual(classifyFirstBytes(bytes(0x16, 0x03, 0x01), ALL), block('tls'));
  });

  test('server-speaks-first or binary protocols pass at once', () => {
    assert.deepEqual(classifyFirstBytes(ascii('SSH-2.0-x\r\n'), ALL), PASS);
    assert.deepEqual(classifyFirstBytes(bytes(0x00, 0x00, 0x00, 0x08), ALL), PASS);
    assert.deepEqual(classifyFirstBytes(ascii('*1\r\n$4\r\nPING\r\n'), ALL), PASS);
  });

  test('the verdict depends only on the bytes, so a longer head refines "more"', () => {
    assert.deepEqual(classifyFirstBytes(ascii('DEL'), ALL), MORE);
    assert.deepEqual(classifyFirstBytes(ascii('DELETE '), ALL), block('http'));
    assert.deepEqual(classifyFirstBytes(ascii('DELTA'), ALL), PASS);
  });
});

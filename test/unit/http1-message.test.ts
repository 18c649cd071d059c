import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BodyScanner } from '../../src/connector/http1-body.js';
import {
  type BodyFraming,
  HttpMessageError,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  responseFraming,
} from '../../src/connector/http1-head.js';
import { PendingBytes } from '../../src/connector/pending-bytes.js';

const b = (s: string) => Buffer.from(s, 'latin1');

function request(text: string) {
  const head = parseRequestHead(b(text), 0);
  assert.ok(head, 'head complete');
  return head;
}

function refused(text: string, status = 400): void {
  assert.throws(
    () => {
      const head = parseRequestHead(b(text), 0);
      if (head) requestFraming(head);
    },
    (err: unknown) => err instanceof HttpMessageError && err.status === status,
    JSON.stringify(text),
  );
}

/** Feeds `body` to a scanner in pieces of `step` bytes; returns where the body ended in the whole input, or -1. */
function scanInPieces(framing: BodyFraming, body: Buffer, step: number): number {
  const scanner = new BodyScanner(framing);
  for (let at = 0; at < body.length; at += step) {
    const piece = body.subarray(at, Math.min(at + step, body.length));
    const end = scanner.scan(piece, 0);
    if (end >= 0) return at + end;
  }
  return -1;
}

describe('HTTP/1.x request heads', () => {
  test('a complete head gives method, target, version, fields in order and its length', () => {
    const text = 'GET /a?b=1 HTTP/1.1\r\nHost: x.test\r\nX-Two: a\r\nx-two:  b \r\n\r\nrest';
    const head = request(text);
    assert.equal(head.method, 'GET');
    assert.equal(head.target, '/a?b=1');
    assert.equal(head.minor, 1);
    assert.deepEqual(head.headers, [
      ['Host', 'x.test'],
      ['X-Two', 'a'],
      ['x-two', 'b'],
    ]);
    assert.equal(head.length, text.length - 'rest'.length);
  });

  test('an incomplete head waits; empty lines before the request line are skipped', () => {
    assert.equal(parseRequestHead(b('GET / HTTP/1.1\r\nHost: x'), 0), undefined);
    const head = request('\r\n\r\nGET / HTTP/1.0\r\n\r\n');
    assert.equal(head.minor, 0);
    assert.equal(head.length, 22);
  });

  test('a head larger than 64 KiB is refused with 431, complete or not', () => {
    const big = `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}`;
    refused(big, 431);
    refused(`${big}\r\n\r\n`, 431);
  });

  test('smuggling shapes are refused with 400 before any framing is chosen', () => {
    const cases = [
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n',
      'POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\nX-Bare: lf\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\rX-Bare: cr\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n',
      'GET / HTTP/1.1\r\n: no-name\r\n\r\n',
      'GET  / HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET / HTTP/2.0\r\nHost: x\r\n\r\n',
      'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n',
      'G(T / HTTP/1.1\r\nHost: x\r\n\r\n',
      // 0xA0 is obs-text, not whitespace: Node refuses these, an upstream may read an unknown coding.
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\xa0\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\xa0\r\n\r\n',
    ];
    for (const text of cases) refused(text);
  });

  test('request framing: none, one length (repeated equal values count once), or chunked last', () => {
    assert.deepEqual(requestFraming(request('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), { kind: 'none' });
    assert.deepEqual(requestFraming(request('POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n')), { kind: 'none' });
    assert.deepEqual(requestFraming(request('POST / HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 7, 7\r\n\r\n')), {
      kind: 'length',
      length: 7,
    });
    assert.deepEqual(requestFraming(request('POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n')), {
      kind: 'chunked',
    });
  });
});

describe('HTTP/1.x response heads', () => {
  test('status and framing by request method and status', () => {
    const head = parseResponseHead(b('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc'), 0);
    assert.ok(head);
    assert.equal(head.status, 200);
    assert.deepEqual(responseFraming(head, 'GET'), { kind: 'length', length: 3 });
    assert.deepEqual(responseFraming(head, 'HEAD'), { kind: 'none' });
    const noReason = parseResponseHead(b('HTTP/1.1 204\r\n\r\n'), 0);
    assert.ok(noReason);
    assert.deepEqual(responseFraming(noReason, 'GET'), { kind: 'none' });
    const chunked = parseResponseHead(b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), 0);
    assert.ok(chunked);
    assert.deepEqual(responseFraming(chunked, 'GET'), { kind: 'chunked' });
    // Both: bytes pass unchanged, so Content-Length cannot be dropped as RFC 9112 §6.3 asks: a 502 instead.
    const both = parseResponseHead(b('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'), 0);
    assert.ok(both);
    assert.throws(() => responseFraming(both, 'GET'), HttpMessageError);
    const untilClose = parseResponseHead(b('HTTP/1.0 200 OK\r\n\r\n'), 0);
    assert.ok(untilClose);
    assert.deepEqual(responseFraming(untilClose, 'GET'), { kind: 'close' });
  });

  test('garbage or a bad length from the upstream is a 502', () => {
    for (const text of [
      'SSH-2.0-OpenSSH\r\n\r\n',
      'HTTP/1.1 20 OK\r\n\r\n',
      'HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n',
    ]) {
      assert.throws(
        () => parseResponseHead(b(text), 0),
        (err: unknown) => err instanceof HttpMessageError && err.status === 502,
      );
    }
    const head = parseResponseHead(b('HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n'), 0);
    assert.ok(head);
    assert.throws(() => responseFraming(head, 'GET'), HttpMessageError);
  });
});

describe('body scanning', () => {
  const chunked = b('5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\nNEXT');
  const chunkedEnd = chunked.length - 'NEXT'.length;

  test('a chunked body ends after its trailers, wherever the pieces break', () => {
    for (const step of [1, 2, 3, 7, 64]) assert.equal(scanInPieces({ kind: 'chunked' }, chunked, step), chunkedEnd);
  });

  test('a length body ends after exactly its length; a close-delimited one never ends', () => {
    const body = b('0123456789NEXT');
    for (const step of [1, 4, 100]) assert.equal(scanInPieces({ kind: 'length', length: 10 }, body, step), 10);
    assert.equal(scanInPieces({ kind: 'close' }, body, 3), -1);
  });

  test('bad chunked coding is refused with 400', () => {
    const bad = [
      'zz\r\nhello\r\n0\r\n\r\n',
      '5\nhello\r\n0\r\n\r\n',
      '5\r\nhelloX\r\n0\r\n\r\n',
      '-5\r\nhello\r\n0\r\n\r\n',
      '10000000000000000\r\n',
      '5;ext=\x01\r\nhello\r\n0\r\n\r\n',
      '0\r\nBad Trailer\r\n\r\n',
      '0\r\nX-T: a\rb\r\n\r\n',
      '0\r\nX-T: a\x01b\r\n\r\n',
      '5 \r\nhello\r\n0\r\n\r\n',
      '20000000000000\r\n',
    ];
    for (const text of bad) {
      assert.throws(
        () => scanInPieces({ kind: 'chunked' }, b(text), 2),
        (err: unknown) => err instanceof HttpMessageError && err.status === 400,
        JSON.stringify(text),
      );
    }
  });
});

describe('pending bytes', () => {
  test('appended in pieces and consumed from the front, they read back in order; views handed out stay intact', () => {
    const pending = new PendingBytes();
    const whole = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\n');
    for (const byte of whole) pending.append(Buffer.from([byte]));
    assert.deepEqual(pending.view(), whole);
    const first = pending.view().subarray(0, 27);
    const copy = Buffer.from(first);
    pending.consume(27);
    pending.append(Buffer.from('Host: y\r\n\r\n'));
    assert.deepEqual(first, copy, 'bytes already passed on are not overwritten');
    assert.equal(pending.view().toString(), 'GET /2 HTTP/1.1\r\nHost: y\r\n\r\n');
    pending.consume(pending.length);
    assert.equal(pending.length, 0);
  });

  test('a head dribbled byte by byte is found once complete, searching on from where it left off', () => {
    const pending = new PendingBytes();
    const text = `GET / HTTP/1.1\r\nHost: x\r\nX-Long: ${'a'.repeat(20_000)}\r\n\r\n`;
    let scanned = 0;
    let head: ReturnType<typeof parseRequestHead>;
    for (const byte of Buffer.from(text)) {
      pending.append(Buffer.from([byte]));
      head = parseRequestHead(pending.view(), 0, scanned);
      if (head) break;
      scanned = pending.length;
    }
    assert.ok(head);
    assert.equal(head.length, text.length);
  });
});

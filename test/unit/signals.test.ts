import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { deriveTunnelKey } from '../../src/config/tunnel-key.js';
import {
  decodeHandshakeReply,
  encodeHandshakeReply,
  handshakeToken,
  verifyAuthorization,
} from '../../src/instance/handshake.js';
import { decodeSignal, encodeSignal, LineSplitter, SignalDecodeError } from '../../src/instance/signals.js';

describe('control signals', () => {
  test('{"action":"ping"} with key mypassword is the NodePass golden line', () => {
    assert.equal(encodeSignal({ action: 'ping' }, 'mypassword').toString('latin1'), 'FlsRAgcaGAFQXk8JGQ8UUQo=\n');
  });

  test('fields keep NodePass order and empty ones are left out', () => {
    const line = encodeSignal({ action: 'tcp', remote: '1.2.3.4:5', id: 'a1b2c3d4', fp: '' }, 'k');
    const json = Buffer.from(line.toString().trim(), 'base64').map((b) => b ^ 'k'.charCodeAt(0));
    assert.equal(Buffer.from(json).toString(), '{"action":"tcp","remote":"1.2.3.4:5","id":"a1b2c3d4"}');
  });

  test('every signal round-trips', () => {
    const key = deriveTunnelKey('', '10101');
    for (const s of [
      { action: 'tcp', remote: '[::1]:40000', id: '0a0b0c0d' },
      { action: 'udp', remote: '127.0.0.1:5353', id: 'ffffffff' },
      { action: 'pong' },
      { action: 'flush' },
      { action: 'verify', id: '12345678', fp: 'sha256:AB:CD' },
    ] as const) {
      assert.deepEqual(decodeSignal(encodeSignal(s, key).toString().trim(), key), s);
    }
  });

  test('a line under the wrong key, garbage or an unknown action is a SignalDecodeError', () => {
    const line = encodeSignal({ action: 'ping' }, 'right').toString().trim();
    assert.throws(() => decodeSignal(line, 'wrong'), SignalDecodeError);
    assert.throws(() => decodeSignal('***not base64***', 'k'), SignalDecodeError);
    assert.throws(() => decodeSignal(encodeSignal({ action: 'ping' }, 'k').toString().trim(), 'kx'), SignalDecodeError);
    const unknown = Buffer.from(Buffer.from('{"action":"reboot"}').map((b) => b ^ 'k'.charCodeAt(0))).toString(
      'base64',
    );
    assert.throws(() => decodeSignal(unknown, 'k'), /unknown signal action/);
  });

  test('LineSplitter yields whole lines across chunk boundaries and refuses endless ones', () => {
    const splitter = new LineSplitter(16);
    assert.deepEqual(splitter.push(Buffer.from('ab')), []);
    assert.deepEqual(splitter.push(Buffer.from('c\nde\n\nf')), ['abc', 'de']);
    assert.deepEqual(splitter.push(Buffer.from('g\n')), ['fg']);
    assert.throws(() => splitter.push(Buffer.alloc(17, 0x41)), /too long/);
  });
});

describe('handshake', () => {
  test('the token is hex HMAC-SHA256 of the empty message keyed with the tunnel key', () => {
    const key = deriveTunnelKey('', '10101');
    assert.equal(key, 'e68be2b4');
    assert.equal(handshakeToken(key), createHmac('sha256', 'e68be2b4').update('').digest('hex'));
    assert.equal(handshakeToken(key), '8940572756af096447802f92b4c843ac61de93b80af9d37a85ed994508656d7e');
    // Computed independently with Python's hmac module.
    assert.equal(handshakeToken('mypassword'), '470e375a2c2f21ec2a5ad8c54b19bb78c09adf5aeda0878ef97ec5dc04c5e904');
  });

  test('verifyAuthorization accepts exactly "Bearer <token>"', () => {
    const token = handshakeToken('k');
    assert.equal(verifyAuthorization(`Bearer ${token}`, 'k'), true);
    assert.equal(verifyAuthorization(`Bearer ${token}`, 'other'), false);
    assert.equal(verifyAuthorization(`bearer ${token}`, 'k'), false);
    assert.equal(verifyAuthorization(undefined, 'k'), false);
    assert.equal(verifyAuthorization('Bearer ', 'k'), false);
  });

  test('the reply body has NodePass field order and types', () => {
    assert.equal(
      encodeHandshakeReply({ flow: '-', max: 1024, tls: '1', type: '0' }),
      '{"flow":"-","max":1024,"tls":"1","type":"0"}\n',
    );
    assert.deepEqual(decodeHandshakeReply('{"flow":"+","max":8,"tls":"0","type":"0"}'), {
      flow: '+',
      max: 8,
      tls: '0',
      type: '0',
    });
    assert.throws(() => decodeHandshakeReply('{"flow":"x","max":8,"tls":"0","type":"0"}'), /unexpected fields/);
    assert.throws(() => decodeHandshakeReply('<html>'), /not JSON/);
  });
});

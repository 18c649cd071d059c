import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { backoffDelay } from '../../src/connector/keeper.js';
import {
  challengeResponse,
  encodeFrame,
  type Frame,
  FrameDecoder,
  MAX_FRAME,
  ProtocolError,
  readFrame,
} from '../../src/hub/protocol.js';
import { checkHttp, checkPort, checkPortMap, RuleError } from '../../src/hub/rules.js';

describe('hub protocol frames', () => {
  test('frames survive any split into chunks, in order', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder(
      (f) => frames.push(f),
      (e) => assert.fail(e),
    );
    const bytes = Buffer.concat([
      encodeFrame({ type: 'ping', t: 1 }),
      encodeFrame({ type: 'request', id: 7, op: 'allocate' }),
      encodeFrame({ type: 'pong', t: 2 }),
    ]);
    for (let i = 0; i < bytes.length; i += 3) decoder.push(bytes.subarray(i, i + 3));
    assert.deepEqual(frames, [
      { v: 1, type: 'ping', t: 1 },
      { v: 1, type: 'request', id: 7, op: 'allocate' },
      { v: 1, type: 'pong', t: 2 },
    ]);
  });

  test('oversized, non-JSON, versionless and typeless frames are protocol errors, reported once', () => {
    const bad = (body: Buffer | string, big = false) => {
      const errors: ProtocolError[] = [];
      const decoder = new FrameDecoder(
        () => assert.fail('no frame expected'),
        (e) => errors.push(e),
      );
      const b = typeof body === 'string' ? Buffer.from(body) : body;
      const head = Buffer.alloc(4);
      head.writeUInt32BE(big ? MAX_FRAME + 1 : b.length);
      decoder.push(Buffer.concat([head, b]));
      decoder.push(encodeFrame({ type: 'ping', t: 1 }));
      assert.equal(errors.length, 1);
      assert.ok(errors[0] instanceof ProtocolError);
      return errors[0]?.message ?? '';
    };
    assert.match(bad('', true), /exceeds/);
    assert.match(bad('{nope'), /not JSON/);
    assert.match(bad('[1]'), /not an object/);
    assert.match(bad('{"type":"ping"}'), /version undefined/);
    assert.match(bad('{"v":2,"type":"ping"}'), /version 2/);
    assert.match(bad('{"v":1}'), /without a type/);
  });

  test('readFrame leaves the bytes after the frame for the next reader', async () => {
    const stream = new PassThrough();
    stream.write(
      Buffer.concat([
        encodeFrame({ type: 'connect', transport: 'tcp', destination: '', dstPort: 5 }),
        Buffer.from('payload'),
      ]),
    );
    const frame = await readFrame(stream, 1000);
    assert.equal(frame.type, 'connect');
    // readFrame leaves the stream paused (the next owner resumes it, as the relay does).
    const rest = await new Promise<Buffer>((resolve) => {
      stream.once('data', resolve);
      stream.resume();
    });
    assert.equal(rest.toString(), 'payload');
    await assert.rejects(readFrame(new PassThrough(), 50), /no frame within 50ms/);
  });

  test('challenge response binds the nonce and the tunnel id', () => {
    const mac = challengeResponse('s'.repeat(64), 'n1', 't1');
    assert.match(mac, /^[0-9a-f]{64}$/);
    assert.notEqual(mac, challengeResponse('s'.repeat(64), 'n2', 't1'));
    assert.notEqual(mac, challengeResponse('s'.repeat(64), 'n1', 't2'));
    assert.notEqual(mac, challengeResponse('x'.repeat(64), 'n1', 't1'));
  });
});

describe('connector reconnect backoff', () => {
  const policy = { initialDelay: 100, maxDelay: 1000, maxRetries: 0 };
  test('doubles per attempt up to maxDelay, with jitter in [d/2, d]', () => {
    assert.equal(
      backoffDelay(policy, 0, () => 1),
      100,
    );
    assert.equal(
      backoffDelay(policy, 0, () => 0),
      50,
    );
    assert.equal(
      backoffDelay(policy, 3, () => 1),
      800,
    );
    assert.equal(
      backoffDelay(policy, 4, () => 1),
      1000,
    );
    assert.equal(
      backoffDelay(policy, 50, () => 0),
      500,
    );
  });
});

describe('traffic rule validation (Port, PortMap, Http)', () => {
  test('ports: cleared and forwarding rules normalize; half rules and bad hosts are refused', () => {
    assert.deepEqual(checkPort({ port: 22000 }), { port: 22000, destination: '', dstPort: 0 });
    assert.deepEqual(checkPort({ port: 22000, destination: ' db.local ', dstPort: 5432 }), {
      port: 22000,
      destination: 'db.local',
      dstPort: 5432,
    });
    assert.throws(() => checkPort({ port: 22000, dstPort: 1 }), RuleError);
    assert.throws(() => checkPort({ port: 0, destination: 'a', dstPort: 1 }), RuleError);
    assert.throws(() => checkPort({ port: 22000, destination: 'a', dstPort: 1, extra: 1 }), RuleError);
    assert.throws(() => checkPort({ port: 22000, destination: 'http://a', dstPort: 1 }), RuleError);
  });

  test('portmaps: port or listenPort (they must agree), tcp default', () => {
    assert.deepEqual(checkPortMap({ listenPort: 15001, dstPort: 22132 }), {
      port: 15001,
      dstPort: 22132,
      destination: '',
      transport: 'tcp',
      label: '',
    });
    assert.throws(() => checkPortMap({ port: 1, listenPort: 2, dstPort: 3 }), /disagree/);
    assert.throws(() => checkPortMap({ dstPort: 3 }), /required/);
    assert.throws(() => checkPortMap({ port: 1, dstPort: 3, transport: 'quic' }), RuleError);
  });

  test('https sites: an upstream, webRoot or redirect is needed; URLs are checked', () => {
    assert.ok(checkHttp({ domain: 'a.example.com', upstreamURL: 'https://127.0.0.1:8443' }));
    assert.ok(checkHttp({ domain: 'a.example.com', webRoot: '/srv/www' }));
    assert.ok(checkHttp({ domain: 'a.example.com', destination: '127.0.0.1', port: 8080 }));
    assert.throws(() => checkHttp({ domain: 'a.example.com' }), /needs/);
    assert.throws(() => checkHttp({ domain: '1.2.3.4', webRoot: '/x' }), /not a host name/);
    assert.throws(() => checkHttp({ domain: 'a.example.com', upstreamURL: 'nope' }), /not a URL/);
    assert.throws(() => checkHttp({ domain: 'a.example.com', redirectURL: '::' }), /not a URL/);
  });
});

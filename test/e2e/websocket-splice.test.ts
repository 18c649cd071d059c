import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { loadSpliceAddon, spliceUnavailableReason } from '../../src/tunnel/splice-relay.js';
import { connectTcp, freePort, sleep } from '../helpers/net.js';
import { HandWebSocketPool, nodepassHandshake, webSocketFrame } from '../helpers/nodepass-peer.js';
import { type PortholeProcess, spawnPorthole } from '../helpers/porthole.js';

// Type 2 (WebSocket) pools with tls=0 relayed by the native splice addon, which then parses and writes the WebSocket
// frames itself (native/splice-relay, docs/splice-relay.md): real `porthole` processes on loopback, real bytes, the
// native path asserted active (its debug line) or off (PORTHOLE_SPLICE=0). A hand-spoken NodePass-style client covers
// what porthole never sends: random masking keys, fragmented messages, pings, garbage, a peer vanishing mid-frame.

const FAST = { NP_REPORT_INTERVAL: '500ms', NP_SERVICE_COOLDOWN: '300ms' };
const KEY = 'wsnative';
const NATIVE = /relayed natively \(splice\)/g;
const IN_JS = /relayed in JS: .*/g;
const OFF = { PORTHOLE_SPLICE: '0' };

const expectAddon = process.platform === 'linux' && process.env.PORTHOLE_SKIP_NATIVE !== '1';
const skip = loadSpliceAddon() !== undefined ? false : `splice addon not available: ${spliceUnavailableReason()}`;
if (expectAddon) assert.equal(skip, false, 'the splice addon must be built here (npm run build:native)');

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Bounds a promise in time, saying what did not happen. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms}ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A target that reads a whole upload, and only after the user's FIN answers with the upload's sha256 (64 hex + '\n')
 * and then `download` bytes, and ends: every answer byte crosses the tunnel after the up direction was half-closed.
 */
interface BulkTarget {
  port: number;
  /** What each connection received, in order of their FINs. */
  received: Buffer[];
  /** Connections that closed (after FIN or reset). */
  closed: number;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

async function bulkTarget(download: Buffer): Promise<BulkTarget> {
  const target: BulkTarget = {
    port: 0,
    received: [],
    closed: 0,
    sockets: new Set(),
    close: async () => {},
  };
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    target.sockets.add(socket);
    socket.on('error', () => {});
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      const all = Buffer.concat(chunks);
      target.received.push(all);
      socket.write(`${sha(all)}\n`);
      socket.end(download);
    });
    socket.on('close', () => {
      target.closed += 1;
      target.sockets.delete(socket);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  target.port = (server.address() as { port: number }).port;
  target.close = async () => {
    for (const s of target.sockets) s.destroy();
    server.close();
    await once(server, 'close');
  };
  return target;
}

/** Uploads `payload`, half-closes, and reads the answer until the tunnel closes the connection. */
async function roundTrip(port: number, payload: Buffer, ms = 60_000): Promise<Buffer> {
  const socket = await connectTcp(port);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.end(payload);
  try {
    await within(once(socket, 'close'), ms, 'the answer');
  } finally {
    socket.destroy();
  }
  return Buffer.concat(chunks);
}

interface Tunnel {
  server: PortholeProcess;
  client: PortholeProcess;
  /** Where users connect: the client is the ingress, the server dials the target. */
  port: number;
  stop(): Promise<void>;
}

/**
 * server://…?mode=2&type=2&tls=0 dialing `targetPort`, client:// as the ingress; each with its own environment, both
 * with the URL parameters in `params` (e.g. `&read=1s`).
 */
async function wsTunnel(
  targetPort: number,
  serverEnv: Record<string, string> = {},
  clientEnv: Record<string, string> = {},
  params = '',
): Promise<Tunnel> {
  const tunnelPort = await freePort();
  const userPort = await freePort();
  const server = spawnPorthole(
    [`server://${KEY}@127.0.0.1:${tunnelPort}/127.0.0.1:${targetPort}?mode=2&type=2&tls=0&log=debug${params}`],
    { ...FAST, ...serverEnv },
  );
  await server.ready;
  const client = spawnPorthole(
    [`client://${KEY}@127.0.0.1:${tunnelPort}/127.0.0.1:${userPort}?mode=2&min=4&log=debug${params}`],
    {
      ...FAST,
      ...clientEnv,
    },
  );
  const stop = async () => {
    const codes = await Promise.all([client.stop(), server.stop()]);
    assert.deepEqual(codes, [0, 0], 'both processes exit 0 on SIGTERM');
  };
  try {
    await Promise.all([server.waitFor(/Tunnel ready/, 10_000), client.waitFor(/Tunnel ready/, 10_000)]);
  } catch (err) {
    await Promise.all([client.stop(), server.stop()]);
    throw err;
  }
  return { server, client, port: userPort, stop };
}

/** How many lines of `p`'s output match `pattern` (a /g regex). */
const count = (p: PortholeProcess, pattern: RegExp) => (p.output().match(pattern) ?? []).length;

/**
 * Waits until `p` has logged `n` lines matching `pattern`: its log reaches us through a pipe, which may lag behind
 * the bytes of the session it describes.
 */
async function logged(p: PortholeProcess, pattern: RegExp, n: number, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (count(p, pattern) < n && Date.now() < deadline) await sleep(20);
  assert.ok(count(p, pattern) >= n, `${what}; the relay says: ${p.output().match(IN_JS) ?? 'nothing'}`);
}

/** Waits for the process's counters to reach `bytes` (rx + tx), the native counters flush once a second. */
async function countersReach(p: PortholeProcess, bytes: number): Promise<void> {
  const total = () => {
    const last = p.stats.at(-1);
    return last === undefined ? 0 : last.tcprx + last.tcptx;
  };
  const deadline = Date.now() + 5000;
  while (total() < bytes && Date.now() < deadline) await sleep(100);
  assert.ok(total() >= bytes, `counters ${total()} < ${bytes}`);
}

describe('WebSocket pool (type 2, tls=0) carried by the native relay', { skip }, () => {
  const download = randomBytes(24 * 1024 * 1024);
  let target: BulkTarget;
  before(async () => {
    target = await bulkTarget(download);
  });
  after(async () => {
    await target.close();
  });

  const expected = (upload: Buffer) => Buffer.concat([Buffer.from(`${sha(upload)}\n`), download]);

  test('both ends native: 48 MiB up, then 24 MiB down after the half-close, sha256-equal; counters count it', async () => {
    const tunnel = await wsTunnel(target.port);
    try {
      const upload = randomBytes(48 * 1024 * 1024);
      const answer = await roundTrip(tunnel.port, upload);
      assert.equal(answer.length, 65 + download.length);
      assert.equal(sha(answer), sha(expected(upload)));
      await logged(tunnel.client, NATIVE, 1, 'the ingress (WebSocket client) relays natively');
      await logged(tunnel.server, NATIVE, 1, 'the egress (WebSocket server) relays natively');
      await countersReach(tunnel.client, upload.length + download.length);
      await countersReach(tunnel.server, upload.length + download.length);
      // Several sessions in a row on fresh members, and a small one (a single frame each way).
      for (const size of [1, 1000, 300_000]) {
        const small = randomBytes(size);
        assert.equal(sha(await roundTrip(tunnel.port, small)), sha(expected(small)));
      }
    } finally {
      await tunnel.stop();
    }
  });

  test('a native end interoperates with the JS (ws) end either way round: random masking keys, zero keys', async () => {
    // Server native, client on ws: the client masks with random keys, which the addon unmasks in C.
    // Server on ws, client native: the addon masks with the zero key, which ws accepts as any key.
    for (const [serverEnv, clientEnv, nativeSide] of [
      [{}, OFF, 'server'],
      [OFF, {}, 'client'],
    ] as const) {
      const tunnel = await wsTunnel(target.port, serverEnv, clientEnv);
      try {
        const upload = randomBytes(16 * 1024 * 1024);
        assert.equal(sha(await roundTrip(tunnel.port, upload)), sha(expected(upload)));
        const [native, js] = nativeSide === 'server' ? [tunnel.server, tunnel.client] : [tunnel.client, tunnel.server];
        await logged(native, NATIVE, 1, `${nativeSide} relays natively`);
        await logged(js, IN_JS, 1, 'PORTHOLE_SPLICE=0 keeps the other end on ws');
        assert.equal(count(js, NATIVE), 0);
      } finally {
        await tunnel.stop();
      }
    }
  });

  test('PORTHOLE_SPLICE=0 on both ends: the JS path carries the same bytes', async () => {
    const tunnel = await wsTunnel(target.port, OFF, OFF);
    try {
      const upload = randomBytes(8 * 1024 * 1024);
      assert.equal(sha(await roundTrip(tunnel.port, upload)), sha(expected(upload)));
      await logged(tunnel.client, /relayed in JS: turned off by PORTHOLE_SPLICE=0/g, 1, 'the ingress stays in JS');
      await logged(tunnel.server, /relayed in JS: turned off by PORTHOLE_SPLICE=0/g, 1, 'the egress stays in JS');
      assert.equal(count(tunnel.client, NATIVE) + count(tunnel.server, NATIVE), 0);
    } finally {
      await tunnel.stop();
    }
  });
});

describe('tunnel parameters on the native WebSocket path', { skip }, () => {
  let echo: Server;
  let echoPort: number;
  before(async () => {
    echo = createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    echoPort = (echo.address() as { port: number }).port;
  });
  after(async () => {
    echo.close();
  });

  /** Sends `text` and resolves with the echo of it. */
  async function echoOf(socket: Socket, text: string): Promise<string> {
    let got = '';
    const onData = (c: Buffer) => {
      got += c.toString();
    };
    socket.on('data', onData);
    socket.write(text);
    const deadline = Date.now() + 5000;
    while (got.length < text.length && Date.now() < deadline) await sleep(10);
    socket.off('data', onData);
    return got;
  }

  test('read=1s: the addon closes an idle session and keeps a busy one', async () => {
    const tunnel = await wsTunnel(echoPort, {}, {}, '&read=1s');
    try {
      const idle = await connectTcp(tunnel.port);
      idle.on('error', () => {});
      const busy = await connectTcp(tunnel.port);
      // The tunnel ends the idle session: its FIN (our socket is half-open, so 'end', not 'close'), or a reset.
      const idleClosed = new Promise<number>((resolve) => {
        idle.once('end', () => resolve(Date.now()));
        idle.once('close', () => resolve(Date.now()));
      });
      assert.equal(await echoOf(idle, 'hello'), 'hello');
      const quietSince = Date.now();
      // The busy one talks every 300 ms for 2.5 s: well inside the timeout each time.
      for (let i = 0; i < 8; i++) {
        assert.equal(await echoOf(busy, `tick ${i}`), `tick ${i}`);
        await sleep(300);
      }
      const closedAt = await within(idleClosed, 5000, 'the idle session closing');
      assert.ok(closedAt - quietSince >= 900, `closed after ${closedAt - quietSince} ms of silence`);
      assert.equal(busy.destroyed, false, 'the busy session is still open');
      assert.equal(await echoOf(busy, 'still here'), 'still here');
      busy.destroy();
      await logged(tunnel.client, NATIVE, 2, 'both sessions relayed natively at the ingress');
    } finally {
      await tunnel.stop();
    }
  });

  test('rate= paces in JS: a rate-limited WebSocket tunnel stays on the JS path and carries the bytes intact', async () => {
    const tunnel = await wsTunnel(echoPort, {}, {}, '&rate=200');
    try {
      const payload = randomBytes(2 * 1024 * 1024);
      const socket = await connectTcp(tunnel.port);
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.end(payload);
      await within(once(socket, 'end'), 20_000, 'the echo');
      assert.equal(sha(Buffer.concat(chunks)), sha(payload));
      await logged(tunnel.client, /relayed in JS: rate limited/g, 1, 'the ingress says why it stays in JS');
      assert.equal(count(tunnel.client, NATIVE) + count(tunnel.server, NATIVE), 0);
      socket.destroy();
    } finally {
      await tunnel.stop();
    }
  });
});

describe('the native WebSocket relay against a hand-spoken NodePass-style client', { skip }, () => {
  let server: PortholeProcess;
  let pool: HandWebSocketPool;
  let echoed: { port: number; sockets: Set<Socket>; connections: Promise<void>[]; close(): Promise<void> };

  before(async () => {
    // The egress target: echoes, passes the FIN on, and records when each connection is closed.
    const sockets = new Set<Socket>();
    const connections: Promise<void>[] = []; // one per target connection, settled when it closes
    const echo = createServer({ allowHalfOpen: true }, (socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      connections.push(once(socket, 'close').then(() => {}));
      socket.pipe(socket);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    echoed = {
      port: (echo.address() as { port: number }).port,
      sockets,
      connections,
      close: async () => {
        for (const s of sockets) s.destroy();
        echo.close();
        await once(echo, 'close');
      },
    };
    const tunnelPort = await freePort();
    server = spawnPorthole(
      [`server://${KEY}@127.0.0.1:${tunnelPort}/127.0.0.1:${echoed.port}?mode=2&type=2&tls=0&log=debug`],
      FAST,
    );
    await server.ready;
    assert.equal((await nodepassHandshake(tunnelPort, KEY)).status, 200);
    pool = await HandWebSocketPool.open(tunnelPort, KEY);
    await server.waitFor(/Tunnel ready/, 10_000);
  });
  after(async () => {
    pool?.close();
    const code = await server?.stop();
    await echoed?.close();
    assert.equal(code, 0);
  });

  /** A pool member with a session signalled on it: the server has dialled the echo target for it. */
  async function session() {
    const member = await pool.member();
    const sessionsBefore = echoed.connections.length;
    pool.send({ action: 'tcp', remote: '127.0.0.1:40000', id: member.id });
    const deadline = Date.now() + 5000;
    while (echoed.connections.length === sessionsBefore && Date.now() < deadline) await sleep(10);
    assert.equal(echoed.connections.length, sessionsBefore + 1, 'the server dialled the target');
    return { ...member, targetClosed: echoed.connections.at(-1) as Promise<void> };
  }

  /** The server is still serving: a fresh session echoes a message. */
  async function stillServes(): Promise<void> {
    const { socket, reader } = await session();
    socket.write(webSocketFrame(0x2, Buffer.from('still there'), { mask: randomBytes(4) }));
    await reader.until(() => reader.data().toString() === 'still there', 5000, 'the echo');
    socket.destroy();
  }

  test('masked frames with random keys, fragmented messages, headers split across writes, a ping: echoed intact', async () => {
    const { socket, reader } = await session();
    const sent: Buffer[] = [];
    // Sizes that take each length encoding (7-bit, 16-bit, 64-bit), each frame with its own random key.
    for (const size of [1, 125, 126, 65535, 65536, 1_000_000]) {
      const payload = randomBytes(size);
      sent.push(payload);
      socket.write(webSocketFrame(0x2, payload, { mask: randomBytes(4) }));
    }
    // A message in three fragments (binary, continuation, continuation + FIN), with a ping between two of them.
    const parts = [randomBytes(3000), randomBytes(70_000), randomBytes(7)];
    sent.push(...parts);
    socket.write(webSocketFrame(0x2, parts[0] as Buffer, { mask: randomBytes(4), fin: false }));
    socket.write(webSocketFrame(0x9, Buffer.from('are you there'), { mask: randomBytes(4) }));
    socket.write(webSocketFrame(0x0, parts[1] as Buffer, { mask: randomBytes(4), fin: false }));
    socket.write(webSocketFrame(0x0, parts[2] as Buffer, { mask: randomBytes(4) }));
    // One frame written a byte at a time for its header and a few bytes of payload: partial reads in the addon.
    const slow = randomBytes(300);
    sent.push(slow);
    const frame = webSocketFrame(0x2, slow, { mask: randomBytes(4) });
    for (let i = 0; i < 12; i++) {
      socket.write(frame.subarray(i, i + 1));
      await sleep(5);
    }
    socket.write(frame.subarray(12));
    const all = Buffer.concat(sent);
    await reader.until(() => reader.data().length >= all.length, 20_000, 'the echo of everything');
    assert.equal(sha(reader.data()), sha(all));
    // The server's frames: binary and unmasked (RFC 6455 §5.1), and a pong with the ping's payload.
    const pong = reader.frames.find((f) => f.opcode === 0xa);
    assert.equal(pong?.payload.toString(), 'are you there');
    for (const f of reader.frames) {
      assert.equal(f.mask, undefined, 'server frames are not masked');
      assert.ok(f.opcode === 0x2 || f.opcode === 0xa, `opcode ${f.opcode}`);
    }
    await logged(server, NATIVE, 1, 'relayed natively');

    // Half-close: our empty binary message is the FIN; the echo passes it back as an empty message, then the server
    // closes the WebSocket with 1000 and waits for our Close.
    socket.write(webSocketFrame(0x2, Buffer.alloc(0), { mask: randomBytes(4) }));
    await reader.until(() => reader.frames.some((f) => f.opcode === 0x8), 5000, 'the Close frame');
    const dataFrames = reader.frames.filter((f) => f.opcode === 0x2);
    assert.equal(dataFrames.at(-1)?.payload.length, 0, 'an empty binary message ends the stream');
    assert.deepEqual(reader.frames.find((f) => f.opcode === 0x8)?.payload, Buffer.from([0x03, 0xe8]));
    socket.write(webSocketFrame(0x8, Buffer.from([0x03, 0xe8]), { mask: randomBytes(4) }));
    await within(once(socket, 'close'), 5000, 'the server closing the socket');
  });

  test('frames sent before the session is signalled wait in the parked member and arrive intact, in order', async () => {
    // The server's member is parked: what arrives before the relay starts stays unparsed in its socket (handed to
    // the addon's parser) or in the kernel, never half-parsed in ws (which would keep the session in JS).
    const member = await pool.member();
    const early = [randomBytes(10), randomBytes(40_000), randomBytes(200_000)];
    for (const payload of early) member.socket.write(webSocketFrame(0x2, payload, { mask: randomBytes(4) }));
    await sleep(200);
    const before = count(server, NATIVE);
    pool.send({ action: 'tcp', remote: '127.0.0.1:40000', id: member.id });
    const late = randomBytes(5000);
    await member.reader.until(() => member.reader.data().length > 0, 5000, 'the first echo');
    member.socket.write(webSocketFrame(0x2, late, { mask: randomBytes(4) }));
    const all = Buffer.concat([...early, late]);
    await member.reader.until(() => member.reader.data().length >= all.length, 10_000, 'the echo of everything');
    assert.equal(sha(member.reader.data()), sha(all));
    await logged(server, NATIVE, before + 1, 'relayed natively');
    member.socket.destroy();
  });

  test('our Close ends the session: the target gets its FIN and the server answers the Close', async () => {
    const { socket, reader, targetClosed } = await session();
    socket.write(webSocketFrame(0x2, Buffer.from('last words'), { mask: randomBytes(4) }));
    await reader.until(() => reader.data().toString() === 'last words', 5000, 'the echo');
    socket.write(webSocketFrame(0x8, Buffer.from([0x03, 0xe8]), { mask: randomBytes(4) }));
    await reader.until(() => reader.frames.some((f) => f.opcode === 0x8), 5000, 'the answering Close');
    await within(targetClosed, 5000, 'the target connection closing');
    socket.destroy();
  });

  for (const [name, frame] of [
    ['reserved bits set', webSocketFrame(0x2, Buffer.from('x'), { mask: randomBytes(4), rsv: 4 })],
    ['an unknown opcode', webSocketFrame(0x3, Buffer.from('x'), { mask: randomBytes(4) })],
    ['a text message', webSocketFrame(0x1, Buffer.from('x'), { mask: randomBytes(4) })],
    ['an unmasked client frame', webSocketFrame(0x2, Buffer.from('x'))],
    ['a continuation without a message', webSocketFrame(0x0, Buffer.from('x'), { mask: randomBytes(4) })],
    ['plain garbage', Buffer.from('GET / HTTP/1.1\r\n\r\n')],
  ] as const) {
    test(`${name} ends that session only: the target connection closes, the process serves on`, async () => {
      const { socket, reader, targetClosed } = await session();
      // A valid frame first, so the session is running natively when the bad one arrives.
      socket.write(webSocketFrame(0x2, Buffer.from('ok'), { mask: randomBytes(4) }));
      await reader.until(() => reader.data().toString() === 'ok', 5000, 'the echo');
      // Closed by a FIN or a reset (the server drops the connection, as ws's terminate() does).
      const memberClosed = new Promise((resolve) => socket.once('close', resolve));
      socket.write(frame);
      await within(targetClosed, 5000, 'the target connection closing');
      await within(memberClosed, 5000, 'the member socket closing');
      await stillServes();
    });
  }

  test('a peer that vanishes mid-frame ends that session only', async () => {
    const { socket, reader, targetClosed } = await session();
    socket.write(webSocketFrame(0x2, Buffer.from('ok'), { mask: randomBytes(4) }));
    await reader.until(() => reader.data().toString() === 'ok', 5000, 'the echo');
    // A header announcing 100 000 bytes, 10 of them, then the connection is gone.
    socket.write(webSocketFrame(0x2, randomBytes(100_000), { mask: randomBytes(4) }).subarray(0, 4 + 8 + 4 + 10));
    await sleep(50);
    socket.destroy();
    await within(targetClosed, 5000, 'the target connection closing');
    await stillServes();
    assert.equal(server.proc.exitCode, null, 'the server runs on');
  });
});

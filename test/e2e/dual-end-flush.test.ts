import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { connectTcp, freePort, readBytes, sleep } from '../helpers/net.js';
import { HandControlChannel, nodepassHandshake } from '../helpers/nodepass-peer.js';
import { type PortholeProcess, spawnPorthole } from '../helpers/porthole.js';

// NodePass's `flush` (docs/protocol.md §2.4, §3.3): an egress whose signalled pool connections go missing tells the
// peer to drop every idle member, and drops its own. Checked against a real `porthole server://` (mode 2: the egress)
// with the client spoken by hand.

const KEY = 'flushkey';
const ENV = { NP_REPORT_INTERVAL: '400ms', NP_SERVICE_COOLDOWN: '300ms', NP_POOL_GET_TIMEOUT: '300ms' };

/** A server (the egress), a hand-made control channel and one idle pool member from the "client". */
async function egressWithOneMember(): Promise<{
  server: PortholeProcess;
  control: HandControlChannel;
  member: Socket;
}> {
  const port = await freePort();
  const target = await freePort();
  const server = spawnPorthole([`server://${KEY}@127.0.0.1:${port}/127.0.0.1:${target}?mode=2&log=debug`], ENV);
  await server.ready;
  assert.equal((await nodepassHandshake(port, KEY)).status, 200);
  const controlSocket = await connectTcp(port);
  assert.equal((await readBytes(controlSocket, 4)).toString('hex'), '00000000');
  const control = new HandControlChannel(controlSocket, KEY);
  const member = await connectTcp(port);
  member.on('error', () => {});
  assert.equal((await readBytes(member, 4)).length, 4);
  return { server, control, member };
}

/** Resolves true when the other end closes `socket` within `ms` (watch from before the close can happen). */
function closedBy(socket: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const closed = () => {
      clearTimeout(timer);
      resolve(true);
    };
    // Half-open sockets (connectTcp): the peer's FIN is 'end', its reset 'close'.
    socket.once('end', closed);
    socket.once('close', closed);
    socket.resume();
  });
}

test('an egress whose signalled pool connections go missing sends flush and closes its idle members', async () => {
  const { server, control, member } = await egressWithOneMember();
  const memberClosed = closedBy(member, 8000);
  try {
    // A healthy tunnel never flushes: three health checks pass in silence.
    await sleep(1300);
    assert.deepEqual(
      control.signals.filter((s) => s.action === 'flush'),
      [],
    );
    assert.equal(member.destroyed, false, 'the idle member is still open');
    // An id that never arrives: the egress's lookup fails (one miss > half of one idle member, rounded down).
    control.send({ action: 'tcp', remote: '127.0.0.1:40000', id: 'deadbeef' });
    await control.waitFor('flush', 3000);
    assert.ok(await memberClosed, 'the idle member was closed by the flush');
    await server.waitFor(/flushing 1 idle on both ends/);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test("a flush from the peer closes this end's idle members and is not echoed", async () => {
  const { server, control, member } = await egressWithOneMember();
  const memberClosed = closedBy(member, 3000);
  try {
    control.send({ action: 'flush' });
    assert.ok(await memberClosed, 'the idle member was closed');
    await sleep(900);
    assert.deepEqual(
      control.signals.filter((s) => s.action === 'flush'),
      [],
    );
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

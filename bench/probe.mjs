#!/usr/bin/env node
// One readiness probe through a relay or tunnel in front of bench/echo-server.mjs: connects to PORT, sends a small
// message and checks the echo. Exits 0 when the exchange succeeded, 1 otherwise (refused, closed early, wrong echo,
// no answer within TIMEOUT_MS). bench/run.sh calls it in a loop until a freshly started tunnel carries traffic.
//
//   node bench/probe.mjs PORT once|stream [TIMEOUT_MS=3000]
//
// once:   the "echo once and close" server: the 16 bytes must come back, then the close.
// stream: the streaming echo server: the 64 bytes must come back.
import { connect } from 'node:net';

const port = Number(process.argv[2]);
const kind = process.argv[3];
const timeout = Number(process.argv[4] ?? 3000);
if (!Number.isInteger(port) || (kind !== 'once' && kind !== 'stream') || !(timeout > 0)) {
  process.stderr.write('usage: probe.mjs PORT once|stream [TIMEOUT_MS]\n');
  process.exit(2);
}

const message = kind === 'once' ? Buffer.from('porthole-probe!\n') : Buffer.alloc(64, 0x62);
const socket = connect({ host: '127.0.0.1', port, noDelay: true });
const received = [];
let size = 0;

const finish = (ok, why) => {
  if (!ok) process.stderr.write(`probe ${port} ${kind}: ${why}\n`);
  socket.destroy();
  process.exit(ok ? 0 : 1);
};
const echoed = () => size === message.length && Buffer.concat(received).equals(message);

setTimeout(() => finish(false, `no echo within ${timeout} ms`), timeout).unref();
socket.on('connect', () => socket.write(message));
socket.on('error', (err) => finish(false, err.message));
socket.on('data', (chunk) => {
  received.push(chunk);
  size += chunk.length;
  if (size > message.length) finish(false, 'more bytes than sent');
  if (kind === 'stream' && echoed()) finish(true);
});
socket.on('close', () => finish(kind === 'once' && echoed(), `closed after ${size} of ${message.length} bytes`));

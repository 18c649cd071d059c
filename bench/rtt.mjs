#!/usr/bin/env node
// Small-message round-trip latency: one TCP connection to a streaming echo server, ROUNDS sequential ping-pongs of
// SIZE bytes (the next ping is sent only when the whole previous one came back). Prints one JSON line with the
// median and p99 round trip in microseconds.
//
//   node bench/rtt.mjs PORT [ROUNDS=10000] [SIZE=64]
import { connect } from 'node:net';

const port = Number(process.argv[2]);
const rounds = Number(process.argv[3] ?? 10000);
const size = Number(process.argv[4] ?? 64);
if (!Number.isInteger(port) || !(rounds > 0) || !(size > 0)) {
  process.stderr.write('usage: rtt.mjs PORT [ROUNDS] [SIZE]\n');
  process.exit(2);
}

const WARMUP = 500;
const payload = Buffer.alloc(size, 0x61);
const samples = new Float64Array(rounds);

const socket = connect({ host: '127.0.0.1', port, noDelay: true });
socket.on('error', (err) => {
  process.stderr.write(`rtt: ${err.message}\n`);
  process.exit(1);
});

let round = -WARMUP;
let pending = 0;
let sentAt = 0n;

const ping = () => {
  pending = size;
  sentAt = process.hrtime.bigint();
  socket.write(payload);
};

socket.on('connect', ping);
socket.on('data', (chunk) => {
  pending -= chunk.length;
  if (pending > 0) return;
  if (pending < 0) {
    process.stderr.write('rtt: received more bytes than sent\n');
    process.exit(1);
  }
  const elapsed = process.hrtime.bigint() - sentAt;
  if (round >= 0) samples[round] = Number(elapsed) / 1000;
  round += 1;
  if (round < rounds) {
    ping();
    return;
  }
  samples.sort();
  const at = (q) => samples[Math.min(rounds - 1, Math.floor(q * rounds))];
  process.stdout.write(
    `${JSON.stringify({ rounds, size, medianUs: Number(at(0.5).toFixed(1)), p99Us: Number(at(0.99).toFixed(1)) })}\n`,
  );
  socket.destroy();
  process.exit(0);
});
socket.on('close', () => {
  if (round < rounds) {
    process.stderr.write(`rtt: connection closed after ${round} rounds\n`);
    process.exit(1);
  }
});

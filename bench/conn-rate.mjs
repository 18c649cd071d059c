#!/usr/bin/env node
// Connection rate: opens COUNT short TCP connections (CONCURRENCY at a time) to an "echo once and close" server.
// Each connection sends a 16-byte message, must get the same 16 bytes back, and counts when the server's close has
// arrived. Prints one JSON line: {"connections":N,"failed":F,"seconds":S,"perSecond":R}.
//
//   node bench/conn-rate.mjs PORT [COUNT=2000] [CONCURRENCY=50]
import { connect } from 'node:net';

const port = Number(process.argv[2]);
const count = Number(process.argv[3] ?? 2000);
const concurrency = Number(process.argv[4] ?? 50);
if (!Number.isInteger(port) || !(count > 0) || !(concurrency > 0)) {
  process.stderr.write('usage: conn-rate.mjs PORT [COUNT] [CONCURRENCY]\n');
  process.exit(2);
}

const MESSAGE = Buffer.from('porthole-bench!\n'); // 16 bytes
const PER_CONNECTION_TIMEOUT = 5000;

function one() {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    const received = [];
    let size = 0;
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), PER_CONNECTION_TIMEOUT);
    socket.on('connect', () => socket.write(MESSAGE));
    socket.on('data', (chunk) => {
      received.push(chunk);
      size += chunk.length;
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(size === MESSAGE.length && Buffer.concat(received).equals(MESSAGE)));
  });
}

let started = 0;
let failed = 0;
async function worker() {
  while (started < count) {
    started += 1;
    if (!(await one())) failed += 1;
  }
}

// Warm up the path (JIT, first accept) so the timed part measures the steady state.
for (let i = 0; i < 20; i += 1) await one();

const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const ok = count - failed;
process.stdout.write(
  `${JSON.stringify({ connections: count, failed, seconds: Number(seconds.toFixed(4)), perSecond: Math.round(ok / seconds) })}\n`,
);
process.exit(failed > 0 ? 1 : 0);

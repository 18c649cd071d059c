#!/usr/bin/env node
// Loopback echo servers for the benchmarks (plain Node, no dependencies).
//
//   node bench/echo-server.mjs ONCE_PORT STREAM_PORT
//
// ONCE_PORT:   reads one small message (up to 64 bytes or the first chunk), echoes it and closes (used by conn-rate.mjs).
// STREAM_PORT: echoes every byte for as long as the connection lives (used by rtt.mjs).
// Both listen on 127.0.0.1 only. Exits on SIGTERM/SIGINT.
import { createServer } from 'node:net';

const [oncePort, streamPort] = process.argv.slice(2).map(Number);
if (!Number.isInteger(oncePort) || !Number.isInteger(streamPort)) {
  process.stderr.write('usage: echo-server.mjs ONCE_PORT STREAM_PORT\n');
  process.exit(2);
}

const once = createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => {});
  socket.once('data', (chunk) => {
    socket.end(chunk);
  });
});

const stream = createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => {});
  socket.pipe(socket);
});

for (const [server, port] of [
  [once, oncePort],
  [stream, streamPort],
]) {
  server.on('error', (err) => {
    process.stderr.write(`echo-server: ${err.message}\n`);
    process.exit(1);
  });
  server.listen({ host: '127.0.0.1', port, backlog: 1024 });
}

const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

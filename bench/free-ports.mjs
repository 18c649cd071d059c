#!/usr/bin/env node
// Prints COUNT ports (space separated) that are free on 127.0.0.1 for both TCP and UDP, scanning upward from BASE.
// BASE defaults to 25100: below Linux's ephemeral range (32768+), so outgoing connections cannot take a port between
// this check and the moment the benchmark binds it.
//
//   node bench/free-ports.mjs COUNT [BASE=25100]
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

const count = Number(process.argv[2]);
const base = Number(process.argv[3] ?? 25100);

function tcpFree(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function udpFree(port) {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind({ address: '127.0.0.1', port, exclusive: true }, () => socket.close(() => resolve(true)));
  });
}

const ports = [];
for (let port = base; port < 65536 && ports.length < count; port += 1) {
  if ((await tcpFree(port)) && (await udpFree(port))) ports.push(port);
}
if (ports.length < count) {
  process.stderr.write(`free-ports: found only ${ports.length} of ${count} free ports from ${base}\n`);
  process.exit(1);
}
process.stdout.write(`${ports.join(' ')}\n`);

#!/usr/bin/env node
// A minimal one-hop TCP relay for bench/splice-ab.mjs: listens on 127.0.0.1:LISTEN and relays each connection to
// 127.0.0.1:TARGET with porthole's own relay code from dist/, either the JS Relay (MODE=js) or the splice(2) addon
// (MODE=splice, which exits 1 at start when the addon cannot be used, rather than measuring the JS path by mistake).
//
//   node bench/splice-ab-relay.mjs MODE LISTEN TARGET
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { Relay } from '../dist/tunnel/relay.js';
import { spliceRelay, spliceUnavailableReason } from '../dist/tunnel/splice-relay.js';

const [mode, listenPort, targetPort] = process.argv.slice(2);
if (!['js', 'splice'].includes(mode ?? '') || !listenPort || !targetPort) {
  process.stderr.write('usage: splice-ab-relay.mjs js|splice LISTEN TARGET\n');
  process.exit(2);
}
if (mode === 'splice' && spliceUnavailableReason() !== undefined) {
  process.stderr.write(`splice-ab-relay: splice addon unavailable: ${spliceUnavailableReason()}\n`);
  process.exit(1);
}

// BENCH_PIPE_SIZE: bytes per splice pipe (undefined = the relay's default).
const pipeSize = process.env.BENCH_PIPE_SIZE ? Number(process.env.BENCH_PIPE_SIZE) : undefined;
const flow = () => ({ bucket: undefined, count() {} });
const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (user) => {
  user.on('error', () => {});
  const target = connect({ port: Number(targetPort), host: '127.0.0.1', allowHalfOpen: true });
  target.on('error', () => user.destroy());
  target.once('connect', () => {
    const options = { up: flow(), down: flow(), idleTimeout: 0, pipeSize: pipeSize };
    if (mode === 'splice' && spliceRelay(user, target, options) !== undefined) return;
    if (mode === 'splice') process.stderr.write('splice-ab-relay: pair not eligible, relaying in JS\n');
    const relay = new Relay(user, target, options);
    relay.startDown();
    relay.startUp();
  });
});
server.listen(Number(listenPort), '127.0.0.1');
await once(server, 'listening');
process.stdout.write('ready\n');
process.on('SIGTERM', () => process.exit(0));

#!/usr/bin/env node
// CPU cost of the pool transports: a dual-end tunnel (server mode 2 + client mode 2) per pool type, one stream
// moving BYTES each way through it; reports wall throughput and the CPU seconds both porthole processes spent per GiB
// (utime + stime from /proc). On a shared machine CPU per GiB is the figure to compare: wall throughput moves with
// the neighbours' load, the work done per byte does not (much).
//
//   node bench/pool-cpu.mjs [--types 0,2,3] [--tls 0] [--gib 2] [--repeats 3] [--section]
//
// BENCH_NODE_ARGS (environment) is passed to both porthole processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
// --section writes the `pool-cpu` section of BENCHMARKS.md (bench/sections.mjs). Everything stays on 127.0.0.1,
// every process started here is stopped by pid, every step has a time limit. Build first (`npm run build`).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, freePort, listen, stopAll, waitListening } from './local-processes.mjs';
import { writeSection } from './sections.mjs';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const TYPES = opt('types', '0,2,3').split(',').map(Number);
const TLS = Number(opt('tls', '0'));
const GIB = Number(opt('gib', '2'));
const REPEATS = Number(opt('repeats', '3'));
const BYTES = Math.round(GIB * 1024 ** 3);
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
// --ab A,B: A/B comparison of two builds (paths to their cli/main.js), interleaved in every repeat.
const BUILDS = opt('ab', CLI).split(',');
const STEP_LIMIT = 120_000;

function startPorthole(cli, url) {
  const nodeArgs = process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : [];
  const proc = spawn(process.execPath, [...nodeArgs, cli, url], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => {
    err += d;
  });
  proc.errText = () => err;
  return proc;
}

const CHUNK = Buffer.alloc(256 * 1024, 0x5a);

/** Writes `bytes` to `socket` with backpressure, then ends it. */
function source(socket, bytes) {
  let left = bytes;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.end();
  };
  pump();
}

/** Counts what `socket` delivers until its end; resolves with the count. */
function sink(socket) {
  return new Promise((resolve, reject) => {
    let n = 0;
    socket.on('data', (d) => {
      n += d.length;
    });
    socket.on('end', () => resolve(n));
    socket.on('error', reject);
  });
}

/**
 * One transfer through `port` to the target: `up` sends BYTES user → target, else the target sends BYTES to the
 * user. Resolves with seconds taken, after checking every byte arrived.
 */
async function transfer(target, port, up) {
  const accepted = once(target, 'connection');
  const user = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(user, 'connect');
  const [far] = await accepted;
  const started = process.hrtime.bigint();
  let received;
  if (up) {
    received = sink(far);
    source(user, BYTES);
    user.resume();
  } else {
    received = sink(user);
    source(far, BYTES);
    far.resume();
  }
  const timer = setTimeout(() => {
    user.destroy();
    far.destroy();
  }, STEP_LIMIT);
  const n = await received;
  clearTimeout(timer);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  user.destroy();
  far.destroy();
  if (n !== BYTES) throw new Error(`received ${n} of ${BYTES} bytes`);
  return seconds;
}

async function measure(type, cli, repeats) {
  const target = createServer({ allowHalfOpen: true });
  const targetPort = await listen(target);
  const tunnelPort = await freePort();
  const userPort = await freePort();
  const server = startPorthole(
    cli,
    `server://benchkey@127.0.0.1:${tunnelPort}/127.0.0.1:${targetPort}?mode=2&tls=${TLS}&type=${type}&log=warn`,
  );
  await new Promise((r) => setTimeout(r, 500));
  const client = startPorthole(cli, `client://benchkey@127.0.0.1:${tunnelPort}/127.0.0.1:${userPort}?mode=2&log=warn`);
  const procs = [server, client];
  try {
    await waitListening(userPort);
    // The readiness probe's own connection reaches the target a moment later: let it come and go first.
    await new Promise((r) => setTimeout(r, 1000));
    // Warm-up (JIT, pool), not counted.
    await transfer(target, userPort, true);
    const rows = [];
    for (let r = 0; r < repeats; r++) {
      for (const up of [true, false]) {
        const cpu0 = cpuSeconds(server.pid) + cpuSeconds(client.pid);
        const seconds = await transfer(target, userPort, up);
        const cpu = cpuSeconds(server.pid) + cpuSeconds(client.pid) - cpu0;
        rows.push({ up, seconds, cpu });
      }
    }
    return rows;
  } catch (err) {
    throw new Error(`type ${type}: ${err.message}\n${server.errText()}${client.errText()}`);
  } finally {
    await stopAll(procs);
    target.close();
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const NAMES = { 0: 'TCP (type 0)', 2: 'WebSocket (type 2)', 3: 'HTTP/2 (type 3)' };

// Repeats interleave the paths (each repeat starts fresh processes), so a change in the machine's load hits all.
const results = {};
const paths = [];
for (const type of TYPES)
  for (const cli of BUILDS) paths.push({ type, cli, key: BUILDS.length > 1 ? `${type} ${cli}` : `${type}` });
for (let r = 0; r < REPEATS; r++) {
  for (const { type, cli, key } of paths) {
    process.stderr.write(`[pool-cpu] repeat ${r + 1}/${REPEATS}: ${key}, tls ${TLS}, ${GIB} GiB each way\n`);
    results[key] = [...(results[key] ?? []), ...(await measure(type, cli, 1))];
  }
}

const gib = BYTES / 1024 ** 3;
const lines = [
  `| transport | direction | Gbit/s (median) | Gbit/s vs ${NAMES[paths[0].type] ?? paths[0].key} | CPU s per GiB, both ends (median) | CPU/GiB vs ${NAMES[paths[0].type] ?? paths[0].key} |`,
  '|---|---|--:|--:|--:|--:|',
];
const base = {};
const baseRate = {};
for (const { type, key } of paths) {
  for (const up of [true, false]) {
    const rows = results[key].filter((r) => r.up === up);
    const gbps = median(rows.map((r) => (BYTES * 8) / r.seconds / 1e9));
    const cpuPerGib = median(rows.map((r) => r.cpu / gib));
    if (key === paths[0].key) {
      base[up] = cpuPerGib;
      baseRate[up] = gbps;
    }
    lines.push(
      `| ${NAMES[type] ?? type}${BUILDS.length > 1 ? ` ${key.split(' ')[1]}` : ''} | ${up ? 'user → target' : 'target → user'} | ${gbps.toFixed(2)} | ${Math.round((gbps / baseRate[up]) * 100)} % | ${cpuPerGib.toFixed(2)} | ${(cpuPerGib / base[up]).toFixed(2)}× |`,
    );
  }
}
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' / ');
const table = lines.join('\n');
process.stdout.write(`${table}\n\nload ${load}\n`);

if (args.includes('--section')) {
  writeSection(
    fileURLToPath(new URL('../BENCHMARKS.md', import.meta.url)),
    'pool-cpu',
    `## Pool transports: CPU per GiB (\`node bench/pool-cpu.mjs\`)

A dual-end tunnel (server mode 2, client mode 2, tls=${TLS}) per pool type, one stream moving ${gib} GiB each way,
${REPEATS} repeats, medians. CPU is user + system time of both porthole processes (from /proc) per GiB moved: on a
shared machine this is the figure to compare, wall throughput moves with the neighbours' load.

Type 0 with tls=0 hands its pairs to the splice(2) relay (no byte enters user space), and so does WebSocket with
tls=0: the addon writes and parses the frames and splices the payload (docs/splice-relay.md). wss and HTTP/2 members
are relayed in JS with every read batched into one writev per loop turn (src/tunnel/relay.ts). HTTP/2 always runs
over TLS (NodePass forces it), so its cost is mostly TLS: with \`--tls 1\` types 0, 2 and 3 cost about the same per GiB.

- Date: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}; Node ${process.version}; ${cpus().length} CPUs (${cpus()[0]?.model.trim()}); load ${load}
- Command: \`node bench/pool-cpu.mjs ${args.join(' ')}\`

${table}
`,
  );
}

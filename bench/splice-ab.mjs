#!/usr/bin/env node
// A/B benchmark of the experimental splice(2) relay: iperf3 single-stream throughput, in the same run and alternating
// round by round, direct on loopback and through one and two hops of (a) socat, (b) porthole's JS Relay, (c) the
// splice path (bench/splice-ab-relay.mjs). Two hops stand in for the dual-end tunnel's two relays (issue 3 compares
// that against two socat relays). Also reports each porthole relay's CPU seconds per GiB relayed, which a busy shared
// machine disturbs less than throughput. Prints a markdown table; writes nothing else.
//
// Needs dist/ (npm run build), the addon (npm ci builds it), iperf3 and socat. Everything listens on 127.0.0.1;
// every process is stopped by pid on exit. Knobs: BENCH_DURATION (iperf3 seconds per run, 3), BENCH_REPEATS (rounds,
// 3), BENCH_BASE_PORT (first port to try, 25400), BENCH_HOPS ("1,2"),
// BENCH_PIPE_SIZE (bytes per splice pipe, the relay's default 256 KiB), BENCH_TUNNEL=1 (adds the dual-end tunnel,
// tls=0, with PORTHOLE_SPLICE=0 and as built, compared with two socat hops; needs BENCH_HOPS to include 2).
import { execFileSync, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds } from './local-processes.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const duration = Number(process.env.BENCH_DURATION ?? 3);
const repeats = Number(process.env.BENCH_REPEATS ?? 3);
const basePort = Number(process.env.BENCH_BASE_PORT ?? 25400);
const hopCounts = (process.env.BENCH_HOPS ?? '1,2').split(',').map(Number);
const tunnel = process.env.BENCH_TUNNEL === '1';
const log = (msg) => process.stderr.write(`[splice-ab ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

const children = [];
let exiting = false;
function stopAll() {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
}
process.on('exit', stopAll);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

function start(name, command, args, env = process.env) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  child.on('exit', (code) => {
    if (code !== 0 && code !== null && !exiting) log(`${name} exited ${code}: ${stderr.trim().slice(0, 300)}`);
  });
  children.push(child);
  return child;
}

async function waitReady(port) {
  for (let i = 0; i < 60; i++) {
    try {
      execFileSync('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-n', '64K'], {
        stdio: 'ignore',
        timeout: 10_000,
      });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw new Error(`port ${port} never relayed an iperf3 test`);
}

function iperf(port) {
  try {
    const out = execFileSync('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(duration), '-J'], {
      encoding: 'utf8',
      timeout: (duration + 20) * 1000,
    });
    const json = JSON.parse(out);
    return { gbps: json.end.sum_received.bits_per_second / 1e9, bytes: json.end.sum_received.bytes };
  } catch (err) {
    log(`iperf3 via ${port} failed: ${String(err.message).slice(0, 200)}`);
    return { gbps: Number.NaN, bytes: 0 };
  }
}

const kinds = ['socat', 'js', 'splice'];
const needed = 1 + hopCounts.reduce((sum, hops) => sum + hops * kinds.length, 0) + (tunnel ? 4 : 0);
const ports = execFileSync(process.execPath, [join(here, 'free-ports.mjs'), String(needed), String(basePort)], {
  encoding: 'utf8',
})
  .trim()
  .split(' ')
  .map(Number);
const iperfPort = ports.shift();
start('iperf3 server', 'iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort)]);

// Each path: its entry port and the pids of the porthole relays along it (for CPU accounting).
const paths = [{ name: 'direct', port: iperfPort, pids: [] }];
for (const hops of hopCounts) {
  for (const kind of kinds) {
    let target = iperfPort;
    const pids = [];
    for (let hop = 0; hop < hops; hop++) {
      const listen = ports.shift();
      const child =
        kind === 'socat'
          ? start(`socat ${listen}`, 'socat', [
              `TCP-LISTEN:${listen},bind=127.0.0.1,reuseaddr,fork,backlog=511`,
              `TCP:127.0.0.1:${target}`,
            ])
          : start(
              `${kind} relay ${listen}`,
              process.execPath,
              [join(here, 'splice-ab-relay.mjs'), kind, listen, target],
              {
                ...process.env,
                // Keeps the JS rows on the JS path even once Relay itself hands eligible pairs to the addon.
                PORTHOLE_SPLICE: kind === 'js' ? '0' : '1',
              },
            );
      if (kind !== 'socat') pids.push(child.pid);
      target = listen;
    }
    paths.push({
      name: `${kind} ×${hops}`,
      port: target,
      pids,
      compare: `socat ×${hops}`,
      pair: kind === 'splice' ? `js ×${hops}` : undefined,
    });
  }
}

// The real dual-end tunnel (server + client, tls=0), once with the splice path turned off and once as built: this
// measures Relay's use of the addon, so both rows match where Relay does not use it.
if (tunnel) {
  const root = join(here, '..');
  for (const [label, splice] of [
    ['tunnel, PORTHOLE_SPLICE=0', '0'],
    ['tunnel, as built', '1'],
  ]) {
    const tunnelPort = ports.shift();
    const listen = ports.shift();
    const env = { ...process.env, PORTHOLE_SPLICE: splice };
    const server = start(
      `${label} server`,
      process.execPath,
      [
        join(root, 'dist', 'cli', 'main.js'),
        `server://benchkey@127.0.0.1:${tunnelPort}/127.0.0.1:${iperfPort}?mode=2&tls=0&log=warn`,
      ],
      env,
    );
    const client = start(
      `${label} client`,
      process.execPath,
      [
        join(root, 'dist', 'cli', 'main.js'),
        `client://benchkey@127.0.0.1:${tunnelPort}/127.0.0.1:${listen}?mode=2&log=warn`,
      ],
      env,
    );
    paths.push({
      name: label,
      port: listen,
      pids: [server.pid, client.pid],
      compare: 'socat ×2',
      pair: splice === '1' ? 'tunnel, PORTHOLE_SPLICE=0' : undefined,
    });
  }
}

for (const path of paths) await waitReady(path.port);
log(`ready: ${paths.length} paths, ${repeats} rounds of ${duration}s each`);

const results = new Map(paths.map((p) => [p.name, { gbps: [], cpuPerGiB: [] }]));
for (let round = 0; round < repeats; round++) {
  // Alternate the order each round so no path always runs right after the same neighbour.
  const order = round % 2 === 0 ? paths : [...paths].reverse();
  for (const path of order) {
    const before = path.pids.map(cpuSeconds);
    const { gbps, bytes } = iperf(path.port);
    const cpu = path.pids.reduce((sum, pid, i) => sum + cpuSeconds(pid) - before[i], 0);
    const r = results.get(path.name);
    r.gbps.push(gbps);
    if (path.pids.length > 0 && bytes > 0) r.cpuPerGiB.push(cpu / (bytes / 2 ** 30));
    log(`round ${round + 1} ${path.name}: ${gbps.toFixed(2)} Gbit/s`);
    await new Promise((r) => setTimeout(r, 300));
  }
}
exiting = true;

const median = (xs) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (x, digits = 2) => (Number.isNaN(x) ? 'n/a' : x.toFixed(digits));
const lines = [
  `splice A/B, iperf3 single stream, ${repeats} alternating rounds of ${duration}s, ${new Date().toISOString()}, ` +
    `Node ${process.version}, ${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores`,
  '',
  '| path | median Gbit/s | min–max | × socat, same hops | × direct | relay CPU s/GiB (median) | ' +
    '× JS, paired by round: median (min–max) |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
];
const direct = median(results.get('direct').gbps);
/** Round-by-round ratios against the path's JS twin: both ran in the same round, so they saw the same load. */
function pairedRatios(path) {
  if (!path.pair || !results.has(path.pair)) return '';
  const mine = results.get(path.name).gbps;
  const theirs = results.get(path.pair).gbps;
  const ratios = mine.map((x, i) => x / theirs[i]).filter((x) => Number.isFinite(x));
  if (ratios.length === 0) return 'n/a';
  return `${fmt(median(ratios))} (${fmt(Math.min(...ratios))}–${fmt(Math.max(...ratios))})`;
}
for (const path of paths) {
  const r = results.get(path.name);
  const m = median(r.gbps);
  const valid = r.gbps.filter((x) => !Number.isNaN(x));
  const socat = path.compare && results.has(path.compare) ? median(results.get(path.compare).gbps) : Number.NaN;
  lines.push(
    `| ${path.name} | ${fmt(m)} | ${fmt(Math.min(...valid))}–${fmt(Math.max(...valid))} | ` +
      `${path.compare ? fmt(m / socat) : ''} | ${fmt(m / direct)} | ${r.cpuPerGiB.length ? fmt(median(r.cpuPerGiB), 3) : ''} | ` +
      `${pairedRatios(path)} |`,
  );
}
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(0);

#!/usr/bin/env node
// QUIC pool (type=1) benchmark: the dual-end tunnel (server mode 2 + client mode 2) over QUIC beside the same tunnel
// over the TCP pool (type 0, tls=0 and tls=1), a socat relay and direct loopback, all in one run, interleaved.
// Measures single-stream throughput (iperf3, receiver side), connection rate (bench/conn-rate.mjs) and small-message
// round trip (bench/rtt.mjs). Writes the `quic` section of BENCHMARKS.md (bench/sections.mjs).
//
//   npm run bench:quic        (builds dist/ first; needs iperf3 and socat, as bench/run.sh does)
//
// Tunables (environment): BENCH_QUIC_DURATION (iperf3 seconds, 3), BENCH_QUIC_REPEATS (3), BENCH_QUIC_CONNS (300),
// BENCH_QUIC_RTT_ROUNDS (2000). Everything listens on 127.0.0.1; every process started here is stopped by pid.
import { execFile, spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { writeSection } from './sections.mjs';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist/cli/main.js');
const DURATION = Number(process.env.BENCH_QUIC_DURATION ?? 3);
const REPEATS = Number(process.env.BENCH_QUIC_REPEATS ?? 3);
const CONNS = Number(process.env.BENCH_QUIC_CONNS ?? 300);
const RTT_ROUNDS = Number(process.env.BENCH_QUIC_RTT_ROUNDS ?? 2000);
const CONCURRENCY = 20;

const children = [];
function start(cmd, args, env = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  child.stderr.on('data', (c) => {
    err = (err + c).slice(-4000);
  });
  child.errText = () => err;
  children.push(child);
  return child;
}
function stopAll() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
}
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});
process.on('SIGINT', () => process.exit(130));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePorts(count) {
  const { stdout } = await run('node', [join(ROOT, 'bench/free-ports.mjs'), String(count), '25300']);
  return stdout.trim().split(/\s+/).map(Number);
}

/** Waits (≤ 30 s) until an exchange through `port` works. */
async function ready(name, port, kind) {
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    try {
      if (kind === 'iperf')
        await run('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-n', '64K'], { timeout: 10_000 });
      else await run('node', [join(ROOT, 'bench/probe.mjs'), String(port), kind, '3000'], { timeout: 5000 });
      return;
    } catch {
      await sleep(300);
    }
  }
  throw new Error(`${name} is not carrying traffic after 30 s`);
}

async function iperf(port) {
  try {
    const { stdout } = await run('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(DURATION), '-J'], {
      timeout: (DURATION + 20) * 1000,
    });
    return JSON.parse(stdout).end.sum_received.bits_per_second / 1e9;
  } catch {
    return Number.NaN;
  }
}
async function connRate(port) {
  try {
    const { stdout } = await run(
      'node',
      [join(ROOT, 'bench/conn-rate.mjs'), String(port), String(CONNS), String(CONCURRENCY)],
      { timeout: 120_000 },
    );
    const r = JSON.parse(stdout);
    return r.failed > 0 ? Number.NaN : r.perSecond;
  } catch {
    return Number.NaN;
  }
}
async function rtt(port) {
  try {
    const { stdout } = await run('node', [join(ROOT, 'bench/rtt.mjs'), String(port), String(RTT_ROUNDS), '64'], {
      timeout: 120_000,
    });
    return JSON.parse(stdout).medianUs;
  } catch {
    return Number.NaN;
  }
}

const median = (xs) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

// Paths: name -> { iperf, once, stream } ports users connect to.
const PATHS = ['direct', 'socat', 'type0', 'type0tls', 'quic'];
const LABELS = {
  direct: 'direct loopback',
  socat: 'socat relay',
  type0: 'tunnel type 0, tls=0',
  type0tls: 'tunnel type 0, tls=1',
  quic: 'tunnel type 1 (QUIC)',
};

async function main() {
  const ports = await freePorts(3 + 3 + 3 * 2 * 3);
  const take = () => ports.shift();
  const at = { direct: { iperf: take(), once: take(), stream: take() } };
  start('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(at.direct.iperf)]);
  start('node', [join(ROOT, 'bench/echo-server.mjs'), String(at.direct.once), String(at.direct.stream)]);
  at.socat = { iperf: take(), once: take(), stream: take() };
  for (const kind of ['iperf', 'once', 'stream']) {
    start('socat', [
      `TCP-LISTEN:${at.socat[kind]},bind=127.0.0.1,reuseaddr,fork,backlog=511`,
      `TCP:127.0.0.1:${at.direct[kind]}`,
    ]);
  }
  const tunnels = { type0: 'type=0&tls=0', type0tls: 'type=0&tls=1', quic: 'type=1' };
  for (const [path, params] of Object.entries(tunnels)) {
    at[path] = {};
    for (const kind of ['iperf', 'once', 'stream']) {
      const tunnelPort = take();
      const userPort = take();
      at[path][kind] = userPort;
      start('node', [
        CLI,
        `server://bench@127.0.0.1:${tunnelPort}/127.0.0.1:${at.direct[kind]}?mode=2&${params}&log=warn`,
      ]);
      await sleep(300);
      start('node', [CLI, `client://bench@127.0.0.1:${tunnelPort}/127.0.0.1:${userPort}?mode=2&log=warn`]);
    }
  }
  for (const path of PATHS)
    for (const kind of ['iperf', 'once', 'stream']) await ready(`${path}/${kind}`, at[path][kind], kind);

  const samples = { tput: {}, conns: {}, rtt: {} };
  for (const m of Object.keys(samples)) for (const p of PATHS) samples[m][p] = [];
  for (let r = 0; r < REPEATS; r++) {
    for (const p of PATHS) {
      samples.tput[p].push(await iperf(at[p].iperf));
      samples.conns[p].push(await connRate(at[p].once));
      samples.rtt[p].push(await rtt(at[p].stream));
      process.stderr.write(`[bench:quic] repeat ${r + 1}/${REPEATS} ${p}\n`);
    }
  }
  stopAll();

  const med = {};
  for (const m of Object.keys(samples)) {
    med[m] = {};
    for (const p of PATHS) med[m][p] = median(samples[m][p]);
  }
  const fmt = (v, digits) => (Number.isFinite(v) ? v.toFixed(digits) : 'failed');
  const ratio = (a, b) => (Number.isFinite(a / b) ? `${(a / b).toFixed(3)}×` : '—');
  const metrics = [
    { key: 'tput', label: 'throughput, 1 stream', unit: 'Gbit/s', digits: 3, better: 'higher' },
    {
      key: 'conns',
      label: `connection rate (${CONNS}, ${CONCURRENCY} at a time)`,
      unit: 'conn/s',
      digits: 0,
      better: 'higher',
    },
    { key: 'rtt', label: 'round trip, 64 B, median', unit: 'µs', digits: 0, better: 'lower' },
  ];
  const rows = metrics.map(
    (m) =>
      `| ${m.label} | ${m.unit} | ${PATHS.map((p) => fmt(med[m.key][p], m.digits)).join(' | ')} | ` +
      `${ratio(med[m.key].quic, med[m.key].direct)} | ${ratio(med[m.key].quic, med[m.key].socat)} | ` +
      `${ratio(med[m.key].quic, med[m.key].type0)} | ${ratio(med[m.key].quic, med[m.key].type0tls)} | ${m.better} |`,
  );
  const sampleLines = metrics.map(
    (m) =>
      `- ${m.label}: ${PATHS.map((p) => `${p} ${samples[m.key][p].map((v) => fmt(v, m.digits)).join('/')}`).join('; ')}`,
  );
  const { stdout: nodeVersion } = await run('node', ['--version']);
  const quicVersion = (await import('@matrixai/quic/package.json', { with: { type: 'json' } })).default.version;
  const body = `## QUIC pool (type=1) (\`npm run bench:quic\`)

The dual-end tunnel (server mode 2 + client mode 2, \`min\` default) with its pool over QUIC (\`type=1\`: one QUIC
connection, a bidirectional stream per member, TLS always) beside the same tunnel over the TCP pool (type 0, tls=0
and tls=1), one socat relay and direct loopback, all started in the same run and measured interleaved, ${REPEATS}
repeats, medians. ${cpus().length} cores, Node ${nodeVersion.trim()}, @matrixai/quic ${quicVersion}. iperf3
${DURATION} s per sample.

| measurement | unit | ${PATHS.map((p) => LABELS[p]).join(' | ')} | QUIC/direct | QUIC/socat | QUIC/type 0 | QUIC/type 0 tls=1 | better |
|---|---|${PATHS.map(() => '--:|').join('')}--:|--:|--:|--:|---|
${rows.join('\n')}

Why QUIC is this slow: \`@matrixai/quic\` drives quiche one 1350-byte datagram at a time from JavaScript, with an
async lock, an AbortController and a timer per received packet; both ends spend their CPU there, queues build and the
round trip seen by quiche's congestion control grows to hundreds of milliseconds under load. It is carried for
NodePass compatibility (type=1), not for speed: use type 0 (TCP/TLS) or 3 (HTTP/2) where speed matters.

Samples (per repeat):
${sampleLines.join('\n')}
`;
  writeSection(join(ROOT, 'BENCHMARKS.md'), 'quic', body);
  process.stdout.write(`${body}\n`);
}

main().then(
  () => {
    stopAll();
    setTimeout(() => process.exit(0), 500);
  },
  (err) => {
    process.stderr.write(`bench:quic: ${err.message}\n`);
    for (const c of children) if (c.errText()) process.stderr.write(c.errText());
    stopAll();
    setTimeout(() => process.exit(1), 500);
  },
);

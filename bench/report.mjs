#!/usr/bin/env node
// Turns the raw samples collected by bench/run.sh into a Markdown report: prints it and (re)writes BENCHMARKS.md.
//
//   node bench/report.mjs RESULTS_TSV OUTPUT_MD
//
// RESULTS_TSV lines: metric <TAB> path <TAB> repeat <TAB> value   (value "NaN" = that run failed)
// Settings come from the environment run.sh exports (BENCH_*).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { writeSection } from './sections.mjs';

const [resultsPath, outputPath] = process.argv.slice(2);
if (!resultsPath || !outputPath) {
  process.stderr.write('usage: report.mjs RESULTS_TSV OUTPUT_MD\n');
  process.exit(2);
}

const env = process.env;
const PATHS = ['direct', 'socat', 'porthole'];
const METRICS = [
  { key: 'tput1', label: 'TCP throughput, 1 stream, client → server', unit: 'Gbit/s', better: 'higher' },
  { key: 'tput1r', label: 'TCP throughput, 1 stream, server → client (-R)', unit: 'Gbit/s', better: 'higher' },
  { key: 'tput8', label: 'TCP throughput, 8 streams, client → server', unit: 'Gbit/s', better: 'higher' },
  {
    key: 'conns',
    label: `Connection rate (${env.BENCH_CONNS} conns, ${env.BENCH_CONCURRENCY} concurrent)`,
    unit: 'conn/s',
    better: 'higher',
  },
  { key: 'rtt_med', label: `Round trip, ${env.BENCH_RTT_SIZE} B ping-pong, median`, unit: 'µs', better: 'lower' },
  { key: 'rtt_p99', label: `Round trip, ${env.BENCH_RTT_SIZE} B ping-pong, p99`, unit: 'µs', better: 'lower' },
];

// samples[metric][path] = number[] (NaN for failed runs)
const samples = {};
for (const line of readFileSync(resultsPath, 'utf8').split('\n')) {
  if (line.trim() === '') continue;
  const [metric, path, , value] = line.split('\t');
  samples[metric] ??= {};
  samples[metric][path] ??= [];
  samples[metric][path].push(Number(value));
}

function median(values) {
  const ok = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (ok.length === 0) return Number.NaN;
  const mid = ok.length >> 1;
  return ok.length % 2 === 1 ? ok[mid] : (ok[mid - 1] + ok[mid]) / 2;
}

function fmt(value, unit) {
  if (!Number.isFinite(value)) return 'failed';
  if (unit === 'Gbit/s') return value.toFixed(2);
  return String(Math.round(value));
}

const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '–');

function tool(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .split('\n')[0]
      .trim();
  } catch {
    return 'unknown';
  }
}

function gitRevision() {
  const rev = tool('git', ['rev-parse', '--short', 'HEAD']);
  let dirty = '';
  try {
    dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim()
      ? ' + uncommitted changes in src/'
      : '';
  } catch {}
  return `${rev}${dirty}`;
}

const medians = {};
for (const m of METRICS) {
  medians[m.key] = {};
  for (const p of PATHS) medians[m.key][p] = median(samples[m.key]?.[p] ?? []);
}

// Connections that failed (timed out / wrong echo) in any conn-rate run of a path: its cell gets a mark.
const failedConns = {};
for (const p of PATHS)
  failedConns[p] = (samples.conns_failed?.[p] ?? []).reduce((a, v) => a + (Number.isFinite(v) ? v : 0), 0);
const cell = (m, p) => `${fmt(medians[m.key][p], m.unit)}${m.key === 'conns' && failedConns[p] > 0 ? ' †' : ''}`;

const rows = METRICS.map((m) => {
  const d = medians[m.key];
  return `| ${m.label} | ${m.unit} | ${cell(m, 'direct')} | ${cell(m, 'socat')} | ${cell(m, 'porthole')} | ${ratio(d.porthole, d.direct)} | ${ratio(d.porthole, d.socat)} | ${m.better} |`;
});
const failedNote = PATHS.filter((p) => failedConns[p] > 0)
  .map((p) => `${p}: ${failedConns[p]}`)
  .join(', ');
const table = [
  '| measurement | unit | direct | socat | porthole | porthole/direct | porthole/socat | better |',
  '|---|---|--:|--:|--:|--:|--:|---|',
  ...rows,
  ...(failedNote ? ['', `† some connections failed (no echo within 5 s), over all runs: ${failedNote}`] : []),
].join('\n');

// --- dual-end part -------------------------------------------------------------------------------------------------
// Throughput (dtput*) was measured for direct, chain, dual0, dual1 at BENCH_DUAL_DURATION; connection rate and latency
// for chain, dual0, dual1, with direct's figures taken from the single-end part (same settings, same repeats).
const DUAL_PATHS = ['direct', 'chain', 'dual0', 'dual1'];
const DUAL_METRICS = [
  { key: 'dtput1', label: 'TCP throughput, 1 stream, client → server', unit: 'Gbit/s', better: 'higher' },
  { key: 'dtput8', label: 'TCP throughput, 8 streams, client → server', unit: 'Gbit/s', better: 'higher' },
  ...METRICS.filter((m) => ['conns', 'rtt_med', 'rtt_p99'].includes(m.key)),
];
for (const m of DUAL_METRICS) {
  medians[m.key] ??= {};
  for (const p of DUAL_PATHS) medians[m.key][p] ??= median(samples[m.key]?.[p] ?? []);
}
for (const p of DUAL_PATHS)
  failedConns[p] ??= (samples.conns_failed?.[p] ?? []).reduce((a, v) => a + (Number.isFinite(v) ? v : 0), 0);
const dualRows = DUAL_METRICS.map((m) => {
  const d = medians[m.key];
  return `| ${m.label} | ${m.unit} | ${DUAL_PATHS.map((p) => cell(m, p)).join(' | ')} | ${ratio(d.dual0, d.direct)} | ${ratio(d.dual0, d.chain)} | ${ratio(d.dual1, d.direct)} | ${ratio(d.dual1, d.chain)} | ${m.better} |`;
});
const dualFailedNote = DUAL_PATHS.filter((p) => p !== 'direct' && failedConns[p] > 0)
  .map((p) => `${p}: ${failedConns[p]}`)
  .join(', ');
const dualTable = [
  '| measurement | unit | direct | socat chain | dual tls=0 | dual tls=1 | tls=0/direct | tls=0/chain | tls=1/direct | tls=1/chain | better |',
  '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|',
  ...dualRows,
  ...(dualFailedNote ? ['', `† some connections failed (no echo within 5 s), over all runs: ${dualFailedNote}`] : []),
].join('\n');

const DUAL_TARGET_RATIO = 1.6;
const dt = medians.dtput1;
const dualRatio = dt.dual0 / dt.chain;
const dualVerdict = Number.isFinite(dualRatio)
  ? dualRatio >= DUAL_TARGET_RATIO
    ? `**met**: dual tls=0 / socat chain = ${dualRatio.toFixed(2)}× (${fmt(dt.dual0, 'Gbit/s')} vs ${fmt(dt.chain, 'Gbit/s')} Gbit/s)`
    : `**not met**: dual tls=0 / socat chain = ${dualRatio.toFixed(2)}× (${fmt(dt.dual0, 'Gbit/s')} vs ${fmt(dt.chain, 'Gbit/s')} Gbit/s), needs ≥ ${DUAL_TARGET_RATIO}×`
  : '**unknown**: a run failed, see the samples below';

const TARGET_RATIO = 1.2;
const t = medians.tput1;
const targetRatio = t.porthole / t.socat;
const verdict = Number.isFinite(targetRatio)
  ? targetRatio >= TARGET_RATIO
    ? `**met**: porthole/socat = ${targetRatio.toFixed(2)}× (${fmt(t.porthole, 'Gbit/s')} vs ${fmt(t.socat, 'Gbit/s')} Gbit/s)`
    : `**not met**: porthole/socat = ${targetRatio.toFixed(2)}× (${fmt(t.porthole, 'Gbit/s')} vs ${fmt(t.socat, 'Gbit/s')} Gbit/s), needs ≥ ${TARGET_RATIO}×`
  : '**unknown**: a run failed, see the samples below';

// --- pool transports -------------------------------------------------------------------------------------------
// The same dual-end tunnel (server mode 2, client mode 2) over the WebSocket (ws, type=2, tls=0) and HTTP/2 (h2,
// type=3, TLS) pools, measured in the dual-end loop beside type 0 (dual0, plain TCP pool) and dual1 (TLS TCP pool).
const TRANSPORT_PATHS = ['quic', 'ws', 'h2'].filter((p) => (samples.dtput1?.[p] ?? []).length > 0);
const TRANSPORT_NAMES = { quic: 'QUIC (type=1, TLS)', ws: 'WebSocket (type=2, tls=0)', h2: 'HTTP/2 (type=3, TLS)' };
// The issue's ≥ 60 % target is for WebSocket and HTTP/2; QUIC (experimental, on a JS-driven QUIC stack) is reported.
const TARGETED = new Set(['ws', 'h2']);
for (const m of DUAL_METRICS) {
  for (const p of TRANSPORT_PATHS) medians[m.key][p] ??= median(samples[m.key]?.[p] ?? []);
}
for (const p of TRANSPORT_PATHS)
  failedConns[p] ??= (samples.conns_failed?.[p] ?? []).reduce((a, v) => a + (Number.isFinite(v) ? v : 0), 0);
const TRANSPORT_TARGET = 0.6;
const transportRows = DUAL_METRICS.map((m) => {
  const d = medians[m.key];
  const cells = ['dual0', 'dual1', ...TRANSPORT_PATHS].map((p) => cell(m, p)).join(' | ');
  const ratios = TRANSPORT_PATHS.map((p) => ratio(d[p], d.dual0)).join(' | ');
  return `| ${m.label} | ${m.unit} | ${cells} | ${ratios} | ${m.better} |`;
});
const transportTable = [
  `| measurement | unit | type 0, tls=0 | type 0, tls=1 | ${TRANSPORT_PATHS.map((p) => TRANSPORT_NAMES[p]).join(' | ')} | ${TRANSPORT_PATHS.map((p) => `${p}/type 0`).join(' | ')} | better |`,
  `|---|---|--:|--:|${TRANSPORT_PATHS.map(() => '--:|').join('')}${TRANSPORT_PATHS.map(() => '--:|').join('')}---|`,
  ...transportRows,
].join('\n');
const transportVerdicts = TRANSPORT_PATHS.map((p) => {
  const r = medians.dtput1[p] / medians.dtput1.dual0;
  if (!Number.isFinite(r)) return `${TRANSPORT_NAMES[p]}: **unknown** (a run failed)`;
  const figures = `${fmt(medians.dtput1[p], 'Gbit/s')} vs ${fmt(medians.dtput1.dual0, 'Gbit/s')} Gbit/s`;
  const vsTls = medians.dtput1[p] / medians.dtput1.dual1;
  const tlsNote = Number.isFinite(vsTls) ? `; ${(100 * vsTls).toFixed(0)} % of type 0 with tls=1` : '';
  const verdict = TARGETED.has(p) ? (r >= TRANSPORT_TARGET ? '**met**' : '**not met**') : 'no target';
  return `${TRANSPORT_NAMES[p]}: ${verdict}, ${(100 * r).toFixed(0)} % of type 0 with tls=0 (${figures})${tlsNote}`;
});
const transportSection =
  TRANSPORT_PATHS.length === 0
    ? ''
    : `### Pool transports (${TRANSPORT_PATHS.map((p) => TRANSPORT_NAMES[p].split(' (')[0]).join(', ')})

Same run, same targets: the dual-end tunnel above (server mode 2 + client mode 2, \`min\` default) with the pool carried
by WebSocket (\`type=2&tls=0\`, ws://) and by HTTP/2 (\`type=3\`, which NodePass and porthole run over TLS even with
tls=0: one TLS connection, a \`POST /stream\` per pool member), beside the TCP pool (type 0) with tls=0 and tls=1.
QUIC (\`type=1\`, always TLS, one QUIC connection with a stream per member) runs on the optional \`@matrixai/quic\`
(quiche driven packet by packet from JS, 1350-byte datagrams): experimental, see docs/protocol.md §8.3.
Measured in the dual-end loop, interleaved with the paths above. Ratios are the transport's figure divided by type 0
with tls=0.

${transportTable}

Target from the issue — "WebSocket and HTTP/2 each reach ≥ 60 % of the type=0 single-stream throughput":
${transportVerdicts.map((v) => `- ${v}`).join('\n')}
`;

const sampleLine = (m, paths) => {
  const parts = paths.map((p) => {
    const values = (samples[m.key]?.[p] ?? []).map((v) => fmt(v, m.unit)).join(' / ') || '–';
    const failed = m.key === 'conns' && failedConns[p] > 0 ? ` (${failedConns[p]} connections failed)` : '';
    return `${p} ${values}${failed}`;
  });
  return `- ${m.label} (${m.unit}): ${parts.join('; ')}`;
};
const sampleLines = METRICS.map((m) => sampleLine(m, PATHS));
const dualSampleLines = DUAL_METRICS.map((m) =>
  sampleLine(m, [
    ...(m.key.startsWith('dtput') ? DUAL_PATHS : DUAL_PATHS.filter((p) => p !== 'direct')),
    ...TRANSPORT_PATHS,
  ]),
);

const cpu = cpus();
const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const md = `## NodePass tunnels: single-end forwarder and dual-end tunnel

_Regenerated by \`npm run bench\` (bench/run.sh → bench/report.mjs)._

What it measures, all on 127.0.0.1 and in one run so the paths see the same machine state (the dual-end tunnel is
in its own section below):

- **direct**: the client talks to the server itself (iperf3 server, or the Node echo server in bench/echo-server.mjs);
- **socat**: through \`socat TCP-LISTEN:P,bind=127.0.0.1,reuseaddr,fork,backlog=511 TCP:127.0.0.1:T\` (default 8 KiB
  buffer; \`backlog=511\` is Node's listen backlog — socat's default of 5 overflows at 50 concurrent connects, SYNs are
  dropped and retried after 1 s, and the connection-rate figure then measures that instead of the relay);
- **porthole**: through the single-end forwarder, \`node dist/cli/main.js "client://127.0.0.1:P/127.0.0.1:T?mode=1&log=warn"\`.

Throughput is iperf3 (\`-t ${env.BENCH_DURATION}\`, receiver-side figure), connection rate is bench/conn-rate.mjs
(connect, 16-byte echo, server closes), latency is bench/rtt.mjs (one connection, ${env.BENCH_RTT_ROUNDS} sequential
${env.BENCH_RTT_SIZE}-byte round trips). Every figure is the median of ${env.BENCH_REPEATS} runs; the three paths are
interleaved within each repeat. Ratios are porthole's figure divided by the other one (for latency, above 1× is slower).

### Single-end forwarder (latest run)

- Date: ${date}
- Command: \`BENCH_REPEATS=${env.BENCH_REPEATS} BENCH_DURATION=${env.BENCH_DURATION} BENCH_DUAL_DURATION=${env.BENCH_DUAL_DURATION} npm run bench\` (the knobs as they were for this run)
- Machine: ${cpu.length} CPUs (nproc ${env.BENCH_NPROC ?? cpu.length}), ${cpu[0]?.model ?? 'unknown CPU'}, Linux ${release()};
  load average when the report was written ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' / ')} (1/5/15 min; above the CPU count, other work shared the machine and absolute figures are low — compare
  the ratios, measured in the same run)
- Node ${process.version}; ${tool('iperf3', ['--version'])}; ${tool('socat', ['-V']) === 'unknown' ? 'socat unknown' : tool('sh', ['-c', 'socat -V | grep -m1 "socat version"'])}
- porthole revision: ${gitRevision()}

${table}

Target from the issue — "the forwarder sustains at least 1.2x the throughput of socat with its default buffer,
1 stream, same run": ${verdict}.

### Dual-end tunnel

Same run, same targets (the iperf3 server and the echo servers above), all on 127.0.0.1:

- **dual tls=0 / tls=1**: a NodePass dual-end tunnel, TCP pool (type 0), one per target:
  \`node dist/cli/main.js "server://benchkey@127.0.0.1:TP/127.0.0.1:T?mode=2&tls=0|1&log=warn"\` (egress: dials the
  target) and \`node dist/cli/main.js "client://benchkey@127.0.0.1:TP/127.0.0.1:P?mode=2&log=warn"\` (ingress: users
  connect to P). Every byte crosses two Node relays and the pool connection between them. Measured only after an
  iperf3 test / echo exchange through the tunnel succeeded (control channel up, and with tls=1 the verify round done);
- **socat chain**: two plain socat relays with the default buffer standing in for the same two hops,
  \`socat TCP-LISTEN:A,… TCP:127.0.0.1:B\` → \`socat TCP-LISTEN:B,… TCP:127.0.0.1:T\` (same listen options as above);
- **direct**: as above. Its throughput is measured again here, interleaved with the dual-end paths at the same
  duration; its connection rate and latency are the single-end table's figures (same settings, same repeats).

Throughput here is iperf3 \`-t ${env.BENCH_DUAL_DURATION}\`; connection rate and latency as above. Medians of
${env.BENCH_REPEATS} runs, the paths interleaved within each repeat (after that repeat's single-end part). Ratios are
the tunnel's figure divided by the other one.

${dualTable}

Target from the issue — "single-stream throughput with tls=0 at least 1.6x that of a chain of two plain socat relays,
measured in the same run": ${dualVerdict}.

${transportSection}
Samples (each run, in order):

${sampleLines.join('\n')}

Dual-end part:

${dualSampleLines.join('\n')}
`;

writeSection(outputPath, 'tunnels', md);
process.stdout.write(
  `\n${table}\n\nTarget (porthole ≥ ${TARGET_RATIO}× socat, 1 stream): ${verdict.replaceAll('**', '')}\n` +
    `\n${dualTable}\n\nTarget (dual tls=0 ≥ ${DUAL_TARGET_RATIO}× socat chain, 1 stream): ${dualVerdict.replaceAll('**', '')}\n` +
    (TRANSPORT_PATHS.length > 0
      ? `\n${transportTable}\n\nTarget (≥ ${100 * TRANSPORT_TARGET} % of type 0, 1 stream):\n${transportVerdicts.join('\n').replaceAll('**', '')}\n`
      : ''),
);

#!/usr/bin/env node
// Turns bench/hub.sh's samples into section "hub" of BENCHMARKS.md (and prints it).
//
//   node bench/hub-report.mjs RESULTS_TSV OUTPUT_MD
//
// RESULTS_TSV lines: metric <TAB> path <TAB> repeat <TAB> value   (value "NaN" = that run failed)
import { readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { writeSection } from './sections.mjs';

const [resultsPath, outputPath] = process.argv.slice(2);
if (!resultsPath || !outputPath) {
  process.stderr.write('usage: hub-report.mjs RESULTS_TSV OUTPUT_MD\n');
  process.exit(2);
}
const env = process.env;
const PATHS = ['direct', 'socat', 'hub', 'hubplain'];
const METRICS = [
  { key: 'tput1', label: 'TCP throughput, 1 stream', unit: 'Gbit/s', better: 'higher', digits: 2 },
  { key: 'tput8', label: 'TCP throughput, 8 streams', unit: 'Gbit/s', better: 'higher', digits: 2 },
  {
    key: 'conns',
    label: `Connection rate (${env.BENCH_CONNS} conns, ${env.BENCH_CONCURRENCY} concurrent)`,
    unit: 'conn/s',
    better: 'higher',
    digits: 0,
  },
  {
    key: 'rtt_med',
    label: `Round trip, ${env.BENCH_RTT_SIZE} B ping-pong, median`,
    unit: 'µs',
    better: 'lower',
    digits: 0,
  },
  {
    key: 'rtt_p99',
    label: `Round trip, ${env.BENCH_RTT_SIZE} B ping-pong, p99`,
    unit: 'µs',
    better: 'lower',
    digits: 0,
  },
];

const samples = {};
for (const line of readFileSync(resultsPath, 'utf8').split('\n')) {
  if (line.trim() === '') continue;
  const [metric, path, , value] = line.split('\t');
  samples[metric] ??= {};
  samples[metric][path] ??= [];
  samples[metric][path].push(Number(value));
}
const median = (xs) => {
  const ok = (xs ?? []).filter(Number.isFinite).sort((a, b) => a - b);
  if (ok.length === 0) return Number.NaN;
  const mid = Math.floor(ok.length / 2);
  return ok.length % 2 ? ok[mid] : (ok[mid - 1] + ok[mid]) / 2;
};
const fmt = (v, digits) => (Number.isFinite(v) ? v.toFixed(digits) : 'failed');
const ratio = (v, base) =>
  Number.isFinite(v) && Number.isFinite(base) && base > 0 ? `${(v / base).toFixed(2)}×` : '–';

const rows = METRICS.map((m) => {
  const v = Object.fromEntries(PATHS.map((p) => [p, median(samples[m.key]?.[p])]));
  return `| ${m.label} (${m.unit}, ${m.better} is better) | ${fmt(v.direct, m.digits)} | ${fmt(v.socat, m.digits)} | ${fmt(v.hub, m.digits)} | ${fmt(v.hubplain, m.digits)} | ${ratio(v.hub, v.direct)} | ${ratio(v.hub, v.socat)} | ${ratio(v.hubplain, v.socat)} |`;
});
const failed = PATHS.map(
  (p) => `${p} ${samples.conns_failed?.[p]?.filter(Number.isFinite).reduce((a, b) => a + b, 0) ?? 0}`,
);
const cpu = cpus()[0]?.model ?? 'unknown CPU';
const body = `## Hub and connector (\`npm run bench:hub\`)

Through a TCP port allocated on \`porthole hub\` and forwarded by \`porthole connector\` (pooled pre-dialed data
connections), against the target directly on loopback and through one plain \`socat\` relay, measured in the same
run: client → hub port → hub → data connection → connector → target. *hub (TLS)* is the default deployment (TLS
tunnel listener with the hub's self-signed certificate, pinned); *hub (plain)* is a hub started with \`--tls 0\`.
Every stream uses one pre-dialed data connection, so the connection rate includes one tunnel handshake per
connection (done ahead, but on the same CPUs). Medians of ${env.BENCH_REPEATS} repeat(s); iperf3 ${env.BENCH_DURATION} s per run.

| metric | direct | socat | hub (TLS) | hub (plain) | hub TLS / direct | hub TLS / socat | hub plain / socat |
|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Failed connections: ${failed.join(', ')}. Machine: ${env.BENCH_NPROC} CPUs (${cpu}), Linux ${release()}, Node ${process.version}; the
hub, the connector, the load generators and the targets share these CPUs, so the hub path pays for two extra
processes and TLS on the same cores.
`;
writeSection(outputPath, 'hub', body);
process.stdout.write(body);

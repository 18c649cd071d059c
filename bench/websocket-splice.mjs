#!/usr/bin/env node
// WebSocket pools (type 2, tls=0) in the native splice relay, against type 0 (tls=0, spliced) and against the same
// WebSocket tunnel on the JS path (PORTHOLE_SPLICE=0 on both ends), with direct loopback and a chain of two socat
// relays (the same two hops as a tunnel) measured in the same run. Single stream, iperf3, both directions; for the
// tunnels also the CPU seconds both porthole processes spend per GiB (utime + stime from /proc), the figure that
// moves least with a neighbour's load on a shared machine.
//
//   node bench/websocket-splice.mjs [--repeats 3] [--seconds 3] [--section]
//
// --section writes the `websocket-splice` section of BENCHMARKS.md (bench/sections.mjs). Everything stays on
// 127.0.0.1; every process started here is stopped by pid; every step has a time limit. Build first (npm run build).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, freePort, stopAll, waitBound } from './local-processes.mjs';
import { writeSection } from './sections.mjs';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const REPEATS = Number(opt('repeats', '3'));
const SECONDS = Number(opt('seconds', '3'));
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const GIB = 1024 ** 3;

const procs = [];
function start(cmd, argv, env = {}) {
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  proc.stderr.on('data', (d) => {
    err += d;
  });
  proc.errText = () => err;
  procs.push(proc);
  return proc;
}

const stopStarted = () => stopAll(procs);

/** One iperf3 run through `port`; resolves with { gbps, bytes } (receiver side) or NaN figures. */
function iperf(port, reverse) {
  return new Promise((resolve) => {
    const argv = ['-c', '127.0.0.1', '-p', String(port), '-t', String(SECONDS), '-J', ...(reverse ? ['-R'] : [])];
    const p = spawn('iperf3', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), (SECONDS + 20) * 1000);
    p.on('exit', () => {
      clearTimeout(timer);
      try {
        const r = JSON.parse(out).end.sum_received;
        resolve({ gbps: r.bits_per_second / 1e9, bytes: r.bytes });
      } catch {
        resolve({ gbps: Number.NaN, bytes: Number.NaN });
      }
    });
  });
}

/** A dual-end tunnel to `target`: server (egress, mode 2) + client (ingress). Resolves with its port and pids. */
async function tunnel(target, type, env) {
  const tp = await freePort();
  const lp = await freePort();
  const server = start(
    process.execPath,
    [CLI, `server://bench@127.0.0.1:${tp}/127.0.0.1:${target}?mode=2&tls=0&type=${type}&log=warn`],
    env,
  );
  await waitBound(tp);
  const client = start(process.execPath, [CLI, `client://bench@127.0.0.1:${tp}/127.0.0.1:${lp}?mode=2&log=warn`], env);
  await waitBound(lp);
  return { port: lp, pids: [server.pid, client.pid] };
}

/** Retries a 64 KiB iperf3 test until the path carries traffic (a tunnel refuses users until its pool is up). */
async function ready(port) {
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    const ok = await new Promise((resolve) => {
      const p = spawn('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-n', '64K'], { stdio: 'ignore' });
      const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
      p.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code === 0);
      });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`127.0.0.1:${port} carries no traffic after 30 s`);
}

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const pct = (x) => (Number.isFinite(x) ? `${Math.round(x * 100)} %` : 'n/a');

const PATHS = [
  { name: 'direct', label: 'direct loopback' },
  { name: 'chain', label: 'socat chain (2 relays)' },
  { name: 'tcp', label: 'type 0, tls=0 (spliced)' },
  { name: 'ws', label: 'type 2, tls=0, native framing' },
  { name: 'wsjs', label: 'type 2, tls=0, JS (PORTHOLE_SPLICE=0)' },
];

async function main() {
  const iperfPort = await freePort();
  start('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort)]);
  await waitBound(iperfPort);
  const chainB = await freePort();
  const chainA = await freePort();
  const opts = 'bind=127.0.0.1,reuseaddr,fork,backlog=511';
  start('socat', [`TCP-LISTEN:${chainB},${opts}`, `TCP:127.0.0.1:${iperfPort}`]);
  start('socat', [`TCP-LISTEN:${chainA},${opts}`, `TCP:127.0.0.1:${chainB}`]);
  await waitBound(chainB);
  await waitBound(chainA);
  const ports = { direct: iperfPort, chain: chainA };
  const pids = {};
  for (const [name, type, env] of [
    ['tcp', 0, {}],
    ['ws', 2, {}],
    ['wsjs', 2, { PORTHOLE_SPLICE: '0' }],
  ]) {
    const t = await tunnel(iperfPort, type, env);
    ports[name] = t.port;
    pids[name] = t.pids;
  }
  for (const p of PATHS) {
    try {
      await ready(ports[p.name]);
    } catch (err) {
      for (const proc of procs) process.stderr.write(proc.errText());
      throw new Error(`${p.label}: ${err.message}`);
    }
  }

  // results[path][dir] = [{ gbps, cpuPerGiB }] per repeat; paths interleaved within a repeat so drift hits all alike.
  const results = Object.fromEntries(PATHS.map((p) => [p.name, { up: [], down: [] }]));
  for (let rep = 1; rep <= REPEATS; rep++) {
    for (const dir of ['up', 'down']) {
      for (const p of PATHS) {
        const tracked = pids[p.name] ?? [];
        const before = tracked.reduce((s, pid) => s + cpuSeconds(pid), 0);
        const r = await iperf(ports[p.name], dir === 'down');
        const cpu = tracked.reduce((s, pid) => s + cpuSeconds(pid), 0) - before;
        const cpuPerGiB = tracked.length > 0 ? cpu / (r.bytes / GIB) : Number.NaN;
        results[p.name][dir].push({ gbps: r.gbps, cpuPerGiB });
        process.stderr.write(
          `[ws-splice] rep ${rep} ${dir.padEnd(4)} ${p.name.padEnd(6)} ${fmt(r.gbps)} Gbit/s` +
            (tracked.length > 0 ? `, ${fmt(cpuPerGiB)} CPU s/GiB\n` : '\n'),
        );
      }
    }
  }

  const rows = [];
  for (const dir of ['up', 'down']) {
    const tcpMed = median(results.tcp[dir].map((r) => r.gbps));
    const chainMed = median(results.chain[dir].map((r) => r.gbps));
    for (const p of PATHS) {
      const g = results[p.name][dir].map((r) => r.gbps);
      const perRepeat = g.map((x, i) => x / results.tcp[dir][i].gbps);
      const med = median(g);
      const cpu = median(results[p.name][dir].map((r) => r.cpuPerGiB));
      rows.push(
        `| ${dir === 'up' ? 'user → target' : 'target → user'} | ${p.label} | ${fmt(med)} | ${fmt(Math.min(...g))}–${fmt(Math.max(...g))} | ` +
          `${pct(med / tcpMed)} (${perRepeat.map((x) => pct(x)).join(', ')}) | ${fmt(med / chainMed)}× | ${fmt(cpu)} |`,
      );
    }
  }
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const md = `## WebSocket pools in the native relay (\`npm run bench:ws-splice\`)

Dual-end tunnel (server mode 2 + client mode 2) per row, single TCP stream through it with iperf3 (${SECONDS} s per run,
${REPEATS} repeats, paths interleaved within each repeat), direct loopback and a chain of two socat relays in the same
run. "of type 0" is the median against type 0's median, then per repeat against type 0 in the same repeat. CPU is
what both porthole processes spent (user + system) per GiB moved. ${cpus().length} cores, node ${process.version},
load average at the end ${load} (the machine is shared: read the spread).

| direction | path | Gbit/s (median) | min–max | of type 0 | of socat chain | CPU s/GiB |
|---|---|---|---|---|---|---|
${rows.join('\n')}

Type 2 with tls=0 relays pool members in the splice addon, which writes and parses the WebSocket frames itself
(docs/splice-relay.md); type 2 with tls=1/2 (wss) and any rate-limited tunnel stay on the JS path, as the last row
does by PORTHOLE_SPLICE=0.`;
  process.stdout.write(`${md}\n`);
  if (args.includes('--section'))
    writeSection(fileURLToPath(new URL('../BENCHMARKS.md', import.meta.url)), 'websocket-splice', md);
}

try {
  await main();
} finally {
  await stopStarted();
}

// Helpers the benchmark scripts share for the processes and ports they use on 127.0.0.1: a free port, waiting until
// a port accepts, the CPU time a process has used, and stopping processes by pid (SIGTERM, then SIGKILL).
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const CLK_TCK = 100;

/** Listens on an ephemeral 127.0.0.1 port; resolves with it. */
export function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

/** A port that was free a moment ago. */
export function freePort() {
  const server = createServer();
  return listen(server).then((port) => new Promise((resolve) => server.close(() => resolve(port))));
}

/** The CPU fields of /proc/<pid>/stat: [utime, stime, cutime, cstime] in clock ticks. */
function cpuFields(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After the name, field 3 (state) is index 0: utime (14) is 11, stime 12, cutime 13, cstime 14.
  return stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .slice(11, 15)
    .map(Number);
}

/**
 * CPU seconds (user + system) a process has used so far; with `reaped`, plus the children it has waited for (socat's
 * forked relays, counted once reaped).
 */
export function cpuSeconds(pid, { reaped = false } = {}) {
  const [utime, stime, cutime, cstime] = cpuFields(pid);
  return (utime + stime + (reaped ? cutime + cstime : 0)) / CLK_TCK;
}

/** CPU seconds of the children this process has waited for (a tool run with execFileSync, e.g. wrk). */
export function waitedChildrenCpuSeconds() {
  const [, , cutime, cstime] = cpuFields('self');
  return (cutime + cstime) / CLK_TCK;
}

/** SIGTERM to each process still running, SIGKILL to any still there 3 s later; resolves when all have exited. */
export async function stopAll(procs) {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
  await Promise.all(
    procs.map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const timer = setTimeout(() => p.kill('SIGKILL'), 3000);
      await once(p, 'exit');
      clearTimeout(timer);
    }),
  );
}

/** Connects to `port` until it accepts (a tunnel client's listener is up once its tunnel is). */
export async function waitListening(port, limit = 15_000) {
  const until = Date.now() + limit;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`127.0.0.1:${port} never listened`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Waits until something listens on 127.0.0.1:`port`, read from /proc/net/tcp without connecting: a probe connection
 * would reach the target behind a relay, and iperf3's server takes a connection that sends nothing as a failed test.
 */
export async function waitBound(port, limit = 15_000) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const until = Date.now() + limit;
  for (;;) {
    const rows = readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1);
    if (rows.some((row) => row.trim().split(/\s+/)[3] === '0A' && row.trim().split(/\s+/)[1]?.endsWith(hex))) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

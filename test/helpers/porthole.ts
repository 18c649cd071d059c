import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { InstanceMessage } from '../../src/instance/ipc.js';
import { watchOutput } from './output-watcher.js';

type StatsMessage = Extract<InstanceMessage, { type: 'stats' }>;

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface PortholeProcess {
  proc: ChildProcess;
  /** stdout+stderr so far, ANSI-free. */
  output(): string;
  stats: StatsMessage[];
  /** Resolves when the instance reports over IPC that its listeners are bound. */
  ready: Promise<void>;
  /** Resolves when a line matching `pattern` has been printed. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

/** Spawns `porthole <args>` with an IPC channel (as the master will) and captures its output. */
export function spawnPorthole(args: string[], env: Record<string, string> = {}): PortholeProcess {
  const proc = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  const stats: StatsMessage[] = [];
  let onReady: () => void = () => {};
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  const { output, waitFor } = watchOutput(proc, exited, 'porthole');
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    void exited.then(() => reject(new Error(`porthole exited before it was ready; output:\n${output()}`)));
  });
  ready.catch(() => {});
  proc.on('message', (m: InstanceMessage) => {
    if (m.type === 'stats') stats.push(m);
    else if (m.type === 'ready') onReady();
  });
  return {
    proc,
    output,
    stats,
    ready,
    waitFor,
    async stop(graceMs = 8000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Runs `porthole <args>` to completion; returns its exit code and output. */
export async function runPorthole(
  args: string[],
  timeoutMs = 10_000,
): Promise<{ code: number | null; output: string }> {
  const p = spawnPorthole(args);
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), timeoutMs);
  const [code] = await once(p.proc, 'exit');
  clearTimeout(timer);
  return { code: code as number | null, output: p.output() };
}

/** Starts a single-end forwarder and waits until it has bound its listeners. */
export async function startForwarder(url: string, env: Record<string, string> = {}): Promise<PortholeProcess> {
  const p = spawnPorthole([url], env);
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), 10_000);
  try {
    await p.ready;
  } finally {
    clearTimeout(timer);
  }
  return p;
}

/** Starts a forwarder for `url`, runs `body` with it, then stops it and checks that it exited cleanly. */
export async function withForwarder(
  url: string,
  body: (fwd: PortholeProcess) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  const fwd = await startForwarder(url, env);
  try {
    await body(fwd);
  } finally {
    assert.equal(await fwd.stop(), 0, 'porthole exits 0 on SIGTERM');
  }
}

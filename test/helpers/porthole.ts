import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { InstanceMessage } from '../../src/instance/ipc.js';

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
  let text = '';
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const stats: StatsMessage[] = [];
  const onText = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (const w of [...waiters]) {
      const m = w.pattern.exec(text);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m[0]);
      }
    }
  };
  proc.stdout?.on('data', onText);
  proc.stderr?.on('data', onText);
  let onReady: () => void = () => {};
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    void exited.then(() => reject(new Error(`porthole exited before it was ready; output:\n${text}`)));
  });
  ready.catch(() => {});
  proc.on('message', (m: InstanceMessage) => {
    if (m.type === 'stats') stats.push(m);
    else if (m.type === 'ready') onReady();
  });
  return {
    proc,
    output: () => text,
    stats,
    ready,
    waitFor(pattern, timeoutMs = 10_000) {
      const m = pattern.exec(text);
      if (m) return Promise.resolve(m[0]);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${pattern}; output so far:\n${text}`)),
          timeoutMs,
        );
        const waiter = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        waiters.push(waiter);
        void exited.then(() => {
          if (waiters.includes(waiter)) {
            clearTimeout(timer);
            reject(new Error(`porthole exited while waiting for ${pattern}; output:\n${text}`));
          }
        });
      });
    },
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

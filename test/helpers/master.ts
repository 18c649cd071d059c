import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';
import { watchOutput } from './output-watcher.js';
import { CLI } from './porthole.js';

/** Fast timers for tests: stats every 500 ms, quick stop and restart. */
export const FAST_ENV: Record<string, string> = {
  NP_REPORT_INTERVAL: '500ms',
  NP_SHUTDOWN_TIMEOUT: '2s',
  PORTHOLE_STOP_TIMEOUT: '3s',
  PORTHOLE_RESTART_BACKOFF: '200ms',
  PORTHOLE_STATE_FLUSH: '200ms',
};

export interface MasterProcess {
  proc: ChildProcess;
  port: number;
  key: string;
  stateDir: string;
  /** `http://127.0.0.1:PORT/api/v1` */
  base: string;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM (SIGKILL after graceMs); resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  kill9(): Promise<void>;
}

export function tempStateDir(): string {
  return mkdtempSync(join(tmpdir(), 'porthole-master-'));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Starts `porthole master://127.0.0.1:PORT/api?log=...` with its state in `stateDir`; resolves once it printed its key. */
export async function startMaster(
  options: { stateDir?: string; env?: Record<string, string>; query?: string; port?: number; prefix?: string } = {},
): Promise<MasterProcess> {
  const stateDir = options.stateDir ?? tempStateDir();
  const port = options.port ?? (await freePort());
  const prefix = options.prefix ?? '/api';
  const proc = spawn(process.execPath, [CLI, `master://127.0.0.1:${port}${prefix}?${options.query ?? 'log=debug'}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...FAST_ENV, PORTHOLE_STATE_DIR: stateDir, ...options.env },
  });
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  const { output, waitFor } = watchOutput(proc, exited, 'master');
  let line: string;
  try {
    line = await waitFor(/API key: +([0-9a-f]{32})/, 15_000);
    await waitFor(/Dashboard: .*\n/, 5000);
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  const key = (/([0-9a-f]{32})/.exec(line) as RegExpExecArray)[1] as string;
  return {
    proc,
    port,
    key,
    stateDir,
    base: `http://127.0.0.1:${port}${prefix}/v1`,
    output,
    waitFor,
    async stop(graceMs = 15_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill9() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

export interface ApiResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** One API call; `key` undefined sends no X-API-Key. Body: an object (JSON) or a raw string. */
// biome-ignore lint/suspicious/noExplicitAny: API bodies are JSON the tests pick apart
export async function api<T = any>(
  m: { base: string; key: string } | string,
  method: string,
  path: string,
  body?: unknown,
  key?: string | null,
): Promise<ApiResponse<T>> {
  const base = typeof m === 'string' ? m : m.base;
  const useKey = key === null ? undefined : (key ?? (typeof m === 'string' ? undefined : m.key));
  const headers: Record<string, string> = {};
  if (useKey !== undefined) headers['X-API-Key'] = useKey;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
    redirect: 'manual',
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, body: parsed as T, text };
}

export interface SseEvent {
  event: string;
  // biome-ignore lint/suspicious/noExplicitAny: SSE payloads are JSON the tests pick apart
  data: any;
}

export interface SseClient {
  res: IncomingMessage;
  events: SseEvent[];
  raw(): string;
  /** Resolves with the first event (from the start of the stream) matching `pred` at or after index `from`. */
  waitFor(pred: (e: SseEvent) => boolean, timeoutMs?: number, from?: number): Promise<SseEvent>;
  ended: Promise<void>;
  close(): void;
}

/** Opens `/events` with node:http and parses frames as they arrive. */
export function openEvents(m: { base: string; key: string }, options: { paused?: boolean } = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${m.base}/events`, { headers: { 'X-API-Key': m.key } }, (res) => {
      const events: SseEvent[] = [];
      let raw = '';
      let buffer = '';
      const waiters: Array<{ pred: (e: SseEvent) => boolean; from: number; resolve: (e: SseEvent) => void }> = [];
      const check = () => {
        for (const w of [...waiters]) {
          const e = events.slice(w.from).find(w.pred);
          if (e) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(e);
          }
        }
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        raw += chunk;
        buffer += chunk;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data !== '') events.push({ event, data: JSON.parse(data) });
          end = buffer.indexOf('\n\n');
        }
        check();
      });
      const ended = new Promise<void>((r) => {
        res.once('end', () => r());
        res.once('close', () => r());
        res.once('error', () => r());
      });
      if (options.paused) res.pause();
      resolve({
        res,
        events,
        raw: () => raw,
        ended,
        waitFor(pred, timeoutMs = 10_000, from = 0) {
          const e = events.slice(from).find(pred);
          if (e) return Promise.resolve(e);
          return new Promise((res2, rej) => {
            const timer = setTimeout(
              () =>
                rej(new Error(`timed out waiting for an SSE event; got ${events.map((x) => x.data.type).join(',')}`)),
              timeoutMs,
            );
            waiters.push({
              pred,
              from,
              resolve: (x) => {
                clearTimeout(timer);
                res2(x);
              },
            });
          });
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function until<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

import { type ChildProcess, spawn } from 'node:child_process';
import { MASTER_IPC_ENV } from '../common/logger.js';
import type { LogLevel } from '../config/params.js';
import type { InstanceMessage } from '../instance/ipc.js';
import type { InstanceStats } from '../instance/stats.js';

export interface ChildOptions {
  /** The porthole CLI script the master itself runs (process.argv[1]). */
  cliPath: string;
  /** Node flags for the child (the master's own, so a master run through tsx runs its instances the same way). */
  execArgv: string[];
  env: NodeJS.ProcessEnv;
  /** SIGTERM, then SIGKILL after this long. */
  stopTimeout: number;
}

export interface ChildHandlers {
  ready(mode: number): void;
  stats(stats: InstanceStats): void;
  log(level: Exclude<LogLevel, 'none'>, line: string): void;
  /** `requested`: the exit follows stop(). */
  exit(code: number | null, signal: NodeJS.Signals | null, requested: boolean): void;
}

/** Splits a stream into lines, handing each non-empty one to `onLine`. */
function lines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    rest += chunk;
    let nl = rest.indexOf('\n');
    while (nl >= 0) {
      const line = rest.slice(0, nl).replace(/\r$/, '');
      rest = rest.slice(nl + 1);
      if (line.trim() !== '') onLine(line);
      nl = rest.indexOf('\n');
    }
    if (rest.length > 65536) {
      onLine(rest);
      rest = '';
    }
  });
  stream.on('end', () => {
    if (rest.trim() !== '') onLine(rest);
  });
}

/**
 * One instance process: `porthole <url>` as a child with an IPC channel. Stats, readiness and log lines arrive as
 * structured IPC messages (instance/ipc.ts); stdout/stderr are only relayed as log lines (a crash message lands on
 * stderr), never parsed for figures.
 */
export class InstanceChild {
  readonly proc: ChildProcess;
  readonly startedAt = Date.now();
  readonly exited: Promise<void>;
  private stopRequested = false;

  constructor(url: string, options: ChildOptions, handlers: ChildHandlers) {
    this.proc = spawn(process.execPath, [...options.execArgv, options.cliPath, url], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...options.env, [MASTER_IPC_ENV]: '1' },
    });
    this.stopTimeout = options.stopTimeout;
    this.proc.on('message', (m: InstanceMessage) => {
      if (typeof m !== 'object' || m === null) return;
      if (m.type === 'stats') handlers.stats(m);
      else if (m.type === 'ready') handlers.ready(m.mode);
      else if (m.type === 'log' && typeof m.line === 'string') handlers.log(m.level, m.line);
    });
    lines(this.proc.stdout, (line) => handlers.log('info', line));
    lines(this.proc.stderr, (line) => handlers.log('error', line));
    // 'error' (spawn failure) is followed by 'close'/'exit' only sometimes: settle on whichever comes.
    this.exited = new Promise<void>((resolve) => {
      let done = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (done) return;
        done = true;
        handlers.exit(code, signal, this.stopRequested);
        resolve();
      };
      this.proc.once('exit', (code, signal) => finish(code, signal));
      this.proc.once('error', (err) => {
        handlers.log('error', `cannot start the instance process: ${err.message}`);
        if (this.proc.pid === undefined) finish(1, null);
      });
    });
  }

  private readonly stopTimeout: number;

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null && this.proc.pid !== undefined;
  }

  /** SIGTERM, SIGKILL after the stop timeout; resolves when the process has exited. */
  async stop(): Promise<void> {
    this.stopRequested = true;
    if (!this.alive) return this.exited;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), this.stopTimeout);
    await this.exited;
    clearTimeout(timer);
  }
}

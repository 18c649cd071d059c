import type { LogLevel } from '../config/params.js';

// Instance log lines keep NodePass's text form ("2025-01-02 15:04:05.000  INFO  message", coloured unless NO_COLOR)
// because dashboards show them verbatim and render the colours; pino's JSON would need a formatter in every consumer.
const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, event: 4, none: 5 };
const LABEL: Record<Exclude<LogLevel, 'none'>, string> = {
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARN',
  error: 'ERROR',
  event: 'EVENT',
};
const COLOUR: Record<Exclude<LogLevel, 'none'>, string> = {
  debug: '\x1b[34m',
  info: '\x1b[32m',
  warn: '\x1b[33m',
  error: '\x1b[31m',
  event: '\x1b[36m',
};

export type LogSink = (line: string, level: Exclude<LogLevel, 'none'>) => void;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

export function formatTimestamp(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export class Logger {
  private readonly threshold: number;

  constructor(
    readonly level: LogLevel,
    private readonly sink: LogSink = defaultSink(),
  ) {
    this.threshold = RANK[level];
  }

  enabled(level: Exclude<LogLevel, 'none'>): boolean {
    return RANK[level] >= this.threshold;
  }

  debug(message: string): void {
    if (this.threshold <= 0) this.write('debug', message);
  }
  info(message: string): void {
    if (this.threshold <= 1) this.write('info', message);
  }
  warn(message: string): void {
    if (this.threshold <= 2) this.write('warn', message);
  }
  error(message: string): void {
    if (this.threshold <= 3) this.write('error', message);
  }
  event(message: string): void {
    if (this.threshold <= 4) this.write('event', message);
  }

  private write(level: Exclude<LogLevel, 'none'>, message: string): void {
    this.sink(message, level);
  }
}

export function formatLine(message: string, level: Exclude<LogLevel, 'none'>, colour: boolean): string {
  const stamp = formatTimestamp(new Date());
  return colour
    ? `${stamp}  ${COLOUR[level]}${LABEL[level]}\x1b[0m  ${message}`
    : `${stamp}  ${LABEL[level]}  ${message}`;
}

export function stdoutSink(colour: boolean): LogSink {
  return (message, level) => {
    process.stdout.write(`${formatLine(message, level, colour)}\n`);
  };
}

/** Set by a master in the environment of the instances it spawns: log lines go over the IPC channel. */
export const MASTER_IPC_ENV = 'PORTHOLE_MASTER_IPC';

/**
 * Sends each line to the supervising master as `{type:'log', level, line}` (the `log` message of
 * instance/ipc.ts) instead of printing it; the master shows it in its SSE `log` events.
 */
export function ipcSink(colour: boolean): LogSink {
  return (message, level) => {
    if (process.send !== undefined && process.connected) {
      process.send({ type: 'log', level, line: formatLine(message, level, colour) });
    }
  };
}

/** stdout, or the master's IPC channel when a master spawned this process (it sets PORTHOLE_MASTER_IPC=1). */
export function defaultSink(): LogSink {
  const colour = !process.env.NO_COLOR;
  return process.env[MASTER_IPC_ENV] === '1' && process.send !== undefined ? ipcSink(colour) : stdoutSink(colour);
}

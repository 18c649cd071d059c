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
    private readonly sink: LogSink = stdoutSink(!process.env.NO_COLOR),
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

export function stdoutSink(colour: boolean): LogSink {
  return (message, level) => {
    const stamp = formatTimestamp(new Date());
    const line = colour
      ? `${stamp}  ${COLOUR[level]}${LABEL[level]}\x1b[0m  ${message}\n`
      : `${stamp}  ${LABEL[level]}  ${message}\n`;
    process.stdout.write(line);
  };
}

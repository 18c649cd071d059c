import type { ServerResponse } from 'node:http';
import type { Logger } from '../common/logger.js';
import type { InstanceView } from './schemas.js';

export type EventType = 'initial' | 'create' | 'update' | 'delete' | 'log' | 'shutdown';

/** Go's time.Time JSON form: RFC 3339 with the local zone ("Z" in UTC) and fractional seconds. */
export function rfc3339(d: Date = new Date()): string {
  const offset = -d.getTimezoneOffset();
  const local = new Date(d.getTime() + offset * 60_000);
  const base = local.toISOString().replace('Z', '');
  if (offset === 0) return `${base}Z`;
  const sign = offset > 0 ? '+' : '-';
  const abs = Math.abs(offset);
  return `${base}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** One SSE frame: `event: instance` with the NodePass payload (`data: ` with its space). */
export function frame(type: EventType, instance: InstanceView | null, logs = ''): string {
  return `event: instance\ndata: ${JSON.stringify({ type, time: rfc3339(), instance, logs })}\n\n`;
}

class Subscriber {
  closed = false;

  constructor(
    readonly res: ServerResponse,
    private readonly limit: number,
    private readonly onOverflow: (s: Subscriber) => void,
  ) {}

  /**
   * Writes `text` without waiting: what the socket does not take at once stays in the response's buffer, and a
   * subscriber whose buffer passes `limit` bytes is cut off.
   */
  send(text: string): void {
    if (this.closed) return;
    this.res.write(text);
    if (this.res.writableLength > this.limit) this.onOverflow(this);
  }

  close(last?: string): void {
    if (this.closed) return;
    this.closed = true;
    if (last !== undefined && this.res.writableLength <= this.limit) this.res.end(last);
    else this.res.destroy();
  }
}

/**
 * The SSE fan-out of `/events`. Every subscriber has a bounded queue: a subscriber that does not read is
 * disconnected once its queue passes the limit (it reconnects after `retry` and gets a fresh `initial` set), so a
 * slow client never holds the master up or makes it grow without bound. A comment line every `heartbeat` ms keeps
 * proxies from closing idle streams.
 */
export class SseHub {
  private readonly subscribers = new Set<Subscriber>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    heartbeat: number,
    private readonly bufferLimit: number,
    private readonly logger: Logger,
  ) {
    this.timer = setInterval(() => this.broadcastRaw(': heartbeat\n\n'), heartbeat);
    this.timer.unref();
  }

  get size(): number {
    return this.subscribers.size;
  }

  /** Starts a stream on `res`: headers, `retry`, then an `initial` frame for each of `instances`. */
  subscribe(res: ServerResponse, headers: Record<string, string>, instances: InstanceView[]): void {
    res.writeHead(200, {
      ...headers,
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    const sub = new Subscriber(res, this.bufferLimit, (s) => {
      this.logger.warn('SSE subscriber too slow (buffer full): disconnected');
      this.drop(s);
    });
    this.subscribers.add(sub);
    res.on('close', () => this.drop(sub));
    sub.send('retry: 3000\n\n');
    for (const i of instances) sub.send(frame('initial', i));
  }

  private drop(sub: Subscriber): void {
    this.subscribers.delete(sub);
    sub.close();
  }

  emit(type: Exclude<EventType, 'initial' | 'shutdown'>, instance: InstanceView, logs = ''): void {
    if (this.subscribers.size === 0) return;
    this.broadcastRaw(frame(type, instance, logs));
  }

  private broadcastRaw(text: string): void {
    for (const s of this.subscribers) s.send(text);
  }

  /** Sends `shutdown` to every subscriber and ends every stream. */
  shutdown(): void {
    const last = frame('shutdown', null);
    for (const s of [...this.subscribers]) {
      this.subscribers.delete(s);
      s.close(last);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.shutdown();
  }
}

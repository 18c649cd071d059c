/**
 * The live feed of instance events. EventSource cannot send the X-API-Key header, so `/events` is read with fetch()
 * and a streaming body reader through SseParser. A stream that ends or fails is reopened with exponential backoff
 * (from the server's `retry`, up to 30 s); while it keeps failing, `GET /instances` is polled so the view stays
 * current. A `shutdown` event (the key was regenerated) reconnects at once, with whatever key the client holds then.
 */
import { type ApiClient, ApiError, type Instance } from './api.js';
import { SseParser } from './sse-parser.js';

export interface InstanceEvent {
  type: 'initial' | 'create' | 'update' | 'delete' | 'log' | 'shutdown';
  time: string;
  instance: Instance | null;
  logs: string;
}

export type FeedState = 'connecting' | 'live' | 'polling' | 'stopped';

export interface FeedHandlers {
  event(e: InstanceEvent): void;
  /** A full list (from polling, or right after the initial events of a new stream). */
  snapshot(list: Instance[]): void;
  state(s: FeedState, detail: string): void;
  /** 401: the key no longer works (regenerated elsewhere). The feed has stopped. */
  unauthorized(message: string): void;
}

const MAX_BACKOFF = 30_000;
const POLL_INTERVAL = 5_000;
/** Failures in a row after which the view is kept current by polling. */
const POLL_AFTER = 2;
/** The end of the `initial` burst: no more initial frames for this long. */
const INITIAL_SETTLE = 400;
/** How long a 401 right after `shutdown` waits for this page's own new key. */
const KEY_HANDOVER = 3000;

export class LiveFeed {
  private abort: AbortController | undefined;
  private stopped = false;
  private failures = 0;
  private retry = 3000;
  private pollTimer: ReturnType<typeof setInterval> | undefined;
  private wakeTimer: ReturnType<typeof setTimeout> | undefined;
  private wake: (() => void) | undefined;
  /** When the last stream ended with `shutdown` (a key regeneration, maybe this page's own). */
  private shutdownAt = 0;

  constructor(
    private readonly api: ApiClient,
    private readonly on: FeedHandlers,
  ) {}

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    this.stopPolling();
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wake?.();
    this.on.state('stopped', '');
  }

  /** Reconnect now (after a key change, or when the user asks). */
  reconnect(): void {
    this.failures = 0;
    this.abort?.abort();
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let reason: string;
      let reconnectAtOnce = false;
      const keyUsed = this.api.key;
      try {
        this.on.state(this.pollTimer ? 'polling' : 'connecting', '');
        reconnectAtOnce = await this.readStream();
        reason = reconnectAtOnce ? 'the master ended the stream (API key regenerated)' : 'the stream ended';
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          // Right after a shutdown the refusal may only mean that this page's own regeneration has not handed over
          // the new key yet: give it a moment (setKey wakes us) before calling the key dead.
          if (keyUsed === this.api.key && Date.now() - this.shutdownAt < KEY_HANDOVER) await this.sleep(KEY_HANDOVER);
          if (this.stopped) return;
          if (keyUsed !== this.api.key) continue;
          this.stopped = true;
          this.stopPolling();
          this.on.state('stopped', err.message);
          this.on.unauthorized(err.message);
          return;
        }
        reason = (err as Error).name === 'AbortError' ? 'reconnecting' : (err as Error).message;
      }
      if (this.stopped) return;
      if (reconnectAtOnce) {
        this.failures = 0;
        continue;
      }
      this.failures++;
      if (this.failures >= POLL_AFTER) this.startPolling();
      const delay = Math.min(MAX_BACKOFF, this.retry * 2 ** Math.min(this.failures - 1, 4));
      this.on.state(this.pollTimer ? 'polling' : 'connecting', `${reason}; retrying in ${Math.round(delay / 1000)} s`);
      await this.sleep(delay);
    }
  }

  /** Waits `ms`, or less when reconnect() or stop() wakes the loop. */
  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      this.wakeTimer = setTimeout(resolve, ms);
    });
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wake = undefined;
  }

  /** Reads one stream to its end. Resolves true when it ended with `shutdown` (reconnect at once). */
  private async readStream(): Promise<boolean> {
    this.abort = new AbortController();
    const res = await fetch(`${this.api.base}/events`, {
      headers: { 'X-API-Key': this.api.key, Accept: 'text/event-stream' },
      signal: this.abort.signal,
      cache: 'no-store',
    });
    if (!res.ok || !res.body) {
      let message = `HTTP ${res.status}`;
      try {
        message = ((await res.json()) as { error?: string }).error ?? message;
      } catch {}
      throw new ApiError(res.status, message);
    }
    const parser = new SseParser();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let seen: Instance[] | undefined = [];
    let settle: ReturnType<typeof setTimeout> | undefined;
    const endInitial = () => {
      if (settle) clearTimeout(settle);
      if (seen) this.on.snapshot(seen);
      seen = undefined;
    };
    let live = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return false;
        if (!live) {
          live = true;
          this.failures = 0;
          this.stopPolling();
          this.on.state('live', '');
        }
        for (const message of parser.push(value)) {
          if (parser.retry !== undefined) this.retry = Math.max(500, parser.retry);
          if (message.event !== 'instance') continue;
          let e: InstanceEvent;
          try {
            e = JSON.parse(message.data) as InstanceEvent;
          } catch {
            continue; // a frame we cannot read is skipped, not fatal
          }
          if (e.type === 'initial' && seen && e.instance) {
            seen.push(e.instance);
            if (settle) clearTimeout(settle);
            settle = setTimeout(endInitial, INITIAL_SETTLE);
            continue;
          }
          if (seen) endInitial();
          if (e.type === 'shutdown') {
            this.shutdownAt = Date.now();
            return true;
          }
          this.on.event(e);
        }
      }
    } finally {
      if (settle) clearTimeout(settle);
      reader.cancel().catch(() => {});
    }
  }

  private startPolling(): void {
    if (this.pollTimer) return;
    const poll = () => {
      this.api.instances().then(
        (list) => this.on.snapshot(list),
        (err: unknown) => {
          if (err instanceof ApiError && err.status === 401) {
            this.stop();
            this.on.unauthorized(err.message);
          }
        },
      );
    };
    poll();
    this.pollTimer = setInterval(poll, POLL_INTERVAL);
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }
}

import type { Logger } from '../common/logger.js';
import type { HubDialer } from './hub-dialer.js';
import { RefusedError } from './hub-dialer.js';
import { HubSession, type SessionHandlers } from './session.js';

export interface ReconnectPolicy {
  initialDelay: number;
  maxDelay: number;
  /** Consecutive failed attempts before giving up; 0 = never. */
  maxRetries: number;
}

/** Exponential backoff with jitter: attempt n (0-based) waits a random time in [d/2, d], d = min(max, initial·2ⁿ). */
export function backoffDelay(policy: ReconnectPolicy, attempt: number, random = Math.random): number {
  const d = Math.min(policy.maxDelay, policy.initialDelay * 2 ** Math.min(attempt, 30));
  return Math.round(d / 2 + random() * (d / 2));
}

export type KeeperState = 'stopped' | 'connecting' | 'connected' | 'waiting' | 'gave-up' | 'shutdown';

/**
 * Session maintenance: keeps one session with the hub, reconnecting with backoff after a loss, until stopped, shut
 * down by the hub, or `maxRetries` consecutive attempts failed.
 */
export class SessionKeeper {
  session: HubSession | undefined;
  state: KeeperState = 'stopped';
  lastError = '';
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  onConnected: (session: HubSession) => void = () => {};

  constructor(
    private readonly dialer: HubDialer,
    private readonly identity: { tunnelId: string; secret: string; name: string },
    private readonly policy: ReconnectPolicy,
    private readonly handlers: SessionHandlers,
    private readonly logger: Logger,
  ) {}

  get connected(): boolean {
    return this.session !== undefined && !this.session.isClosed;
  }

  get running(): boolean {
    return this.state === 'connecting' || this.state === 'connected' || this.state === 'waiting';
  }

  start(): void {
    if (this.running) return;
    this.failures = 0;
    const generation = ++this.generation;
    void this.attempt(generation);
  }

  stop(): void {
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.state = 'stopped';
    const session = this.session;
    this.session = undefined;
    session?.close('stopped');
  }

  private async attempt(generation: number): Promise<void> {
    if (generation !== this.generation) return;
    this.state = 'connecting';
    try {
      const session = await HubSession.open(this.dialer, this.identity, this.handlers, this.logger);
      if (generation !== this.generation) {
        session.close('stopped');
        return;
      }
      this.failures = 0;
      this.session = session;
      this.state = 'connected';
      this.lastError = '';
      this.logger.info(`tunnel ${this.identity.tunnelId} connected to the hub (session ${session.sessionId})`);
      session.onClose = (reason, shutdown) => {
        if (generation !== this.generation) return;
        this.session = undefined;
        this.lastError = reason;
        if (shutdown) {
          this.state = 'shutdown';
          this.logger.error(`${reason}; not reconnecting`);
          return;
        }
        this.logger.warn(`tunnel session lost: ${reason}; reconnecting`);
        this.schedule(generation);
      };
      this.onConnected(session);
    } catch (err) {
      if (generation !== this.generation) return;
      this.lastError = (err as Error).message;
      this.failures++;
      // A refusal (bad secret, tunnel shut down) is retried like a network failure, with the same backoff: the
      // admin may fix it on the hub, and maxRetries bounds it.
      const kind = err instanceof RefusedError ? 'refused' : 'failed';
      this.logger.warn(`connecting to the hub ${kind} (${this.failures}): ${this.lastError}`);
      if (this.policy.maxRetries > 0 && this.failures >= this.policy.maxRetries) {
        this.state = 'gave-up';
        this.logger.error(`giving up after ${this.failures} failed attempts (reconnect.maxRetries)`);
        return;
      }
      this.schedule(generation);
    }
  }

  private schedule(generation: number): void {
    const delay = backoffDelay(this.policy, this.failures);
    this.state = 'waiting';
    this.timer = setTimeout(() => void this.attempt(generation), delay);
  }
}

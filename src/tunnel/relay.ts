import type { Socket } from 'node:net';
import type { Flow } from './traffic.js';

export interface RelayOptions {
  /** user → target */
  up: Flow;
  /** target → user */
  down: Flow;
  /** Close the session after this many ms without a byte in either direction; 0 = never. */
  idleTimeout: number;
  /** Called once, when both sockets are closed. `error` is the first error seen, if any. */
  onClose?: (error: Error | undefined) => void;
}

/**
 * Pipes bytes between a user socket and a target socket with backpressure, half-close, counting, pacing and an idle
 * timeout. Both sockets must be created with allowHalfOpen so that one finished direction does not end the other.
 * The two directions start separately so that the target → user direction can flow while the first user bytes are
 * still being inspected.
 */
export class Relay {
  private closedCount = 0;
  private firstError: Error | undefined;
  private finished = false;

  constructor(
    readonly user: Socket,
    readonly target: Socket,
    private readonly options: RelayOptions,
  ) {
    for (const socket of [user, target]) {
      socket.setNoDelay(true);
      socket.on('error', (err) => this.fail(err));
      socket.on('close', () => this.onSocketClose());
    }
    if (options.idleTimeout > 0) {
      // A socket's timer restarts on reads and writes, so it fires only when both directions are idle.
      const onIdle = () => this.fail(new Error(`idle for ${options.idleTimeout}ms`));
      user.setTimeout(options.idleTimeout, onIdle);
      target.setTimeout(options.idleTimeout, onIdle);
    }
  }

  /**
   * Starts user → target, first writing `head` (bytes already read from the user, e.g. while sniffing).
   * `userEnded`: the user's 'end' was consumed before the relay took over, so only `head` and a FIN remain to send.
   */
  startUp(head?: Buffer, userEnded = false): void {
    if (head && head.length > 0) {
      this.options.up.count(head.length);
      this.target.write(head);
    }
    if (userEnded) this.target.end();
    else pump(this.user, this.target, this.options.up);
  }

  startDown(): void {
    pump(this.target, this.user, this.options.down);
  }

  /** Tears the session down now (both sockets destroyed). */
  destroy(error?: Error): void {
    this.fail(error ?? new Error('relay destroyed'));
  }

  private fail(error: Error): void {
    this.firstError ??= error;
    this.user.destroy();
    this.target.destroy();
  }

  private onSocketClose(): void {
    this.closedCount += 1;
    if (this.closedCount === 1) {
      // One side is gone for good: whatever it had not yet delivered cannot arrive any more, so end the other side
      // gracefully (flushing what it still has queued) unless it is already done.
      const other = this.user.destroyed ? this.target : this.user;
      if (!other.writableEnded) other.end();
      other.destroySoon();
      return;
    }
    if (!this.finished) {
      this.finished = true;
      this.options.onClose?.(this.firstError);
    }
  }
}

/** One direction: reads from `src`, writes to `dst`, pauses on backpressure or when the flow's bucket runs dry. */
function pump(src: Socket, dst: Socket, flow: Flow): void {
  let waitingDrain = false;
  let waitingTokens = false;
  const bucket = flow.bucket;
  const resume = () => {
    if (!waitingDrain && !waitingTokens) src.resume();
  };
  dst.on('drain', () => {
    if (waitingDrain) {
      waitingDrain = false;
      resume();
    }
  });
  src.on('data', (chunk: Buffer) => {
    flow.count(chunk.length);
    if (!dst.write(chunk)) {
      waitingDrain = true;
      src.pause();
    }
    if (bucket !== undefined) {
      const wait = bucket.take(chunk.length);
      if (wait > 0) {
        waitingTokens = true;
        src.pause();
        setTimeout(() => {
          waitingTokens = false;
          resume();
        }, wait);
      }
    }
  });
  src.on('end', () => {
    // Half-close: pass the FIN on; the other direction keeps flowing.
    if (!dst.writableEnded) dst.end();
  });
  src.resume();
}

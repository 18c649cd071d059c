import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { isSpliceable, spliceIneligibility, spliceRelay } from './splice-relay.js';
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
 * Pipes bytes between a user stream and a target stream with backpressure, half-close, counting, pacing and an idle
 * timeout. Either end is a TCP/TLS socket or a pool stream of another transport (a WebSocket or HTTP/2 stream): any
 * Duplex that half-closes. Sockets must be created with allowHalfOpen so that one finished direction does not end
 * the other. The two directions start separately so that the target → user direction can flow while the first user
 * bytes are still being inspected.
 */
export class Relay {
  private closedCount = 0;
  private firstError: Error | undefined;
  private finished = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private nativeSession = false;
  private notNativeBecause: string | undefined;

  constructor(
    readonly user: Duplex,
    readonly target: Duplex,
    private readonly options: RelayOptions,
  ) {
    for (const stream of [user, target]) {
      if (stream instanceof Socket) stream.setNoDelay(true);
      stream.on('error', (err) => this.fail(err));
      stream.on('close', () => this.onSocketClose());
    }
    if (options.idleTimeout > 0) {
      // One timer for both directions, refreshed by every chunk either way: it fires only when both are idle.
      // (Not Socket.setTimeout: pool streams of the other transports have no such timer.)
      this.idleTimer = setTimeout(() => this.fail(new Error(`idle for ${options.idleTimeout}ms`)), options.idleTimeout);
    }
  }

  /**
   * Starts user → target, first writing `head` (bytes already read from the user, e.g. while sniffing).
   * `userEnded`: the user's 'end' was consumed before the relay took over, so only `head` and a FIN remain to send.
   */
  startUp(head?: Buffer, userEnded = false): void {
    // The native relay takes the head along (it counts it when delivered), so it is not written here first.
    if (!userEnded && this.startSplice(head)) return;
    if (head && head.length > 0) {
      this.options.up.count(head.length);
      this.target.write(head);
    }
    if (userEnded) this.target.end();
    else pump(this.user, this.target, this.options.up, this.idleTimer);
  }

  /** Both directions run in the native splice relay (see startSplice). */
  get native(): boolean {
    return this.nativeSession;
  }

  /** Why the session stayed in JS, once startUp has tried the native relay (for a debug log line). */
  get notNativeReason(): string | undefined {
    return this.notNativeBecause;
  }

  /**
   * Hands both directions to the splice(2) addon when it is built and the pair is eligible (plain TCP sockets, or a
   * WebSocket pool stream over ws:// whose framing the addon then carries; no rate limit; nothing buffered in JS on
   * the sockets: see splice-relay.ts and docs/splice-relay.md). The addon counts and enforces the idle timeout itself;
   * when it ends, an error goes through fail() and both sides are destroyed, so 'close' and onClose work as in the JS
   * path. PORTHOLE_SPLICE=0 turns it off.
   */
  private startSplice(head: Buffer | undefined): boolean {
    if (!isSpliceable(this.user) || !isSpliceable(this.target)) {
      this.notNativeBecause = 'a side is neither a TCP socket nor a ws:// WebSocket';
      return false;
    }
    const options = {
      up: this.options.up,
      down: this.options.down,
      idleTimeout: this.options.idleTimeout,
      ...(head !== undefined && head.length > 0 ? { upHead: head } : {}),
      onEnd: (error: Error | undefined) => {
        if (error) this.fail(error);
      },
    };
    const why = spliceIneligibility(this.user, this.target, options);
    const session = why === undefined ? spliceRelay(this.user, this.target, options) : undefined;
    if (session === undefined) {
      this.notNativeBecause = why ?? 'the addon could not take the pair';
      return false;
    }
    this.nativeSession = true;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    return true;
  }

  startDown(): void {
    pump(this.target, this.user, this.options.down, this.idleTimer);
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
      endThenDestroy(other);
      return;
    }
    if (!this.finished) {
      this.finished = true;
      clearTimeout(this.idleTimer);
      this.options.onClose?.(this.firstError);
    }
  }
}

/** Ends `stream` (flushing what it has queued), then destroys it; Socket.destroySoon for any Duplex. */
function endThenDestroy(stream: Duplex): void {
  if (stream instanceof Socket) {
    if (!stream.writableEnded) stream.end();
    stream.destroySoon();
    return;
  }
  if (stream.writableFinished) {
    stream.destroy();
    return;
  }
  stream.once('finish', () => stream.destroy());
  if (!stream.writableEnded) stream.end();
}

/**
 * While a direction's writes are batched, reading goes on until this many bytes wait in the destination; past it the
 * source pauses until the destination drains (the bound on what one direction holds in memory besides the sockets').
 */
const BATCH_LIMIT = 256 * 1024;

/**
 * One direction: reads from `src`, writes to `dst`, pauses on backpressure or when the flow's bucket runs dry.
 *
 * Writes are batched per event-loop turn: the first chunk of a turn corks `dst` and a setImmediate uncorks it, so all
 * chunks read in that turn leave in one writev (one syscall, one HTTP/2 DATA write, one WebSocket message). This is
 * what makes TLS sources cheap: a TLS socket delivers 16 KiB records one by one (each its own tick), which unbatched
 * cost one write syscall each on the other side. The extra latency is the rest of the current loop turn.
 */
function pump(src: Duplex, dst: Duplex, flow: Flow, idleTimer: NodeJS.Timeout | undefined): void {
  let waitingDrain = false;
  let waitingTokens = false;
  let corked = false;
  const bucket = flow.bucket;
  const resume = () => {
    if (!waitingDrain && !waitingTokens) src.resume();
  };
  const uncork = () => {
    corked = false;
    if (!dst.destroyed) dst.uncork();
  };
  dst.on('drain', () => {
    if (waitingDrain) {
      waitingDrain = false;
      resume();
    }
  });
  src.on('data', (chunk: Buffer) => {
    flow.count(chunk.length);
    idleTimer?.refresh();
    if (!corked && !dst.writableEnded) {
      corked = true;
      dst.cork();
      setImmediate(uncork);
    }
    // write() says false past the destination's own (small) high-water mark; while corked, reading goes on up to
    // BATCH_LIMIT. A false from write() guarantees the 'drain' that resumes us.
    if (!dst.write(chunk) && dst.writableLength >= BATCH_LIMIT) {
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

/**
 * A token bucket in bytes. `take` always grants (the caller has already read the bytes) and returns how long the
 * caller must wait before reading again so that the long-run rate stays at `bytesPerSecond`.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly capacity: number;

  constructor(
    readonly bytesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
    burstSeconds = 0.05,
  ) {
    this.capacity = Math.max(bytesPerSecond * burstSeconds, 16 * 1024);
    this.tokens = this.capacity;
    this.last = this.now();
  }

  /** Takes `n` bytes; returns the delay in ms before the next take (0 when within budget). */
  take(n: number): number {
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) * this.bytesPerSecond) / 1000);
    this.last = t;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.bytesPerSecond;
  }

  /** Whether `n` bytes fit now; takes them when they do (for datagrams, which are dropped rather than delayed). */
  tryTake(n: number): boolean {
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) * this.bytesPerSecond) / 1000);
    this.last = t;
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Bytes received but not yet passed on (an incomplete message head, or input held back), appended chunk by chunk.
 * The usual case, one chunk, is kept as it came; only when chunks pile up are they copied into a store that grows by
 * doubling, so a head dribbled in one byte at a time costs linear, not quadratic, copying.
 */
export class PendingBytes {
  private store: Buffer = EMPTY;
  private owned = false;
  private start = 0;
  private end = 0;

  get length(): number {
    return this.end - this.start;
  }

  /** The pending bytes (a view: valid until the next append or consume). */
  view(): Buffer {
    return this.store.subarray(this.start, this.end);
  }

  append(chunk: Buffer): void {
    if (this.length === 0) {
      this.store = chunk;
      this.owned = false;
      this.start = 0;
      this.end = chunk.length;
      return;
    }
    if (!this.owned || this.end + chunk.length > this.store.length) {
      const size = Math.max(2 * (this.length + chunk.length), 4096);
      const grown = Buffer.allocUnsafe(size);
      this.store.copy(grown, 0, this.start, this.end);
      this.end = this.length;
      this.start = 0;
      this.store = grown;
      this.owned = true;
    }
    chunk.copy(this.store, this.end);
    this.end += chunk.length;
  }

  /** Drops the first `n` pending bytes (they were passed on). */
  consume(n: number): void {
    this.start += n;
    if (this.start >= this.end) this.clear();
  }

  clear(): void {
    this.store = EMPTY;
    this.owned = false;
    this.start = 0;
    this.end = 0;
  }
}

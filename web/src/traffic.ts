/**
 * Rates and history from the master's cumulative byte counters. The counters only grow, except on `reset` (or a
 * counter that otherwise goes down): then the new value is the traffic since the reset, never a negative rate.
 * Pure and clock-free (callers pass times), so it is unit-tested.
 */

export interface Counters {
  tcprx: number;
  tcptx: number;
  udprx: number;
  udptx: number;
}

export interface TrafficPoint {
  /** ms since the epoch */
  t: number;
  /** bytes per second from users (tcprx + udprx) */
  rx: number;
  /** bytes per second to users (tcptx + udptx) */
  tx: number;
}

/** How far back the chart goes. */
export const HISTORY_MS = 10 * 60 * 1000;

export class TrafficHistory {
  private last: { t: number; rx: number; tx: number } | undefined;
  readonly points: TrafficPoint[] = [];

  constructor(private readonly windowMs = HISTORY_MS) {}

  /** Takes a sample of the counters at time `t` (ms); returns the new point, or undefined for the first sample. */
  sample(c: Counters, t: number): TrafficPoint | undefined {
    const rx = c.tcprx + c.udprx;
    const tx = c.tcptx + c.udptx;
    const prev = this.last;
    if (prev && t <= prev.t) {
      // Same instant (two events in one report): keep the newest totals, add no point.
      this.last = { t: prev.t, rx, tx };
      return undefined;
    }
    this.last = { t, rx, tx };
    if (!prev) return undefined;
    const seconds = (t - prev.t) / 1000;
    // A counter below its last value was reset: what it shows now is what came since.
    const drx = rx >= prev.rx ? rx - prev.rx : rx;
    const dtx = tx >= prev.tx ? tx - prev.tx : tx;
    const point = { t, rx: drx / seconds, tx: dtx / seconds };
    this.points.push(point);
    const oldest = t - this.windowMs;
    let drop = 0;
    while (drop < this.points.length && (this.points[drop] as TrafficPoint).t < oldest) drop++;
    if (drop > 0) this.points.splice(0, drop);
    return point;
  }

  /** The latest rates, or zeros before two samples. */
  current(): TrafficPoint {
    return this.points.at(-1) ?? { t: this.last?.t ?? 0, rx: 0, tx: 0 };
  }
}

/** A bounded ring of numeric samples for the master panel's small charts. */
export class SeriesWindow {
  readonly t: number[] = [];
  readonly values: number[][];

  constructor(
    series: number,
    private readonly windowMs = HISTORY_MS,
  ) {
    this.values = Array.from({ length: series }, () => []);
  }

  push(t: number, values: number[]): void {
    this.t.push(t);
    for (const [i, v] of values.entries()) this.values[i]?.push(v);
    while (this.t.length > 0 && (this.t[0] as number) < t - this.windowMs) {
      this.t.shift();
      for (const s of this.values) s.shift();
    }
  }
}

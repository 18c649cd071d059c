import { TokenBucket } from './token-bucket.js';

/**
 * Cumulative traffic of one instance. RX counts bytes arriving from the side that initiated the session (the user),
 * TX bytes sent back to it, as NodePass counts them on its user-facing sockets.
 */
export class TrafficCounters {
  tcpRx = 0;
  tcpTx = 0;
  udpRx = 0;
  udpTx = 0;
  tcpSessions = 0;
  udpSessions = 0;
}

/** One direction of traffic: where its bytes are counted and, with `rate`, the bucket that paces it. */
export interface Flow {
  count(bytes: number): void;
  bucket: TokenBucket | undefined;
}

/** The four flows of an instance (TCP/UDP × up/down) with the instance-wide rate limit per direction. */
export class InstanceTraffic {
  readonly counters = new TrafficCounters();
  readonly tcpUp: Flow;
  readonly tcpDown: Flow;
  readonly udpUp: Flow;
  readonly udpDown: Flow;

  constructor(rateMbps: number) {
    const c = this.counters;
    // NodePass: one limiter per instance with a read (upload) and a write (download) bucket, shared by TCP and UDP.
    const up = rateMbps > 0 ? new TokenBucket(rateMbps * 125_000) : undefined;
    const down = rateMbps > 0 ? new TokenBucket(rateMbps * 125_000) : undefined;
    this.tcpUp = {
      count: (n) => {
        c.tcpRx += n;
      },
      bucket: up,
    };
    this.tcpDown = {
      count: (n) => {
        c.tcpTx += n;
      },
      bucket: down,
    };
    this.udpUp = {
      count: (n) => {
        c.udpRx += n;
      },
      bucket: up,
    };
    this.udpDown = {
      count: (n) => {
        c.udpTx += n;
      },
      bucket: down,
    };
  }
}

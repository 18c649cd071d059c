import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../common/logger.js';
import { decodeSignal, encodeSignal, LineSplitter, type Signal, SignalDecodeError } from './signals.js';

export interface ControlChannelOptions {
  key: string;
  /** Ping period; silence for three of them is fatal (NodePass: 3 × NP_REPORT_INTERVAL). */
  reportInterval: number;
  logger: Logger;
  /** Every signal except ping/pong, which the channel answers and measures itself. */
  onSignal(signal: Signal): void;
  /** The channel is gone (closed, failed or silent); called once. */
  onFatal(reason: string): void;
  /** Every report interval, before the ping (NodePass's health loop: where it decides to flush). */
  onHealthCheck?(): void;
}

/**
 * The control channel of a dual-end tunnel (pool connection 00000000): newline-framed signals both ways, a ping
 * every report interval whose pong gives the PING figure, and a watchdog that ends the tunnel when the peer falls
 * silent.
 */
export class ControlChannel {
  /** Round trip of the last answered ping, in ms. */
  rtt = 0;
  private pingSentAt = 0;
  private readonly splitter = new LineSplitter();
  private readonly pinger: NodeJS.Timeout;
  private readonly watchdog: NodeJS.Timeout;
  private ended = false;

  constructor(
    private readonly socket: Duplex,
    private readonly options: ControlChannelOptions,
  ) {
    if (socket instanceof Socket) socket.setNoDelay(true);
    // On a pool stream that is not a socket (an HTTP/2 stream), events arrive while Node is still inside nghttp2's
    // receive; destroying other streams of the session right there (a teardown, a verify) makes Node 20 spin in
    // Http2Session::SendPendingData until it runs out of memory. So react on the next turn of the event loop.
    const react: (f: () => void) => void = socket instanceof Socket ? (f) => f() : (f) => setImmediate(f);
    socket.on('data', (chunk: Buffer) => react(() => this.onData(chunk)));
    socket.on('error', (err) => react(() => this.fail(`control channel error: ${err.message}`)));
    socket.on('close', () => react(() => this.fail('control channel closed')));
    this.watchdog = setTimeout(
      () => this.fail(`control channel silent for ${3 * options.reportInterval}ms`),
      3 * options.reportInterval,
    );
    this.pinger = setInterval(() => {
      options.onHealthCheck?.();
      this.ping();
    }, options.reportInterval);
    socket.resume();
  }

  send(signal: Signal): void {
    if (!this.ended) this.socket.write(encodeSignal(signal, this.options.key));
  }

  ping(): void {
    this.pingSentAt = performance.now();
    this.send({ action: 'ping' });
  }

  close(): void {
    this.ended = true;
    clearInterval(this.pinger);
    clearTimeout(this.watchdog);
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    let lines: string[];
    try {
      lines = this.splitter.push(chunk);
    } catch (err) {
      this.fail((err as Error).message);
      return;
    }
    if (lines.length > 0) this.watchdog.refresh();
    for (const line of lines) {
      let signal: Signal;
      try {
        signal = decodeSignal(line, this.options.key);
      } catch (err) {
        if (!(err instanceof SignalDecodeError)) throw err;
        this.options.logger.warn(`Ignored control line: ${err.message}`);
        continue;
      }
      if (signal.action === 'ping') this.send({ action: 'pong' });
      else if (signal.action === 'pong') {
        if (this.pingSentAt > 0) this.rtt = performance.now() - this.pingSentAt;
      } else this.options.onSignal(signal);
    }
  }

  /** Ends the tunnel for `reason` (reported through onFatal, as when the peer goes). */
  abort(reason: string): void {
    this.fail(reason);
  }

  private fail(reason: string): void {
    if (this.ended) return;
    this.close();
    this.options.onFatal(reason);
  }
}

import { type IncomingMessage, request } from 'node:http';
import type { Socket } from 'node:net';
import { handshakeToken } from '../../src/instance/handshake.js';
import { decodeSignal, encodeSignal, type Signal } from '../../src/instance/signals.js';

/**
 * Pieces of a NodePass peer spoken by hand, for tests that check what our instances do on the wire: the handshake and
 * a control channel that answers pings (so the instance's silence watchdog stays quiet) and records every other signal.
 */

/** The NodePass handshake: GET / with the HMAC token; returns the status and the body text. */
export async function nodepassHandshake(port: number, key: string): Promise<{ status: number; body: string }> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        headers: { Host: 'none', Authorization: `Bearer ${handshakeToken(key)}` },
        agent: false,
      },
      resolve,
    );
    req.on('error', reject);
    req.end();
  });
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() };
}

/** A control channel (pool connection 00000000, type 0) that pongs every ping and keeps the other signals. */
export class HandControlChannel {
  readonly signals: Signal[] = [];
  private pending = '';

  constructor(
    private readonly socket: Socket,
    private readonly key: string,
  ) {
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      const lines = (this.pending + text).split('\n');
      this.pending = lines.pop() ?? '';
      for (const line of lines) {
        const signal = decodeSignal(line, key);
        if (signal.action === 'ping') this.send({ action: 'pong' });
        else this.signals.push(signal);
      }
    });
  }

  send(signal: Signal): void {
    this.socket.write(encodeSignal(signal, this.key));
  }

  /** Resolves with the first recorded signal of `action`, rejecting after `ms`. */
  async waitFor(action: Signal['action'], ms: number): Promise<Signal> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.signals.find((s) => s.action === action);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`no ${action} signal within ${ms}ms; got ${JSON.stringify(this.signals)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

import type { Duplex } from 'node:stream';
import { type ConnectionPool, PoolMemberGoneError } from '../tunnel/pool.js';
import type { ControlChannel } from './control-channel.js';
import type { Signal } from './signals.js';

export interface CertificateVerifierOptions {
  pool: ConnectionPool;
  control: ControlChannel;
  /** The fingerprint this side knows for pool connection `id`: the server its own, the client what it saw. */
  fingerprintOf(id: string): string | undefined;
  poolGetTimeout: number;
}

/**
 * NodePass's certificate pinning for tls=1 (the only mode that uses it). Each side names one of its idle pool
 * connections in a `verify` signal with the fingerprint it knows for it, and closes it; the receiver looks up that
 * connection and compares. The ingress serves users only after its own check of the peer's `verify` passed.
 * Both sides may name the same connection at once (NodePass takes the oldest); we send the newest and also accept
 * a `verify` naming a connection we spent on our own.
 */
export class CertificateVerifier {
  private readonly spent = new Map<string, string | undefined>();

  constructor(private readonly options: CertificateVerifierOptions) {}

  /** Sends our `verify`; ends the tunnel when no pool connection is there to send it on. */
  begin(): void {
    void this.send().then((sent) => {
      if (!sent) this.options.control.abort('no idle pool connection to send verify on');
    });
  }

  /** Checks the peer's `verify`: `onPassed` when it matches, the tunnel ends when it does not. */
  check(signal: Signal, onPassed: () => void): void {
    void this.receive(signal).then((failure) => {
      if (failure === undefined) onPassed();
      else this.options.control.abort(failure);
    });
  }

  /** Sends our `verify` on the newest idle connection, waiting for one up to the pool timeout. */
  async send(): Promise<boolean> {
    const { pool, control, fingerprintOf, poolGetTimeout } = this.options;
    const deadline = Date.now() + poolGetTimeout;
    let conn = pool.takeNewest();
    while (conn === undefined && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      conn = pool.takeNewest();
    }
    if (conn === undefined) return false;
    const fp = fingerprintOf(conn.id);
    this.spent.set(conn.id, fp);
    retire(conn.socket, poolGetTimeout);
    control.send({ action: 'verify', id: conn.id, ...(fp ? { fp } : {}) });
    return true;
  }

  /** Checks the peer's `verify`; resolves with the reason it failed, or undefined when it passed. */
  async receive(signal: Signal): Promise<string | undefined> {
    const { pool, fingerprintOf, poolGetTimeout } = this.options;
    const id = signal.id ?? '';
    if (!signal.fp) return 'verify without a fingerprint';
    let known: string | undefined;
    if (this.spent.has(id)) known = this.spent.get(id);
    else {
      try {
        (await pool.get(id, poolGetTimeout)).destroy();
      } catch (err) {
        // The peer may close the connection it names before its `verify` arrives (we do; on the WebSocket and HTTP/2
        // pools that removes it here at once). It did arrive, so its certificate is known: compare as NodePass does.
        if (!(err instanceof PoolMemberGoneError)) return `verify names pool connection ${id}, which never arrived`;
      }
      known = fingerprintOf(id);
    }
    if (known !== signal.fp) return `certificate fingerprint mismatch: peer ${signal.fp}, here ${known ?? 'none'}`;
    return undefined;
  }
}

/**
 * Closes a member named in our `verify` without losing what was written to it. The member may be brand new: the
 * server wrote its id a moment ago, and on a WebSocket or TLS member that write can still sit in a user-space buffer,
 * which `destroy()` would drop — the peer's dial then fails, it never learns the id, and its check of our `verify`
 * fails ("never arrived"), restarting the tunnel. Ending flushes first; the peer closes its side when it checks our
 * `verify`, and a peer that never does is cut off after `grace` ms.
 */
function retire(member: Duplex, grace: number): void {
  member.end();
  setTimeout(() => member.destroy(), grace).unref();
}

import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { arch, hostname, platform } from 'node:os';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { VERSION } from '../common/version.js';
import type { Endpoint } from '../config/url.js';
import { parseEndpoint } from '../config/url.js';
import { encodeFrame, readFrame, type TunnelInfo } from '../hub/protocol.js';

const DIAL_TIMEOUT = 10_000;
/** tls.connect passes allowHalfOpen to its socket (the relay needs half-close) though its types omit it. */
const HALF_OPEN = { allowHalfOpen: true } as object;

export class HubTrustError extends Error {
  override readonly name = 'HubTrustError';
}
export class RefusedError extends Error {
  override readonly name = 'RefusedError';
}

export interface HubTrust {
  tls: boolean;
  /** Pinned `sha256:AA:BB..`; '' = accept and report (only at configure). */
  fingerprint: string;
  ca: string;
  serverName: string;
}

export function tunnelInfo(name: string): TunnelInfo {
  return { name: name || hostname(), hostname: hostname(), version: VERSION, os: platform(), arch: arch() };
}

/**
 * Dials the hub's tunnel listener: TLS verified by the pinned certificate fingerprint (or by a CA), or plain TCP for
 * a hub without TLS. Resolves with the socket and the fingerprint the hub presented.
 */
export class HubDialer {
  readonly endpoint: Endpoint;
  private readonly caPem: string | undefined;

  constructor(
    hub: string,
    private readonly trust: HubTrust,
  ) {
    this.endpoint = parseEndpoint(hub, 'hub');
    this.caPem = trust.ca ? readFileSync(trust.ca, 'utf8') : undefined;
  }

  dial(): Promise<{ socket: Socket; fingerprint: string }> {
    const { host, port } = this.endpoint;
    return new Promise((resolve, reject) => {
      let socket: Socket | TLSSocket;
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`hub ${host}:${port} did not answer within ${DIAL_TIMEOUT}ms`));
      }, DIAL_TIMEOUT);
      const done = (err?: Error, fingerprint = '') => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        if (err) {
          socket.destroy();
          reject(err);
        } else {
          socket.setNoDelay(true);
          resolve({ socket, fingerprint });
        }
      };
      const onError = (err: Error) => done(err);
      if (!this.trust.tls) {
        socket = netConnect({ host, port, allowHalfOpen: true }, () => done());
      } else if (this.caPem !== undefined) {
        socket = tlsConnect(
          { host, port, ca: this.caPem, servername: this.trust.serverName || host, ...HALF_OPEN },
          () => done(undefined, `sha256:${(socket as TLSSocket).getPeerX509Certificate()?.fingerprint256 ?? ''}`),
        );
      } else {
        // Verified below against the pinned fingerprint, not against a CA: the hub's certificate is self-signed.
        socket = tlsConnect({ host, port, rejectUnauthorized: false, ...HALF_OPEN }, () => {
          const seen = `sha256:${(socket as TLSSocket).getPeerX509Certificate()?.fingerprint256 ?? ''}`;
          if (this.trust.fingerprint !== '' && seen !== this.trust.fingerprint) {
            done(new HubTrustError(`hub certificate ${seen} does not match the pinned ${this.trust.fingerprint}`));
          } else done(undefined, seen);
        });
      }
      socket.on('error', onError);
    });
  }
}

/** `connector configure`: registers with a token; returns the new tunnel's id and secret and the hub's fingerprint. */
export async function register(
  dialer: HubDialer,
  token: string,
  info: TunnelInfo,
): Promise<{ tunnelId: string; secret: string; fingerprint: string }> {
  const { socket, fingerprint } = await dialer.dial();
  try {
    socket.write(encodeFrame({ type: 'register', token, ...info }));
    const reply = await readFrame(socket, DIAL_TIMEOUT);
    if (reply.type === 'refused') throw new RefusedError(`the hub refused the registration: ${reply.error}`);
    if (reply.type !== 'registered') throw new RefusedError(`unexpected answer "${reply.type}" from the hub`);
    return { tunnelId: reply.tunnelId, secret: reply.secret, fingerprint };
  } finally {
    socket.destroy();
  }
}

import { readFileSync } from 'node:fs';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { arch, hostname, platform } from 'node:os';
import type { Duplex } from 'node:stream';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { VERSION } from '../common/version.js';
import { ConfigError } from '../config/errors.js';
import type { Endpoint } from '../config/url.js';
import { parseEndpoint } from '../config/url.js';
import { encodeFrame, HUB_WEBSOCKET_PATH, readFrame, type TunnelInfo } from '../hub/protocol.js';
import { dialWebSocket } from '../tunnel/transport/websocket-dial.js';

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

/** How a connector reaches its hub: the framed protocol on TCP (TLS unless `--no-tls`), or inside WebSockets. */
export type HubAddress =
  | { transport: 'tcp'; endpoint: Endpoint }
  | { transport: 'ws' | 'wss'; endpoint: Endpoint; url: string };

/** The transports `--transport` names. */
export const HUB_TRANSPORTS = ['tcp', 'ws', 'wss'] as const;
export type HubTransport = (typeof HUB_TRANSPORTS)[number];

/**
 * Parses a hub address: `host:port`, or `ws://host[:port][/path]` / `wss://host[:port][/path]` (default ports 80 and
 * 443; a URL without a path, or with `/`, gets the hub's HUB_WEBSOCKET_PATH, so `wss://hub.example.com` is enough).
 */
export function parseHubAddress(text: string, what = 'hub'): HubAddress {
  const scheme = /^(wss?):\/\//i.exec(text)?.[1]?.toLowerCase() as 'ws' | 'wss' | undefined;
  if (scheme === undefined) return { transport: 'tcp', endpoint: parseEndpoint(text, what) };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${what}: invalid WebSocket URL "${text}"`, what);
  }
  if (url.username || url.password || url.hash) {
    throw new ConfigError(`${what}: a hub URL takes no credentials or fragment ("${text}")`, what);
  }
  if (url.hostname === '') throw new ConfigError(`${what}: "${text}" has no host`, what);
  if (url.pathname === '/') url.pathname = HUB_WEBSOCKET_PATH;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port ? Number(url.port) : scheme === 'wss' ? 443 : 80;
  return { transport: scheme, endpoint: { host, port }, url: url.href };
}

/** `--hub host:port --transport ws|wss`: the same hub reached through its WebSocket endpoint. */
export function hubAddressFor(hub: string, transport: HubTransport): string {
  const parsed = parseHubAddress(hub, '--hub');
  if (transport === 'tcp') {
    if (parsed.transport !== 'tcp') throw new ConfigError(`--transport tcp contradicts --hub ${hub}`, '--transport');
    return hub;
  }
  if (parsed.transport !== 'tcp') {
    if (parsed.transport !== transport) {
      throw new ConfigError(`--transport ${transport} contradicts --hub ${hub}`, '--transport');
    }
    return parsed.url;
  }
  const { host, port } = parsed.endpoint;
  return `${transport}://${isIP(host) === 6 ? `[${host}]` : host}:${port}${HUB_WEBSOCKET_PATH}`;
}

/**
 * Dials the hub: its tunnel listener with TLS verified by the pinned certificate fingerprint (or by a CA), or plain
 * TCP for a hub without TLS; or, for a `ws(s)://` address, a WebSocket to the hub's endpoint (directly, or through
 * an HTTP reverse proxy), whose binary messages carry the same protocol. wss:// is verified like TLS. Resolves with
 * the connection as a byte stream and the fingerprint the hub (or the proxy terminating TLS) presented.
 */
export class HubDialer {
  readonly address: HubAddress;
  private readonly caPem: string | undefined;

  constructor(
    hub: string,
    private readonly trust: HubTrust,
  ) {
    this.address = parseHubAddress(hub);
    this.caPem = trust.ca ? readFileSync(trust.ca, 'utf8') : undefined;
  }

  get endpoint(): Endpoint {
    return this.address.endpoint;
  }

  dial(): Promise<{ socket: Duplex; fingerprint: string }> {
    return this.address.transport === 'tcp' ? this.dialTcp() : this.dialWebSocket(this.address.url);
  }

  private async dialWebSocket(url: string): Promise<{ socket: Duplex; fingerprint: string }> {
    const secure = this.address.transport === 'wss';
    const { host } = this.endpoint;
    const servername = this.trust.serverName || (isIP(host) ? undefined : host);
    const tls = !secure
      ? undefined
      : this.caPem !== undefined
        ? { ca: this.caPem, ...(servername ? { servername } : {}) }
        : // Verified below against the pinned fingerprint: the hub's own certificate is self-signed.
          { rejectUnauthorized: false, ...(servername ? { servername } : {}) };
    const { stream, socket } = await dialWebSocket({ url, timeout: DIAL_TIMEOUT, ...(tls ? { tls } : {}) });
    const fingerprint = secure ? `sha256:${(socket as TLSSocket).getPeerX509Certificate()?.fingerprint256 ?? ''}` : '';
    if (secure && this.caPem === undefined && this.trust.fingerprint !== '' && fingerprint !== this.trust.fingerprint) {
      stream.destroy();
      throw new HubTrustError(`hub certificate ${fingerprint} does not match the pinned ${this.trust.fingerprint}`);
    }
    return { socket: stream, fingerprint };
  }

  private dialTcp(): Promise<{ socket: Duplex; fingerprint: string }> {
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

/**
 * `connector configure`: registers with a token; returns the tunnel's id and secret and the hub's fingerprint.
 * `renew` is the tunnel this config had: the hub keeps it (same id) when it still knows it.
 */
export async function register(
  dialer: HubDialer,
  token: string,
  info: TunnelInfo,
  renew?: { tunnelId: string; secret: string },
): Promise<{ tunnelId: string; secret: string; fingerprint: string }> {
  const { socket, fingerprint } = await dialer.dial();
  try {
    socket.write(encodeFrame({ type: 'register', token, ...info, ...(renew ? { renew } : {}) }));
    const reply = await readFrame(socket, DIAL_TIMEOUT);
    if (reply.type === 'refused') throw new RefusedError(`the hub refused the registration: ${reply.error}`);
    if (reply.type !== 'registered') throw new RefusedError(`unexpected answer "${reply.type}" from the hub`);
    return { tunnelId: reply.tunnelId, secret: reply.secret, fingerprint };
  } finally {
    socket.destroy();
  }
}

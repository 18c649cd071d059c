import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';

/**
 * The hub <-> connector protocol, version 1 (docs/hub-protocol.md). Every connection from a connector to the hub's
 * tunnel listener starts with length-prefixed JSON frames: a 4-byte big-endian length, then a UTF-8 JSON object with
 * `v` (protocol version) and `type`. A control connection stays framed; a data connection carries one or two frames
 * and then bytes only.
 */
export const PROTOCOL_VERSION = 1;
/** Control frames are small; anything larger is a peer speaking something else. */
export const MAX_FRAME = 256 * 1024;
/**
 * The path of the hub's WebSocket endpoint (tunnel listener and `wsListen`): each WebSocket there carries one
 * connection of this protocol, byte for byte, in binary messages (for connectors that can only reach HTTP(S)).
 */
export const HUB_WEBSOCKET_PATH = '/porthole/ws';

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** Where a stream the hub opens towards a connector came from and what it is for (issue 6 adds http / https-sni). */
export type StreamKind = 'tcp' | 'portmap' | 'http' | 'https-sni';

export interface PortRule {
  port: number;
  destination: string;
  dstPort: number;
  firewall?: FwRule[];
}

export interface FwRule {
  sequence: number;
  action: 'allow' | 'drop';
  network: string;
}

export interface PortMapRule {
  port: number;
  dstPort: number;
  destination: string;
  transport: 'tcp' | 'udp';
  label: string;
}

/** A site the connector serves: the hub routes its Host (HTTP) and SNI (HTTPS) name to the tunnel. */
export interface SiteClaim {
  domain: string;
  firewall?: FwRule[];
}

export interface TunnelInfo {
  name: string;
  hostname: string;
  version: string;
  os: string;
  arch: string;
}

/** Messages, by direction. `c>h` connector to hub, `h>c` hub to connector. */
export type Message =
  // registration (one connection, then closed)
  | ({ type: 'register'; token: string; renew?: { tunnelId: string; secret: string } } & TunnelInfo) // c>h: renew
  //   = the tunnel this connector had: kept (id, secret, ports, domains) when the hub knows it and the secret matches
  | { type: 'registered'; tunnelId: string; secret: string } // h>c
  // control session
  | ({ type: 'hello'; tunnelId: string } & TunnelInfo) // c>h
  | { type: 'challenge'; nonce: string } // h>c
  | { type: 'auth'; mac: string } // c>h
  | { type: 'welcome'; sessionId: string; dataToken: string; ports: PortRule[]; pool: number } // h>c
  | { type: 'refused'; error: string } // h>c, then close
  | { type: 'rules'; ports: PortRule[] } // c>h: the forwarding rules of this tunnel's ports
  | { type: 'ports'; ports: PortRule[] } // h>c: the ports the hub holds for this tunnel (after admin changes)
  | { type: 'request'; id: number; op: 'allocate' | 'release'; port?: number } // c>h
  | { type: 'reply'; id: number; ok: boolean; port?: number; error?: string; message?: string } // h>c
  | {
      type: 'open';
      id: string;
      kind: StreamKind;
      /** The allocated port (tcp / portmap) the stream is for; 0 for http / https-sni. */
      port: number;
      /** The site's domain (Host or SNI name) for http / https-sni streams. */
      domain?: string;
      transport: 'tcp' | 'udp';
      client: { address: string; port: number };
    } // h>c
  | { type: 'sites'; sites: SiteClaim[] } // c>h: the sites this tunnel serves (after welcome and every change)
  | { type: 'https'; update: unknown[]; remove: string[] } // h>c: admin changes to the connector's sites
  | { type: 'sites-refused'; refused: Array<{ domain: string; error: string }> } // h>c: domains another tunnel owns
  | { type: 'sites-accepted'; domains: string[] } // h>c: refused domains routed here after all (an admin release)
  | { type: 'ping'; t: number } // both ways
  | { type: 'pong'; t: number } // both ways
  | { type: 'shutdown'; reason: string } // h>c: do not reconnect
  | { type: 'portmaps'; update: PortMapRule[]; remove: number[] } // h>c: admin changes to the connector's portmaps
  // data connections
  | { type: 'data'; sessionId: string; token: string; id: string; role: 'inbound' | 'outbound' } // c>h
  | { type: 'connect'; transport: 'tcp' | 'udp'; destination: string; dstPort: number }; // c>h, outbound only

export type Frame = Message & { v: number };
export type MessageOf<T extends Message['type']> = Extract<Message, { type: T }>;

export function encodeFrame(message: Message): Buffer {
  const body = Buffer.from(JSON.stringify({ v: PROTOCOL_VERSION, ...message }), 'utf8');
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

function parseBody(body: Buffer): Frame {
  let data: unknown;
  try {
    data = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ProtocolError('frame is not JSON');
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new ProtocolError('frame is not an object');
  const frame = data as { v?: unknown; type?: unknown };
  if (frame.v !== PROTOCOL_VERSION) throw new ProtocolError(`unsupported protocol version ${String(frame.v)}`);
  if (typeof frame.type !== 'string') throw new ProtocolError('frame without a type');
  return data as Frame;
}

/**
 * Splits a byte stream into frames (control connections). Errors (oversized frame, bad JSON, wrong version) are
 * reported once through `onError`; after that the decoder ignores input: the caller closes the connection.
 */
export class FrameDecoder {
  private buffered: Buffer = Buffer.alloc(0);
  private failed = false;

  constructor(
    private readonly onFrame: (frame: Frame) => void,
    private readonly onError: (error: ProtocolError) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.failed) return;
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 4 && !this.failed) {
      const length = this.buffered.readUInt32BE(0);
      if (length > MAX_FRAME) {
        this.fail(new ProtocolError(`frame of ${length} bytes exceeds ${MAX_FRAME}`));
        return;
      }
      if (this.buffered.length < 4 + length) return;
      const body = this.buffered.subarray(4, 4 + length);
      this.buffered = this.buffered.subarray(4 + length);
      let frame: Frame;
      try {
        frame = parseBody(body);
      } catch (err) {
        this.fail(err as ProtocolError);
        return;
      }
      this.onFrame(frame);
    }
  }

  private fail(error: ProtocolError): void {
    this.failed = true;
    this.onError(error);
  }
}

/**
 * Reads exactly one frame from a paused or fresh stream and leaves every byte after it unread (unshifted) for
 * whoever takes the stream next: on a data connection, the relay. `timeout` 0 waits as long as the stream lives.
 */
export function readFrame(stream: Duplex, timeout: number): Promise<Frame> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const timer =
      timeout > 0 ? setTimeout(() => finish(new ProtocolError(`no frame within ${timeout}ms`)), timeout) : undefined;
    function finish(error?: Error, frame?: Frame, rest?: Buffer) {
      clearTimeout(timer);
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.removeListener('close', onEnd);
      stream.removeListener('error', onError);
      stream.pause();
      if (rest && rest.length > 0) stream.unshift(rest);
      if (error) reject(error);
      else resolve(frame as Frame);
    }
    function onData(chunk: Buffer) {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      const length = buffered.readUInt32BE(0);
      if (length > MAX_FRAME) return finish(new ProtocolError(`frame of ${length} bytes exceeds ${MAX_FRAME}`));
      if (buffered.length < 4 + length) return;
      try {
        finish(undefined, parseBody(buffered.subarray(4, 4 + length)), buffered.subarray(4 + length));
      } catch (err) {
        finish(err as Error);
      }
    }
    const onEnd = () => finish(new ProtocolError('connection closed before a complete frame'));
    const onError = (err: Error) => finish(err);
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', onError);
    stream.resume();
  });
}

/** A fresh random hex string (nonces, secrets, session ids). */
export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

/** The connector's answer to a challenge: HMAC-SHA256(secret, nonce + tunnelId), hex. */
export function challengeResponse(secret: string, nonce: string, tunnelId: string): string {
  return createHmac('sha256', secret).update(`${nonce}${tunnelId}`).digest('hex');
}

/** Constant-time comparison of two hex strings. */
export function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

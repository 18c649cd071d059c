import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { type IncomingMessage, request } from 'node:http';
import { createConnection, type Socket } from 'node:net';
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

/** One WebSocket frame (RFC 6455 §5.2) as a test peer writes it: any opcode, FIN and RSV bits, masked or not. */
export function webSocketFrame(
  opcode: number,
  payload: Buffer,
  { mask, fin = true, rsv = 0 }: { mask?: Buffer; fin?: boolean; rsv?: number } = {},
): Buffer {
  const len = payload.length;
  const head: number[] = [(fin ? 0x80 : 0) | ((rsv & 7) << 4) | opcode];
  const maskBit = mask ? 0x80 : 0;
  if (len < 126) head.push(maskBit | len);
  else if (len < 65536) head.push(maskBit | 126, len >> 8, len & 0xff);
  else {
    head.push(maskBit | 127);
    for (let i = 7; i >= 0; i--) head.push(i >= 4 ? 0 : (len >>> (8 * i)) & 0xff);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i] = (masked[i] as number) ^ (mask[i % 4] as number);
  return Buffer.concat([Buffer.from(head), mask, masked]);
}

export interface ParsedFrame {
  fin: boolean;
  opcode: number;
  /** The masking key, when the frame had one. */
  mask: Buffer | undefined;
  payload: Buffer;
}

/** Parses the WebSocket frames arriving on a socket, whatever their size or how they are split across reads. */
export class WebSocketFrameReader {
  readonly frames: ParsedFrame[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  ended = false;

  constructor(socket: Socket, first: Buffer = Buffer.alloc(0)) {
    this.feed(first);
    socket.on('data', (chunk: Buffer) => this.feed(chunk));
    const end = () => {
      this.ended = true;
      this.wake();
    };
    socket.once('end', end);
    socket.once('close', end);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private feed(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.buf.length < 2) break;
      const b1 = this.buf[1] as number;
      let len = b1 & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) break;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) break;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      const mask = b1 & 0x80 ? this.buf.subarray(at, at + 4) : undefined;
      if (mask) at += 4;
      if (this.buf.length < at + len) break;
      const payload = Buffer.from(this.buf.subarray(at, at + len));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i % 4] as number);
      const b0 = this.buf[0] as number;
      this.frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, mask: mask && Buffer.from(mask), payload });
      this.buf = this.buf.subarray(at + len);
    }
    this.wake();
  }

  /** Resolves once `done()` says so (checked on every arrival), rejecting after `ms` or at the end of the socket. */
  async until(done: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      if (this.ended) throw new Error(`socket ended before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${ms}ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The payload of every binary data message so far, concatenated (a data frame after an empty message included). */
  data(): Buffer {
    return Buffer.concat(this.frames.filter((f) => f.opcode === 0x2 || f.opcode === 0x0).map((f) => f.payload));
  }
}

/** Opens a WebSocket by hand; resolves with the socket and the response head, the bytes after it unread. */
export async function rawWebSocketUpgrade(port: number): Promise<{ socket: Socket; head: string; rest: Buffer }> {
  const socket = createConnection({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  let got = Buffer.alloc(0);
  while (!got.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    got = Buffer.concat([got, chunk]);
  }
  socket.pause();
  const end = got.indexOf('\r\n\r\n') + 4;
  return { socket, head: got.subarray(0, end).toString('latin1'), rest: got.subarray(end) };
}

/**
 * A type 2 pool spoken by hand, as a NodePass client would: the control channel (a WebSocket whose first message is
 * id 00000000) answers pings and records the other signals; `member()` opens one more pool WebSocket and reads its id.
 * Every frame we send is masked with a fresh random key, as a browser-grade client (gorilla, coder/websocket) does.
 */
export class HandWebSocketPool {
  readonly signals: Signal[] = [];
  private constructor(
    private readonly port: number,
    private readonly key: string,
    readonly control: Socket,
  ) {}

  static async open(port: number, key: string): Promise<HandWebSocketPool> {
    const { socket, head, rest } = await rawWebSocketUpgrade(port);
    if (!head.startsWith('HTTP/1.1 101')) throw new Error(`control upgrade refused: ${head.split('\r\n')[0]}`);
    const pool = new HandWebSocketPool(port, key, socket);
    const reader = new WebSocketFrameReader(socket, rest);
    socket.resume();
    await reader.until(() => reader.frames.length > 0, 5000, 'control id');
    let seen = 1;
    const onFrames = () => {
      for (; seen < reader.frames.length; seen++) {
        const frame = reader.frames[seen] as ParsedFrame;
        if (frame.opcode !== 0x2) continue;
        for (const line of frame.payload.toString('latin1').split('\n')) {
          if (line === '') continue;
          const signal = decodeSignal(line, key);
          if (signal.action === 'ping') pool.send({ action: 'pong' });
          else pool.signals.push(signal);
        }
      }
    };
    socket.on('data', () => setImmediate(onFrames));
    return pool;
  }

  send(signal: Signal): void {
    this.control.write(webSocketFrame(0x2, encodeSignal(signal, this.key), { mask: randomBytes(4) }));
  }

  /** One more pool member: its socket, its id, and a reader of what the server sends on it after the id. */
  async member(): Promise<{ socket: Socket; id: string; reader: WebSocketFrameReader }> {
    const { socket, head, rest } = await rawWebSocketUpgrade(this.port);
    if (!head.startsWith('HTTP/1.1 101')) throw new Error(`member upgrade refused: ${head.split('\r\n')[0]}`);
    const reader = new WebSocketFrameReader(socket, rest);
    socket.resume();
    await reader.until(() => reader.frames.length > 0, 5000, 'member id');
    const id = (reader.frames.shift() as ParsedFrame).payload.toString('hex');
    return { socket, id, reader };
  }

  close(): void {
    this.control.destroy();
  }
}

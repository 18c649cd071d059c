import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { Flow } from './traffic.js';

/**
 * Experimental zero-copy relay: hands two plain TCP sockets to the optional native addon (native/splice-relay), which
 * moves their bytes socket → pipe → socket with splice(2) on one epoll thread per process, so relayed bytes are never
 * copied into user space. Either socket may carry a WebSocket (a type 2 pool member over ws://): the addon then parses
 * and writes the frames itself and still splices the payload. Without the addon (not built, not Linux,
 * PORTHOLE_SPLICE=0) nothing here throws: callers get `undefined` and keep relaying in JS.
 */

/** How a spliced socket carries the byte stream: as is, or as binary WebSocket messages (either role). */
export type SpliceFraming = 'raw' | 'websocket-client' | 'websocket-server';

const FRAMING_CODES: Record<SpliceFraming, number> = { raw: 0, 'websocket-client': 1, 'websocket-server': 2 };

/**
 * A pool stream the native relay can carry (WebSocketStream over ws://): it names its plain TCP socket and framing,
 * or says why not right now. Its payload already parsed into its readable buffer is taken over as well.
 */
export interface SpliceableStream extends Duplex {
  spliceSocket(): { socket: Socket; framing: SpliceFraming } | string;
}

/** One side of a pair the relay may take over. */
export type SpliceSide = Socket | SpliceableStream;

export function isSpliceable(stream: Duplex): stream is SpliceSide {
  return stream instanceof Socket || typeof (stream as Partial<SpliceableStream>).spliceSocket === 'function';
}

/** Opaque handle of one native session. */
type NativeSession = { readonly __nativeSession: unique symbol };

interface SpliceAddon {
  start(
    userFd: number,
    targetFd: number,
    idleTimeoutMs: number,
    pipeSize: number,
    done: (error: (Error & { code?: string }) | null, up: number, down: number) => void,
    userFraming?: number,
    targetFraming?: number,
    upHead?: Buffer,
    downHead?: Buffer,
    userWire?: Buffer,
    targetWire?: Buffer,
  ): NativeSession;
  counters(session: NativeSession): [number, number];
  cancel(session: NativeSession): void;
  /** What start() understands (ABI_VERSION in splice_relay.c); absent before heads and framing existed. */
  abi?: number;
}

/** The addon ABI this code needs. */
const ADDON_ABI = 2;

/** The socket internals the takeover needs: libuv's fd and its read switch (Linux, net.Socket over TCP). */
interface TcpHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

export interface SpliceRelayOptions {
  /** user → target */
  up: Flow;
  /** target → user */
  down: Flow;
  /** Ends the session after this many ms without a byte in either direction; 0 = never. Enforced natively. */
  idleTimeout: number;
  /**
   * Called once when the native side lets go of the sockets, with the error that ended the session (reset, idle
   * timeout, cancel) or undefined after both directions finished cleanly. Both sockets are destroyed right after.
   */
  onEnd?: (error: Error | undefined) => void;
  /** Bytes per pipe (one per direction); the kernel may grant less. Default 256 KiB. */
  pipeSize?: number;
  /** Bytes already read from the user (e.g. while sniffing) to deliver to the target first. */
  upHead?: Buffer;
}

/** A session running in the addon. */
export interface SpliceSession {
  /** Bytes delivered so far, user → target and target → user. */
  counters(): { up: number; down: number };
  /** Ends the session now; `onEnd` follows with an ECANCELED error. */
  cancel(): void;
}

const DEFAULT_PIPE_SIZE = 256 * 1024;
/** How often live sessions' byte counts reach their flows (instance counters, /metrics) while they run. */
const COUNTER_FLUSH_MS = 1000;

let loaded: SpliceAddon | null | undefined;
let loadError: string | undefined;

/**
 * The addon, loaded on first use; undefined when it cannot be used here. PORTHOLE_SPLICE=0 turns it off;
 * PORTHOLE_SPLICE_ADDON points at another build (tests use a missing path to exercise the fallback).
 */
export function loadSpliceAddon(): SpliceAddon | undefined {
  if (loaded !== undefined) return loaded ?? undefined;
  loaded = null;
  if (process.platform !== 'linux') loadError = `splice(2) is Linux-only (${process.platform})`;
  else if (process.env.PORTHOLE_SPLICE === '0') loadError = 'turned off by PORTHOLE_SPLICE=0';
  else {
    const path =
      process.env.PORTHOLE_SPLICE_ADDON ??
      join(import.meta.dirname, '..', '..', 'native', 'splice-relay', 'build', 'Release', 'splice_relay.node');
    try {
      const addon = createRequire(import.meta.url)(path) as SpliceAddon;
      // A stale build would silently ignore the heads and framing it does not know about: relay in JS instead.
      if (addon.abi === ADDON_ABI) loaded = addon;
      else loadError = `${path} is an older build (ABI ${addon.abi ?? 1}, need ${ADDON_ABI}): run npm run build:native`;
    } catch (err) {
      loadError = `cannot load ${path}: ${(err as Error).message.split('\n')[0]}`;
    }
  }
  return loaded ?? undefined;
}

/** Why the addon is not in use, when it is not (for a debug log line). */
export function spliceUnavailableReason(): string | undefined {
  loadSpliceAddon();
  return loadError;
}

function tcpHandle(socket: Socket): TcpHandle | undefined {
  return (socket as unknown as { _handle?: TcpHandle | null })._handle ?? undefined;
}

/** A side resolved to the socket the addon works on. */
interface ResolvedSide {
  /** What the caller gave: destroyed when the session ends, and its 'close' cancels it. */
  stream: SpliceSide;
  socket: Socket;
  framing: SpliceFraming;
}

function resolveSide(side: SpliceSide): ResolvedSide | string {
  if (side instanceof Socket) return { stream: side, socket: side, framing: 'raw' };
  const inner = side.spliceSocket();
  return typeof inner === 'string' ? inner : { stream: side, ...inner };
}

/**
 * Whether a stream's JS buffers allow a takeover: bytes it has read but nobody consumed are fine (they are handed to
 * the addon, up to what a pipe holds), a FIN it has read but not yet emitted is not (the addon would never see it),
 * and neither is anything queued to write (the addon would overtake it).
 */
function streamIneligibility(stream: Duplex, pipeSize: number): string | undefined {
  const readable = (stream as unknown as { _readableState?: { ended?: boolean } })._readableState;
  if (stream.destroyed) return 'is closed';
  if (stream.readableEnded || readable?.ended || stream.writableEnded) return 'is half-closed';
  if (stream.writableLength > 0) return 'has bytes buffered in JS';
  if (stream.readableLength > pipeSize) return 'has more bytes buffered in JS than a pipe holds';
  return undefined;
}

function socketIneligibility(socket: Socket, pipeSize: number): string | undefined {
  if (socket instanceof TLSSocket) return 'is TLS';
  if (socket.connecting || socket.pending) return 'is not connected';
  const why = streamIneligibility(socket, pipeSize);
  if (why !== undefined) return why;
  const fd = tcpHandle(socket)?.fd;
  if (typeof fd !== 'number' || fd < 0) return 'has no fd';
  return undefined;
}

/**
 * Why this pair cannot be spliced right now, or undefined if it can. The addon must be loaded, both sockets plain
 * connected TCP with an fd, nothing buffered in JS on the sockets (bytes there would be overtaken; a WebSocket
 * stream's parsed payload is handed over instead), no rate limit (the token buckets pace in JS).
 */
export function spliceIneligibility(
  user: SpliceSide,
  target: SpliceSide,
  options: SpliceRelayOptions,
): string | undefined {
  const resolved = resolvePair(user, target, options);
  return typeof resolved === 'string' ? resolved : undefined;
}

function resolvePair(
  user: SpliceSide,
  target: SpliceSide,
  options: SpliceRelayOptions,
): [ResolvedSide, ResolvedSide] | string {
  if (loadSpliceAddon() === undefined) return loadError ?? 'addon not loaded';
  if (options.up.bucket !== undefined || options.down.bucket !== undefined) return 'rate limited';
  const pipeSize = options.pipeSize ?? DEFAULT_PIPE_SIZE;
  const sides: ResolvedSide[] = [];
  for (const [name, side] of [
    ['user', user],
    ['target', target],
  ] as const) {
    const resolved = resolveSide(side);
    if (typeof resolved === 'string') return `${name} stream ${resolved}`;
    if (resolved.socket !== side) {
      const why = streamIneligibility(side, pipeSize);
      if (why !== undefined) return `${name} stream ${why}`;
    }
    const why = socketIneligibility(resolved.socket, pipeSize);
    if (why !== undefined) return `${name} socket ${why}`;
    sides.push(resolved);
  }
  return sides as [ResolvedSide, ResolvedSide];
}

/**
 * Takes what a framed stream has parsed but nobody read yet, without letting its 'data' listeners see it (those belong
 * to the JS relay, which must not write it anywhere): it becomes the head of that direction in the native pipe.
 */
function takeReadableBuffer(stream: Duplex): Buffer | undefined {
  if (stream.readableLength === 0) return undefined;
  const listeners = stream.listeners('data') as Array<(chunk: Buffer) => void>;
  stream.removeAllListeners('data');
  const chunks: Buffer[] = [];
  for (let chunk = stream.read() as Buffer | null; chunk !== null; chunk = stream.read() as Buffer | null) {
    chunks.push(chunk);
  }
  for (const listener of listeners) stream.on('data', listener);
  return chunks.length === 0 ? undefined : Buffer.concat(chunks);
}

const live = new Map<NativeSession, { addon: SpliceAddon; up: Flow; down: Flow; seen: [number, number] }>();
let flushTimer: NodeJS.Timeout | undefined;

function flushCounters(session: NativeSession, upTotal: number, downTotal: number): void {
  const entry = live.get(session);
  if (entry === undefined) return;
  if (upTotal > entry.seen[0]) entry.up.count(upTotal - entry.seen[0]);
  if (downTotal > entry.seen[1]) entry.down.count(downTotal - entry.seen[1]);
  entry.seen = [upTotal, downTotal];
}

function ensureFlushTimer(): void {
  if (flushTimer !== undefined) return;
  flushTimer = setInterval(() => {
    for (const [session, entry] of live) {
      const [up, down] = entry.addon.counters(session);
      flushCounters(session, up, down);
    }
  }, COUNTER_FLUSH_MS);
  flushTimer.unref();
}

/**
 * Takes over `user` and `target` and relays between them natively. Returns undefined, touching nothing, when the
 * pair is not eligible (see spliceIneligibility): the caller then relays in JS. Both sockets need allowHalfOpen.
 *
 * While the session runs, JS must not read from or write to the sockets; destroying one (e.g. on shutdown) is safe
 * and cancels the session. When it ends, `onEnd` runs and both sockets are destroyed.
 */
export function spliceRelay(
  user: SpliceSide,
  target: SpliceSide,
  options: SpliceRelayOptions,
): SpliceSession | undefined {
  const pair = resolvePair(user, target, options);
  if (typeof pair === 'string') return undefined;
  // Each direction's head goes into its pipe before the session starts: it must fit.
  const pipeSize = options.pipeSize ?? DEFAULT_PIPE_SIZE;
  if ((options.upHead?.length ?? 0) + pair[0].stream.readableLength > pipeSize) return undefined;
  const addon = loadSpliceAddon() as SpliceAddon;
  const sockets = pair.map((side) => side.socket) as [Socket, Socket];
  const handles = sockets.map((socket) => tcpHandle(socket) as TcpHandle);

  // Stop libuv reading (pause() alone would let it read one more chunk into JS); this is synchronous, and nothing was
  // buffered on the sockets when checked above in this same tick, so no byte can be left behind in JS.
  const savedTimeouts = sockets.map((socket) => socket.timeout);
  const wasFlowing = sockets.map((socket) => socket.readableFlowing === true);
  for (const [i, socket] of sockets.entries()) {
    const handle = handles[i] as TcpHandle;
    socket.pause();
    handle.reading = false;
    handle.readStop?.();
    // Any later read(0) or resume() (e.g. one a caller scheduled for the next tick before handing over) would start
    // libuv reading again and race the addon for the bytes; with _read a no-op JS never reads this socket again.
    (socket as unknown as { _read: () => void })._read = () => {};
    socket.setTimeout(0); // no reads or writes reach JS any more: its idle timer would fire on a busy session
    socket.setNoDelay(true);
  }
  // A framed stream over the socket reads nothing more either (its _read would resume the socket).
  const framed = pair.filter((side) => side.stream !== side.socket).map((side) => side.stream);
  for (const stream of framed) (stream as unknown as { _read: () => void })._read = () => {};

  // What JS read but nobody consumed goes first. On a plain socket it is payload; on a WebSocket, the payload ws parsed
  // (in the stream) comes before the frame bytes it had not parsed yet (in the socket): the addon parses those.
  const taken = pair.map((side) => {
    const payload = side.socket === side.stream ? takeReadableBuffer(side.socket) : takeReadableBuffer(side.stream);
    const wire = side.socket === side.stream ? undefined : takeReadableBuffer(side.socket);
    return { payload, wire };
  });
  const userPayload = taken[0]?.payload;
  const upHead =
    options.upHead !== undefined && options.upHead.length > 0
      ? Buffer.concat(userPayload === undefined ? [options.upHead] : [options.upHead, userPayload])
      : userPayload;
  const downHead = taken[1]?.payload;
  const giveBack = () => {
    for (const [i, side] of pair.entries()) {
      const { payload, wire } = taken[i] as { payload?: Buffer; wire?: Buffer };
      if (wire !== undefined) side.socket.unshift(wire);
      if (payload !== undefined) side.stream.unshift(payload);
    }
  };

  let ended = false;
  let session: NativeSession;
  const onDone = (nativeError: (Error & { code?: string }) | null, up: number, down: number) => {
    ended = true;
    flushCounters(session, up, down);
    live.delete(session);
    if (live.size === 0 && flushTimer !== undefined) {
      clearInterval(flushTimer);
      flushTimer = undefined;
    }
    let error: Error | undefined;
    if (nativeError !== null) {
      error =
        nativeError.code === 'ETIMEDOUT'
          ? Object.assign(new Error(`idle for ${options.idleTimeout}ms`), { code: 'ETIMEDOUT' })
          : nativeError;
    }
    options.onEnd?.(error);
    user.destroy();
    target.destroy();
  };
  try {
    session = addon.start(
      (handles[0] as TcpHandle).fd as number,
      (handles[1] as TcpHandle).fd as number,
      Math.max(0, Math.floor(options.idleTimeout)),
      options.pipeSize ?? DEFAULT_PIPE_SIZE,
      onDone,
      FRAMING_CODES[pair[0].framing],
      FRAMING_CODES[pair[1].framing],
      upHead,
      downHead,
      taken[0]?.wire,
      taken[1]?.wire,
    );
  } catch {
    // The addon could not take the pair (out of fds for its pipes, a smaller pipe than the head, say): give it back
    // to JS as it was.
    for (const stream of framed) delete (stream as unknown as { _read?: () => void })._read;
    for (const [i, socket] of sockets.entries()) {
      delete (socket as unknown as { _read?: () => void })._read;
      if (savedTimeouts[i]) socket.setTimeout(savedTimeouts[i] as number);
      if (wasFlowing[i]) socket.resume();
    }
    giveBack();
    return undefined;
  }
  live.set(session, { addon, up: options.up, down: options.down, seen: [0, 0] });
  ensureFlushTimer();

  const cancel = () => {
    if (!ended) addon.cancel(session);
  };
  // JS closing a socket or its stream (shutdown, a caller's destroy) ends the session; the addon holds its own dup of
  // the fd.
  for (const side of pair) {
    side.stream.once('close', cancel);
    if (side.socket !== side.stream) side.socket.once('close', cancel);
  }

  return {
    counters() {
      const [up, down] = addon.counters(session);
      return { up, down };
    },
    cancel,
  };
}

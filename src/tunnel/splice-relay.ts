import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import type { Flow } from './traffic.js';

/**
 * Experimental zero-copy relay: hands two plain TCP sockets to the optional native addon (native/splice-relay), which
 * moves their bytes socket → pipe → socket with splice(2) on one epoll thread per process, so relayed bytes are never
 * copied into user space. Without the addon (not built, not Linux, PORTHOLE_SPLICE=0) nothing here throws: callers
 * get `undefined` and keep relaying in JS.
 */

/** Opaque handle of one native session. */
type NativeSession = { readonly __nativeSession: unique symbol };

interface SpliceAddon {
  start(
    userFd: number,
    targetFd: number,
    idleTimeoutMs: number,
    pipeSize: number,
    done: (error: (Error & { code?: string }) | null, up: number, down: number) => void,
  ): NativeSession;
  counters(session: NativeSession): [number, number];
  cancel(session: NativeSession): void;
}

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
      loaded = createRequire(import.meta.url)(path) as SpliceAddon;
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

/**
 * Why this pair cannot be spliced right now, or undefined if it can. The addon must be loaded, both sockets plain
 * connected TCP with an fd, nothing buffered in JS either way (bytes there would be overtaken), no rate limit (the
 * token buckets pace in JS).
 */
export function spliceIneligibility(user: Socket, target: Socket, options: SpliceRelayOptions): string | undefined {
  if (loadSpliceAddon() === undefined) return loadError;
  if (options.up.bucket !== undefined || options.down.bucket !== undefined) return 'rate limited';
  for (const [name, socket] of [
    ['user', user],
    ['target', target],
  ] as const) {
    if (socket instanceof TLSSocket) return `${name} socket is TLS`;
    if (socket.destroyed || socket.connecting || socket.pending) return `${name} socket is not connected`;
    if (socket.readableEnded || socket.writableEnded) return `${name} socket is half-closed`;
    if (socket.readableLength > 0 || socket.writableLength > 0) return `${name} socket has bytes buffered in JS`;
    const fd = tcpHandle(socket)?.fd;
    if (typeof fd !== 'number' || fd < 0) return `${name} socket has no fd`;
  }
  return undefined;
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
export function spliceRelay(user: Socket, target: Socket, options: SpliceRelayOptions): SpliceSession | undefined {
  if (spliceIneligibility(user, target, options) !== undefined) return undefined;
  const addon = loadSpliceAddon() as SpliceAddon;
  const userHandle = tcpHandle(user) as TcpHandle;
  const targetHandle = tcpHandle(target) as TcpHandle;

  // Stop libuv reading (pause() alone would let it read one more chunk into JS); this is synchronous, and nothing was
  // buffered when checked above in this same tick, so no byte can be left behind in JS.
  const savedTimeouts = [user.timeout, target.timeout];
  for (const [socket, handle] of [
    [user, userHandle],
    [target, targetHandle],
  ] as const) {
    socket.pause();
    handle.reading = false;
    handle.readStop?.();
    // Any later read(0) or resume() (e.g. one a caller scheduled for the next tick before handing over) would start
    // libuv reading again and race the addon for the bytes; with _read a no-op JS never reads this socket again.
    (socket as unknown as { _read: () => void })._read = () => {};
    socket.setTimeout(0); // no reads or writes reach JS any more: its idle timer would fire on a busy session
    socket.setNoDelay(true);
  }

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
      userHandle.fd as number,
      targetHandle.fd as number,
      Math.max(0, Math.floor(options.idleTimeout)),
      options.pipeSize ?? DEFAULT_PIPE_SIZE,
      onDone,
    );
  } catch {
    // The addon could not take the pair (out of fds for its pipes, say): give it back to JS as it was.
    [user, target].forEach((socket, i) => {
      delete (socket as unknown as { _read?: () => void })._read;
      if (savedTimeouts[i]) socket.setTimeout(savedTimeouts[i] as number);
    });
    return undefined;
  }
  live.set(session, { addon, up: options.up, down: options.down, seen: [0, 0] });
  ensureFlushTimer();

  const cancel = () => {
    if (!ended) addon.cancel(session);
  };
  // JS closing a socket (shutdown, a caller's destroy) ends the session; the addon holds its own dup of the fd.
  user.once('close', cancel);
  target.once('close', cancel);

  return {
    counters() {
      const [up, down] = addon.counters(session);
      return { up, down };
    },
    cancel,
  };
}

import type { Duplex } from 'node:stream';

/**
 * A pool member: a TCP/TLS socket (type 0), a WebSocket (type 2) or an HTTP/2 stream (type 3), as a Duplex that
 * half-closes. (The `socket` field names below predate the other transports; they hold any such stream.)
 */
export type PoolStream = Duplex;

/** The egress asked for a pool connection id that did not arrive in time. */
export class PoolTimeoutError extends Error {
  override readonly name = 'PoolTimeoutError';
}

/**
 * The egress asked for a pool connection that did arrive but closed while idle (the peer closed it, e.g. after naming
 * it in a `verify`). NodePass keeps such connections in its map until taken; we drop them from the pool at once so the
 * ingress never picks a dead one, and remember the id so that a request for it fails fast with this error instead of
 * waiting out the timeout.
 */
export class PoolMemberGoneError extends Error {
  override readonly name = 'PoolMemberGoneError';
}

/** How many ids of members that closed while idle are remembered (oldest forgotten first). */
const DEPARTED_MEMORY = 4096;

interface Waiter<S> {
  resolve(socket: S): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Idle pool connections by id (8 hex digits). Each connection is used once: the ingress takes any idle one, the
 * egress waits for the one its peer signalled. A connection that closes while idle leaves the pool.
 * `S` is the member type: any half-closing Duplex for the instance transports, net.Socket where the owner (the hub
 * and connector) only ever pools sockets and relays them as such.
 */
export class ConnectionPool<S extends PoolStream = PoolStream> {
  private readonly idle = new Map<string, S>();
  private readonly waiters = new Map<string, Waiter<S>>();
  /** Ids of members that closed while idle, in the order they went. */
  private readonly departed = new Set<string>();
  /** Ingress requests waiting for any connection, oldest first. */
  private readonly anyWaiters: Array<Waiter<S> & { resolveAny(conn: { id: string; socket: S }): void }> = [];
  /** Connections handed out since start (for tests and stats: a warm pool serves without new dials). */
  served = 0;
  /** Called each time a connection is handed out, so the side that dials the pool can replace it at once. */
  onServe: (() => void) | undefined;

  private serve(): void {
    this.served++;
    this.onServe?.();
  }

  get size(): number {
    return this.idle.size;
  }

  has(id: string): boolean {
    return this.idle.has(id);
  }

  add(id: string, socket: S): void {
    const waiter = this.waiters.get(id);
    if (waiter !== undefined) {
      this.waiters.delete(id);
      clearTimeout(waiter.timer);
      this.serve();
      waiter.resolve(socket);
      return;
    }
    const anyWaiter = this.anyWaiters.shift();
    if (anyWaiter !== undefined) {
      clearTimeout(anyWaiter.timer);
      this.serve();
      anyWaiter.resolveAny({ id, socket });
      return;
    }
    const previous = this.idle.get(id);
    if (previous !== undefined && previous !== socket) previous.destroy();
    this.idle.set(id, socket);
    const drop = () => {
      if (this.idle.get(id) !== socket) return;
      this.idle.delete(id);
      this.departed.add(id);
      if (this.departed.size > DEPARTED_MEMORY) this.departed.delete(this.departed.values().next().value as string);
    };
    socket.once('close', drop);
    socket.once('error', drop);
  }

  /** Ingress: the oldest idle connection, removed from the pool. */
  take(): { id: string; socket: S } | undefined {
    for (const [id, socket] of this.idle) {
      this.idle.delete(id);
      if (socket.destroyed) continue;
      this.serve();
      return { id, socket };
    }
    return undefined;
  }

  /** The most recently added idle connection, removed from the pool. */
  takeNewest(): { id: string; socket: S } | undefined {
    const ids = [...this.idle.keys()];
    for (let i = ids.length - 1; i >= 0; i--) {
      const id = ids[i] as string;
      const socket = this.idle.get(id) as S;
      this.idle.delete(id);
      if (!socket.destroyed) return { id, socket };
    }
    return undefined;
  }

  /** Ingress: an idle connection now, or the next one to arrive within `timeout` ms. */
  acquire(timeout: number): Promise<{ id: string; socket: S }> {
    const now = this.take();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolveAny, reject) => {
      const waiter = {
        resolve: () => {},
        resolveAny,
        reject,
        timer: setTimeout(() => {
          const i = this.anyWaiters.indexOf(waiter);
          if (i >= 0) this.anyWaiters.splice(i, 1);
          reject(new PoolTimeoutError(`no idle pool connection within ${timeout}ms`));
        }, timeout),
      };
      this.anyWaiters.push(waiter);
    });
  }

  /** Egress: the connection with `id`, waiting up to `timeout` ms for it to arrive. */
  get(id: string, timeout: number): Promise<S> {
    const socket = this.idle.get(id);
    if (socket !== undefined && !socket.destroyed) {
      this.idle.delete(id);
      this.serve();
      return Promise.resolve(socket);
    }
    if (this.departed.delete(id)) {
      return Promise.reject(new PoolMemberGoneError(`pool connection ${id} closed before it was used`));
    }
    if (this.waiters.has(id)) return Promise.reject(new Error(`pool connection ${id} is already awaited`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new PoolTimeoutError(`pool connection ${id} did not arrive within ${timeout}ms`));
      }, timeout);
      this.waiters.set(id, { resolve, reject, timer });
    });
  }

  /** Closes every idle connection (NodePass `flush`). */
  flush(): void {
    for (const socket of this.idle.values()) socket.destroy();
    this.idle.clear();
    this.departed.clear();
  }

  /** Flushes and fails every waiter. */
  close(reason = 'pool closed'): void {
    this.flush();
    for (const [id, waiter] of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(`${reason} while waiting for ${id}`));
    }
    this.waiters.clear();
    for (const waiter of this.anyWaiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(`${reason} while waiting for a pool connection`));
    }
  }
}

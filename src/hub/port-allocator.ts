import { createServer } from 'node:net';

export class PortAllocationError extends Error {
  override readonly name = 'PortAllocationError';
}

/** Whether `port` can be bound on `host` right now (something outside the hub may hold a port of the range). */
export function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: host || undefined, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * Which tunnel holds which TCP port of the hub's range. Allocation picks a random free port (not the lowest, so
 * released ports are not handed to the next tunnel at once) that can actually be bound.
 */
export class PortAllocator {
  private readonly owners = new Map<number, string>();

  constructor(
    readonly begin: number,
    readonly end: number,
    private readonly bindable: (port: number) => Promise<boolean>,
  ) {}

  owner(port: number): string | undefined {
    return this.owners.get(port);
  }

  inRange(port: number): boolean {
    return port >= this.begin && port <= this.end;
  }

  /** Records a port restored from the state. */
  claim(port: number, tunnelId: string): void {
    this.owners.set(port, tunnelId);
  }

  release(port: number): void {
    this.owners.delete(port);
  }

  list(): Array<{ port: number; tunID: string }> {
    return [...this.owners].sort((a, b) => a[0] - b[0]).map(([port, tunID]) => ({ port, tunID }));
  }

  async allocate(tunnelId: string): Promise<number> {
    const free: number[] = [];
    for (let p = this.begin; p <= this.end; p++) if (!this.owners.has(p)) free.push(p);
    // Random order; at most 32 bind probes so a range full of foreign listeners fails fast.
    for (let tries = 0; tries < 32 && free.length > 0; tries++) {
      const i = Math.floor(Math.random() * free.length);
      const port = free[i] as number;
      free[i] = free[free.length - 1] as number;
      free.pop();
      if (this.owners.has(port)) continue;
      this.owners.set(port, tunnelId); // held while probing so a concurrent allocation cannot pick it too
      if (await this.bindable(port)) return port;
      this.owners.delete(port);
    }
    throw new PortAllocationError(
      free.length === 0 && this.owners.size >= this.end - this.begin + 1
        ? `no free port left in ${this.begin}-${this.end}`
        : `no bindable free port found in ${this.begin}-${this.end}`,
    );
  }
}

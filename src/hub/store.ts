import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Static, Type } from 'typebox';
import { Value } from 'typebox/value';
import { writeAtomic } from '../common/atomic-write.js';
import type { Logger } from '../common/logger.js';
import { StoredPortSchema } from './rules.js';

const StoredToken = Type.Object({
  id: Type.String({ minLength: 1 }),
  token: Type.String({ minLength: 8 }),
  description: Type.String(),
  active: Type.Boolean(),
  created: Type.String(),
  /** Tunnels registered with it. */
  uses: Type.Integer({ minimum: 0 }),
  /** Domains its tunnels may claim (host names or `*.suffix`); absent or empty = any. */
  domains: Type.Optional(Type.Array(Type.String())),
});

const StoredTunnel = Type.Object({
  id: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  name: Type.String(),
  hostname: Type.String(),
  secret: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  tokenId: Type.String(),
  created: Type.String(),
  lastActive: Type.String(),
  address: Type.String(),
  version: Type.String(),
  os: Type.String(),
  arch: Type.String(),
  /** Shut down by the admin: its sessions are refused until it is configured again. */
  shutdown: Type.Boolean(),
  bandwidth: Type.Object({
    daily: Type.Number({ minimum: 0 }),
    monthly: Type.Number({ minimum: 0 }),
    /** The UTC day (YYYY-MM-DD) `daily` counts. */
    day: Type.String(),
    /** The UTC month (YYYY-MM) `monthly` counts. */
    month: Type.String(),
  }),
  ports: Type.Array(StoredPortSchema),
  /** The domain patterns of its token at registration, in force if that token is deleted. */
  domains: Type.Optional(Type.Array(Type.String())),
});

/** A domain reserved for the tunnel that claimed it, whether that tunnel is online or not. */
const StoredDomain = Type.Object({
  domain: Type.String({ minLength: 1 }),
  tunnelId: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  claimed: Type.String(),
});

const HubState = Type.Object({
  version: Type.Literal(1),
  adminKey: Type.String({ minLength: 16 }),
  tokens: Type.Array(StoredToken),
  tunnels: Type.Array(StoredTunnel),
  /** Absent in state files written before domains were reserved. */
  domains: Type.Optional(Type.Array(StoredDomain)),
});

export type StoredToken = Static<typeof StoredToken>;
export type StoredTunnel = Static<typeof StoredTunnel>;
export type StoredDomain = Static<typeof StoredDomain>;
export type HubState = Static<typeof HubState>;

export const HUB_STATE_FILE = 'porthole-hub.json';

export class HubStateError extends Error {
  override readonly name = 'StateLoadError';
}

/** Checks the loaded state beyond its schema: unique ids, tokens and ports. */
function checkConsistency(state: HubState): void {
  const seen = new Set<string>();
  for (const t of state.tunnels) {
    if (seen.has(t.id)) throw new HubStateError(`tunnel ${t.id} appears twice`);
    seen.add(t.id);
  }
  const ports = new Map<number, string>();
  for (const t of state.tunnels) {
    for (const p of t.ports) {
      const owner = ports.get(p.port);
      if (owner !== undefined) throw new HubStateError(`port ${p.port} is held by both ${owner} and ${t.id}`);
      ports.set(p.port, t.id);
    }
  }
  const domains = new Set<string>();
  for (const d of state.domains ?? []) {
    if (domains.has(d.domain)) throw new HubStateError(`domain ${d.domain} is reserved twice`);
    if (!seen.has(d.tunnelId))
      throw new HubStateError(`domain ${d.domain} is reserved for unknown tunnel ${d.tunnelId}`);
    domains.add(d.domain);
  }
}

/**
 * The hub's JSON state (tokens, tunnels with their secrets, ports and bandwidth) in `dir`. Writes are atomic and
 * coalesced: `save()` resolves once a write including every change made before the call is on disk.
 */
export class HubStore {
  readonly path: string;
  private writing: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;
  private lazyTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly dir: string,
    private readonly snapshot: () => HubState,
    private readonly logger: Logger,
  ) {
    this.path = join(dir, HUB_STATE_FILE);
  }

  /** The saved state, or undefined on a first start. A corrupt file is an error, never a silent empty state. */
  async load(): Promise<HubState | undefined> {
    await mkdir(this.dir, { recursive: true });
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new HubStateError(`hub state ${this.path}: ${(err as Error).message}`);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new HubStateError(`hub state ${this.path} is not JSON (${(err as Error).message}); fix or remove it`);
    }
    if (!Value.Check(HubState, data)) {
      const first = Value.Errors(HubState, data)[0];
      throw new HubStateError(
        `hub state ${this.path} does not match its schema (${first ? `${first.instancePath || '/'}: ${first.message}` : '?'})`,
      );
    }
    checkConsistency(data);
    return data;
  }

  save(): Promise<void> {
    if (this.lazyTimer) {
      clearTimeout(this.lazyTimer);
      this.lazyTimer = undefined;
    }
    if (this.queued) return this.queued;
    const next = this.writing.then(async () => {
      this.queued = undefined;
      try {
        await writeAtomic(this.path, `${JSON.stringify(this.snapshot(), null, 2)}\n`);
      } catch (err) {
        this.logger.error(`Writing the hub state ${this.path} failed: ${(err as Error).message}`);
        throw err;
      }
    });
    this.queued = next;
    this.writing = next.catch(() => {});
    return next;
  }

  /** For frequent low-value changes (bandwidth counters, last activity). */
  saveLazily(delay: number): void {
    if (this.lazyTimer || this.queued) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined;
      this.save().catch(() => {});
    }, delay);
    this.lazyTimer.unref();
  }

  async flush(): Promise<void> {
    if (this.lazyTimer) await this.save();
    await this.writing;
  }
}

import { randomBytes } from 'node:crypto';
import type { Logger } from '../common/logger.js';
import type { LogLevel } from '../config/params.js';
import {
  canonicalConfig,
  canonicalUrl,
  type InheritedSettings,
  parseTunnelUrl,
  splitUrl,
  type TunnelUrl,
} from '../config/url.js';
import type { InstanceStats } from '../instance/stats.js';
import type { Action, InstanceView, PatchRequest, PeerValue } from './schemas.js';
import type { SseHub } from './sse.js';
import type { MasterState, StateStore, StoredInstance } from './store.js';
import { type ChildOptions, InstanceChild } from './supervisor.js';

export const API_KEY_ID = '********';

type Status = 'running' | 'stopped' | 'error';
type Counters = { tcprx: number; tcptx: number; udprx: number; udptx: number };
const zero = (): Counters => ({ tcprx: 0, tcptx: 0, udprx: 0, udptx: 0 });

interface InstanceRecord {
  id: string;
  alias: string;
  type: 'client' | 'server';
  url: string;
  config: string;
  restart: boolean;
  meta: { peer: PeerValue; tags: { [k: string]: string } };
  status: Status;
  /** Bytes of earlier runs minus what `reset` took away; the shown figure is base + current. */
  base: Counters;
  /** Bytes of the current process, from its last stats report. */
  current: Counters;
  live: { mode: number; ping: number; pool: number; tcps: number; udps: number };
  child: InstanceChild | undefined;
  statsTimer: NodeJS.Timeout | undefined;
  restartTimer: NodeJS.Timeout | undefined;
  backoff: number;
  /** Serializes start/stop/restart/put/delete of this instance. */
  lock: Promise<unknown>;
  deleted: boolean;
}

export interface ManagerOptions {
  inherited: InheritedSettings;
  child: Omit<ChildOptions, 'stopTimeout'>;
  stopTimeout: number;
  statsTimeout: number;
  restartBackoff: number;
  stateFlush: number;
}

const newId = (bytes: number) => randomBytes(bytes).toString('hex');

/**
 * The instances of a master: their records, processes, status rules and counters, the API key and master ID.
 * Every change goes to the SSE hub as an event and to the state store.
 */
export class InstanceManager {
  private readonly records = new Map<string, InstanceRecord>();
  key = '';
  mid = '';
  alias = '';
  store: StateStore | undefined;
  private closing = false;

  constructor(
    private readonly options: ManagerOptions,
    private readonly hub: SseHub,
    private readonly logger: Logger,
  ) {}

  /** Restores the state (every instance stopped) or starts fresh with a new key and master ID. */
  restore(state: MasterState | undefined): void {
    this.key = state?.key ?? newId(16);
    this.mid = state?.mid ?? newId(8);
    this.alias = state?.alias ?? '';
    for (const s of state?.instances ?? []) {
      const rec = this.newRecord(s.id, s.alias, s.type, s.url, s.config, s.restart);
      rec.meta = { peer: { ...s.meta.peer }, tags: { ...s.meta.tags } };
      rec.base = { tcprx: s.tcprx, tcptx: s.tcptx, udprx: s.udprx, udptx: s.udptx };
      this.records.set(s.id, rec);
    }
  }

  snapshot(): MasterState {
    const instances: StoredInstance[] = [];
    for (const r of this.records.values()) {
      const c = this.counters(r);
      instances.push({
        id: r.id,
        alias: r.alias,
        type: r.type,
        url: r.url,
        config: r.config,
        restart: r.restart,
        meta: { peer: { ...r.meta.peer }, tags: { ...r.meta.tags } },
        ...c,
      });
    }
    return { version: 1, mid: this.mid, key: this.key, alias: this.alias, instances };
  }

  private save(): Promise<void> {
    return this.store ? this.store.save() : Promise.resolve();
  }

  private newRecord(
    id: string,
    alias: string,
    type: 'client' | 'server',
    url: string,
    config: string,
    restart: boolean,
  ): InstanceRecord {
    return {
      id,
      alias,
      type,
      url,
      config,
      restart,
      meta: { peer: { sid: '', type: '', alias: '' }, tags: {} },
      status: 'stopped',
      base: zero(),
      current: zero(),
      live: { mode: 0, ping: 0, pool: 0, tcps: 0, udps: 0 },
      child: undefined,
      statsTimer: undefined,
      restartTimer: undefined,
      backoff: this.options.restartBackoff,
      lock: Promise.resolve(),
      deleted: false,
    };
  }

  private counters(r: InstanceRecord): Counters {
    return {
      tcprx: r.base.tcprx + r.current.tcprx,
      tcptx: r.base.tcptx + r.current.tcptx,
      udprx: r.base.udprx + r.current.udprx,
      udptx: r.base.udptx + r.current.udptx,
    };
  }

  keyView(): InstanceView {
    return {
      id: API_KEY_ID,
      alias: this.alias,
      type: '',
      status: '',
      url: this.key,
      config: this.mid,
      restart: false,
      meta: { peer: { sid: '', type: '', alias: '' }, tags: {} },
      mode: 0,
      ping: 0,
      pool: 0,
      tcps: 0,
      udps: 0,
      tcprx: 0,
      tcptx: 0,
      udprx: 0,
      udptx: 0,
    };
  }

  private view(r: InstanceRecord): InstanceView {
    return {
      id: r.id,
      alias: r.alias,
      type: r.type,
      status: r.status,
      url: r.url,
      config: r.config,
      restart: r.restart,
      meta: { peer: { ...r.meta.peer }, tags: { ...r.meta.tags } },
      ...r.live,
      ...this.counters(r),
    };
  }

  /** Every instance, the API-key instance first. */
  list(): InstanceView[] {
    return [this.keyView(), ...[...this.records.values()].map((r) => this.view(r))];
  }

  /** Instances only (no API-key instance), for metrics. */
  instances(): InstanceView[] {
    return [...this.records.values()].map((r) => this.view(r));
  }

  get(id: string): InstanceView | undefined {
    if (id === API_KEY_ID) return this.keyView();
    const r = this.records.get(id);
    return r && this.view(r);
  }

  has(id: string): boolean {
    return id === API_KEY_ID || this.records.has(id);
  }

  /** The url and config an instance gets for a parsed URL. */
  urls(url: TunnelUrl): { url: string; config: string } {
    const full = canonicalUrl(url, this.options.inherited);
    // config describes the URL as stored, inherited settings included.
    return { url: full, config: canonicalConfig(parseTunnelUrl(splitUrl(full))) };
  }

  private update(r: InstanceRecord): void {
    if (!r.deleted) this.hub.emit('update', this.view(r));
  }

  private setStatus(r: InstanceRecord, status: Status): void {
    if (r.status === status) return;
    r.status = status;
    this.update(r);
  }

  private withLock<T>(r: InstanceRecord, fn: () => Promise<T>): Promise<T> {
    const run = r.lock.then(fn, fn);
    r.lock = run.catch(() => {});
    return run;
  }

  // ---- instance lifecycle

  async create(parsed: TunnelUrl, alias: string): Promise<InstanceView> {
    let id = newId(4);
    while (this.records.has(id)) id = newId(4);
    const { url, config } = this.urls(parsed);
    const r = this.newRecord(id, alias, parsed.role, url, config, true);
    this.records.set(id, r);
    this.hub.emit('create', this.view(r));
    await this.save();
    void this.withLock(r, async () => this.spawn(r));
    return this.view(r);
  }

  private spawn(r: InstanceRecord): void {
    if (r.deleted || this.closing || r.child?.alive) return;
    if (r.restartTimer) {
      clearTimeout(r.restartTimer);
      r.restartTimer = undefined;
    }
    r.current = zero();
    r.live = { mode: 0, ping: 0, pool: 0, tcps: 0, udps: 0 };
    const child: InstanceChild = new InstanceChild(
      r.url,
      { ...this.options.child, stopTimeout: this.options.stopTimeout },
      {
        ready: (mode) => {
          if (r.child !== child) return;
          r.live.mode = mode;
        },
        stats: (s) => {
          if (r.child === child) this.onStats(r, s);
        },
        log: (level, line) => {
          if (r.child === child) this.onLog(r, level, line);
        },
        exit: (code, signal, requested) => this.onExit(r, child, code, signal, requested),
      },
    );
    r.child = child;
    r.status = 'running';
    this.update(r);
    this.logger.info(`Instance ${r.id} started (pid ${child.proc.pid ?? '?'}): ${r.url}`);
  }

  private onStats(r: InstanceRecord, s: InstanceStats): void {
    r.current = { tcprx: s.tcprx, tcptx: s.tcptx, udprx: s.udprx, udptx: s.udptx };
    r.live = { mode: s.mode, ping: s.ping, pool: s.pool, tcps: s.tcps, udps: s.udps };
    if (r.status === 'error') r.status = 'running';
    if (r.statsTimer) clearTimeout(r.statsTimer);
    r.statsTimer = setTimeout(() => {
      r.statsTimer = undefined;
      if (r.child?.alive && r.status === 'running') {
        this.logger.warn(`Instance ${r.id}: no stats report for ${this.options.statsTimeout} ms, marked error`);
        this.setStatus(r, 'error');
      }
    }, this.options.statsTimeout);
    r.statsTimer.unref();
    this.update(r);
    this.store?.saveLazily(this.options.stateFlush);
  }

  private onLog(r: InstanceRecord, level: Exclude<LogLevel, 'none'>, line: string): void {
    if (r.deleted || line.includes('CHECK_POINT|')) return;
    this.hub.emit('log', this.view(r), line);
    if (level === 'error' && r.status === 'running') this.setStatus(r, 'error');
  }

  private onExit(
    r: InstanceRecord,
    child: InstanceChild,
    code: number | null,
    signal: NodeJS.Signals | null,
    requested: boolean,
  ): void {
    if (r.child !== child) return;
    r.child = undefined;
    r.base = this.counters(r);
    r.current = zero();
    r.live = { mode: 0, ping: 0, pool: 0, tcps: 0, udps: 0 };
    if (r.statsTimer) clearTimeout(r.statsTimer);
    r.statsTimer = undefined;
    this.store?.saveLazily(this.options.stateFlush);
    if (r.deleted) return;
    if (requested) {
      this.setStatus(r, 'stopped');
      return;
    }
    const how = signal ? `signal ${signal}` : `code ${code}`;
    const failed = code !== 0;
    this.logger[failed ? 'warn' : 'info'](`Instance ${r.id} exited with ${how}`);
    this.setStatus(r, failed ? 'error' : 'stopped');
    if (failed && r.restart && !this.closing) {
      if (Date.now() - child.startedAt > 30_000) r.backoff = this.options.restartBackoff;
      const delay = r.backoff;
      r.backoff = Math.min(r.backoff * 2, this.options.restartBackoff * 32);
      this.logger.info(`Instance ${r.id} restarts in ${delay} ms`);
      r.restartTimer = setTimeout(() => {
        r.restartTimer = undefined;
        void this.withLock(r, async () => {
          if (r.restart && r.status === 'error') this.spawn(r);
        });
      }, delay);
      r.restartTimer.unref();
    }
  }

  private async halt(r: InstanceRecord): Promise<void> {
    if (r.restartTimer) {
      clearTimeout(r.restartTimer);
      r.restartTimer = undefined;
    }
    const child = r.child;
    if (child) await child.stop();
    this.setStatus(r, 'stopped');
  }

  /** Applies a validated PATCH in one go; resolves with the instance after the action. */
  async patch(id: string, req: PatchRequest): Promise<InstanceView | undefined> {
    const r = this.records.get(id);
    if (!r) return undefined;
    let changed = false;
    if (req.alias !== undefined && req.alias !== r.alias) {
      r.alias = req.alias;
      changed = true;
    }
    if (req.restart !== undefined && req.restart !== r.restart) {
      r.restart = req.restart;
      changed = true;
    }
    if (req.meta) {
      const p = req.meta.peer;
      if (p && (p.sid || p.type || p.alias)) {
        r.meta.peer = { sid: p.sid ?? '', type: p.type ?? '', alias: p.alias ?? '' };
        changed = true;
      }
      if (req.meta.tags) {
        r.meta.tags = { ...req.meta.tags };
        changed = true;
      }
    }
    if (changed) this.update(r);
    if (req.action) await this.act(r, req.action);
    if (changed || req.action) await this.save();
    return this.view(r);
  }

  private act(r: InstanceRecord, action: Action): Promise<void> {
    if (action === 'reset') {
      r.base = { tcprx: -r.current.tcprx, tcptx: -r.current.tcptx, udprx: -r.current.udprx, udptx: -r.current.udptx };
      this.update(r);
      return Promise.resolve();
    }
    return this.withLock(r, async () => {
      if (r.deleted) return;
      if (action === 'stop') await this.halt(r);
      else if (action === 'start') {
        r.backoff = this.options.restartBackoff;
        this.spawn(r);
      } else {
        await this.halt(r);
        r.backoff = this.options.restartBackoff;
        this.spawn(r);
      }
    });
  }

  /** PUT: stop, replace url/type/config, start. Returns 'conflict' when the url would not change. */
  async replaceUrl(id: string, parsed: TunnelUrl): Promise<InstanceView | 'conflict' | undefined> {
    const r = this.records.get(id);
    if (!r) return undefined;
    const { url, config } = this.urls(parsed);
    if (url === r.url) return 'conflict';
    await this.withLock(r, async () => {
      await this.halt(r);
      if (r.deleted) return;
      r.url = url;
      r.config = config;
      r.type = parsed.role;
      r.backoff = this.options.restartBackoff;
      this.update(r);
      await this.save();
      this.spawn(r);
    });
    return this.view(r);
  }

  async remove(id: string): Promise<boolean> {
    const r = this.records.get(id);
    if (!r) return false;
    await this.withLock(r, async () => {
      if (r.deleted) return;
      // From here on the instance emits nothing: its last event is `delete`.
      r.deleted = true;
      if (r.restartTimer) clearTimeout(r.restartTimer);
      await r.child?.stop();
      r.status = 'stopped';
      this.records.delete(r.id);
      this.hub.emit('delete', this.view(r));
      await this.save();
    });
    return true;
  }

  /** Regenerates the API key (PATCH ******** restart). */
  async regenerateKey(): Promise<InstanceView> {
    this.key = newId(16);
    await this.save();
    const view = this.keyView();
    this.hub.emit('update', view);
    return view;
  }

  async setAlias(alias: string): Promise<void> {
    if (alias === this.alias) return;
    this.alias = alias;
    await this.save();
    this.hub.emit('update', this.keyView());
  }

  /** Master start: restart:true instances start, spaced `spacing` ms. */
  async autostart(spacing = 100): Promise<void> {
    let first = true;
    for (const r of [...this.records.values()]) {
      if (!r.restart || this.closing) continue;
      if (!first) await new Promise((res) => setTimeout(res, spacing));
      first = false;
      void this.withLock(r, async () => this.spawn(r));
    }
  }

  /** Hourly: instances in error get another start (NodePass's reload tick). */
  restartFailed(): void {
    for (const r of this.records.values()) {
      if (r.status === 'error' && !this.closing) {
        void this.withLock(r, async () => {
          await this.halt(r);
          this.spawn(r);
        });
      }
    }
  }

  /** Master shutdown: stop every instance (restart flags are kept for the next start). */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      [...this.records.values()].map(async (r) => {
        if (r.restartTimer) clearTimeout(r.restartTimer);
        if (r.statsTimer) clearTimeout(r.statsTimer);
        await r.child?.stop();
      }),
    );
  }
}

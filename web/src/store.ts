/**
 * What the dashboard knows: the instances (from events and snapshots), each one's traffic history (sampled from its
 * cumulative counters) and its log lines since this page connected (bounded). Views subscribe and re-render at most
 * once per animation frame.
 */
import { API_KEY_ID, type Instance } from './api.js';
import type { InstanceEvent } from './live.js';
import { TrafficHistory } from './traffic.js';

export interface LogLine {
  seq: number;
  time: string;
  text: string;
}

/** Log lines kept per instance. */
export const LOG_LIMIT = 2000;

export class InstanceStore {
  readonly instances = new Map<string, Instance>();
  readonly traffic = new Map<string, TrafficHistory>();
  readonly logs = new Map<string, LogLine[]>();
  /** The API-key instance: alias = master alias. */
  keyInstance: Instance | undefined;
  private seq = 0;
  private listeners = new Set<() => void>();
  private scheduled = false;
  version = 0;

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    this.version++;
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      for (const fn of this.listeners) fn();
    };
    if (typeof requestAnimationFrame === 'function' && document.visibilityState === 'visible') {
      requestAnimationFrame(run);
    } else setTimeout(run, 0);
  }

  list(): Instance[] {
    return [...this.instances.values()];
  }

  upsert(i: Instance, now = Date.now()): void {
    if (i.id === API_KEY_ID) {
      this.keyInstance = i;
      this.changed();
      return;
    }
    this.instances.set(i.id, i);
    let history = this.traffic.get(i.id);
    if (!history) {
      history = new TrafficHistory();
      this.traffic.set(i.id, history);
    }
    history.sample(i, now);
    this.changed();
  }

  remove(id: string): void {
    this.instances.delete(id);
    this.traffic.delete(id);
    this.logs.delete(id);
    this.changed();
  }

  /** A full list: adds and updates, and drops what is no longer there. */
  snapshot(list: Instance[]): void {
    const ids = new Set(list.map((i) => i.id));
    for (const id of [...this.instances.keys()]) if (!ids.has(id)) this.remove(id);
    for (const i of list) this.upsert(i);
  }

  apply(e: InstanceEvent): void {
    const i = e.instance;
    if (!i) return;
    if (e.type === 'delete') {
      this.remove(i.id);
      return;
    }
    if (e.type === 'log') {
      let lines = this.logs.get(i.id);
      if (!lines) {
        lines = [];
        this.logs.set(i.id, lines);
      }
      for (const text of e.logs.split('\n')) {
        if (text === '') continue;
        lines.push({ seq: ++this.seq, time: e.time, text });
      }
      if (lines.length > LOG_LIMIT) lines.splice(0, lines.length - LOG_LIMIT);
      this.changed();
      return;
    }
    this.upsert(i);
  }

  clearLogs(id: string): void {
    this.logs.set(id, []);
    this.changed();
  }
}

import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { InstanceManager } from './manager.js';

/**
 * `/metrics` (Prometheus text format): instances by status, and per instance its byte counters, open sessions,
 * pool and ping, read from the manager at scrape time. Byte figures are gauges: `reset` can take them down.
 */
export function createMetrics(manager: InstanceManager): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'porthole_master_' });
  new Gauge({
    name: 'porthole_instances',
    help: 'Instances by status',
    labelNames: ['status'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = { running: 0, stopped: 0, error: 0 } as Record<string, number>;
      for (const i of manager.instances()) counts[i.status] = (counts[i.status] ?? 0) + 1;
      for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
    },
  });
  new Gauge({
    name: 'porthole_instance_bytes',
    help: 'Cumulative bytes of an instance (survive restarts until reset); rx = from users, tx = to users',
    labelNames: ['id', 'alias', 'type', 'protocol', 'direction'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of manager.instances()) {
        const base = { id: i.id, alias: i.alias, type: i.type };
        this.set({ ...base, protocol: 'tcp', direction: 'rx' }, i.tcprx);
        this.set({ ...base, protocol: 'tcp', direction: 'tx' }, i.tcptx);
        this.set({ ...base, protocol: 'udp', direction: 'rx' }, i.udprx);
        this.set({ ...base, protocol: 'udp', direction: 'tx' }, i.udptx);
      }
    },
  });
  new Gauge({
    name: 'porthole_instance_sessions',
    help: 'Open sessions of an instance',
    labelNames: ['id', 'alias', 'type', 'protocol'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of manager.instances()) {
        this.set({ id: i.id, alias: i.alias, type: i.type, protocol: 'tcp' }, i.tcps);
        this.set({ id: i.id, alias: i.alias, type: i.type, protocol: 'udp' }, i.udps);
      }
    },
  });
  new Gauge({
    name: 'porthole_instance_pool',
    help: 'Pool connections of an instance (dual-end tunnels)',
    labelNames: ['id', 'alias', 'type'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of manager.instances()) this.set({ id: i.id, alias: i.alias, type: i.type }, i.pool);
    },
  });
  new Gauge({
    name: 'porthole_instance_ping_ms',
    help: 'Last measured latency of an instance, ms',
    labelNames: ['id', 'alias', 'type'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of manager.instances()) this.set({ id: i.id, alias: i.alias, type: i.type }, i.ping);
    },
  });
  return registry;
}

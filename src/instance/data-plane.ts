import type { RuntimeSettings } from '../config/env.js';
import type { TunnelUrl } from '../config/url.js';
import { Dialer } from '../tunnel/dialer.js';
import { SessionSlots } from '../tunnel/session-slots.js';
import { InstanceTraffic } from '../tunnel/traffic.js';

/** What every instance mode shares: its counters and rate limit, its session cap and its target dialer. */
export interface InstanceDataPlane {
  traffic: InstanceTraffic;
  slots: SessionSlots;
  dialer: Dialer;
}

export function createDataPlane(url: TunnelUrl, settings: RuntimeSettings): InstanceDataPlane {
  const p = url.params;
  const traffic = new InstanceTraffic(p.rate);
  return {
    traffic,
    slots: new SessionSlots(p.slot, traffic.counters),
    dialer: new Dialer(url.targets, {
      lbs: p.lbs,
      dialTimeout: settings.tcpDialTimeout,
      localAddress: p.dial,
      dnsTtl: p.dns,
      probeInterval: settings.probeInterval,
      primaryReturnInterval: settings.primaryReturnInterval,
    }),
  };
}

import type { InstanceStats } from './stats.js';

/** Messages an instance sends to a supervising master over node's IPC channel (present when a master spawned it). */
export type InstanceMessage = ({ type: 'stats' } & InstanceStats) | { type: 'ready'; mode: number };

export function sendToMaster(message: InstanceMessage): void {
  if (process.send !== undefined && process.connected) process.send(message);
}

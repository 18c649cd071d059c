import type { LogLevel } from '../config/params.js';
import type { InstanceStats } from './stats.js';

/**
 * Messages an instance sends to a supervising master over node's IPC channel (present when a master spawned it).
 * `log` carries one formatted log line (what the instance would print, without the newline); the master turns it
 * into an SSE `log` event, so it never has to read the instance's stdout.
 */
export type InstanceMessage =
  | ({ type: 'stats' } & InstanceStats)
  | { type: 'ready'; mode: number }
  | { type: 'log'; level: Exclude<LogLevel, 'none'>; line: string };

export function sendToMaster(message: InstanceMessage): void {
  if (process.send !== undefined && process.connected) process.send(message);
}

// An instance a master spawned (PORTHOLE_MASTER_IPC=1) ends with its master: when the IPC channel closes (the
// master exited, even by SIGKILL), it shuts down as on SIGTERM instead of running on unsupervised and holding its
// ports against the next master's copy of it.
if (process.env.PORTHOLE_MASTER_IPC === '1' && process.send !== undefined) {
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}

import { resolve } from 'node:path';
import { parseGoDuration } from '../config/duration.js';
import { ConfigError } from '../config/errors.js';

/** The master's own tunables (durations in ms). NodePass's NP_* settings are read by config/env.ts. */
export interface MasterSettings {
  /** Where the state file and its backup live: PORTHOLE_STATE_DIR, else ./data. */
  stateDir: string;
  /** A running instance with no stats report for this long (after its first) is `error` (PORTHOLE_STATS_TIMEOUT, 15s). */
  statsTimeout: number;
  /** SIGTERM, then SIGKILL after this long (PORTHOLE_STOP_TIMEOUT, 5s). */
  stopTimeout: number;
  /** First delay before restarting a crashed restart:true instance; doubles up to 32× (PORTHOLE_RESTART_BACKOFF, 1s). */
  restartBackoff: number;
  /** SSE comment heartbeat (PORTHOLE_SSE_HEARTBEAT, 15s). */
  sseHeartbeat: number;
  /** Bytes queued for one SSE subscriber before it is disconnected (PORTHOLE_SSE_BUFFER, 1 MiB). */
  sseBuffer: number;
  /** How soon counter changes from stats reports reach the state file (PORTHOLE_STATE_FLUSH, 5s). */
  stateFlush: number;
  /** Dial timeout of /tcping (PORTHOLE_TCPING_TIMEOUT, 5s). */
  tcpingTimeout: number;
}

function duration(env: NodeJS.ProcessEnv, name: string, fallback: string): number {
  const raw = env[name]?.trim() || fallback;
  const ms = parseGoDuration(raw, name) / 1e6;
  if (ms <= 0) throw new ConfigError(`${name}: must be greater than 0 (got "${raw}")`, name);
  return ms;
}

export function readMasterSettings(env: NodeJS.ProcessEnv = process.env): MasterSettings {
  const buffer = Number(env.PORTHOLE_SSE_BUFFER?.trim() || 1048576);
  if (!Number.isSafeInteger(buffer) || buffer < 1024) {
    throw new ConfigError(`PORTHOLE_SSE_BUFFER: invalid value "${env.PORTHOLE_SSE_BUFFER}" (bytes, at least 1024)`);
  }
  return {
    stateDir: resolve(env.PORTHOLE_STATE_DIR?.trim() || 'data'),
    statsTimeout: duration(env, 'PORTHOLE_STATS_TIMEOUT', '15s'),
    stopTimeout: duration(env, 'PORTHOLE_STOP_TIMEOUT', '5s'),
    restartBackoff: duration(env, 'PORTHOLE_RESTART_BACKOFF', '1s'),
    sseHeartbeat: duration(env, 'PORTHOLE_SSE_HEARTBEAT', '15s'),
    sseBuffer: buffer,
    stateFlush: duration(env, 'PORTHOLE_STATE_FLUSH', '5s'),
    tcpingTimeout: duration(env, 'PORTHOLE_TCPING_TIMEOUT', '5s'),
  };
}

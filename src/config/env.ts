import { parseGoDuration } from './duration.js';
import { ConfigError } from './errors.js';

/** NodePass's tunables, read from NP_* environment variables with NodePass's defaults. Durations in ms. */
export interface RuntimeSettings {
  semaphoreLimit: number;
  tcpDataBufSize: number;
  udpDataBufSize: number;
  handshakeTimeout: number;
  tcpDialTimeout: number;
  udpDialTimeout: number;
  udpReadTimeout: number;
  poolGetTimeout: number;
  minPoolInterval: number;
  maxPoolInterval: number;
  reportInterval: number;
  serviceCooldown: number;
  shutdownTimeout: number;
  reloadInterval: number;
  /** porthole's own: how often lbs=1 probes every target. */
  probeInterval: number;
  /** porthole's own: how often lbs=2 goes back to the first target. */
  primaryReturnInterval: number;
}

type Spec = [keyof RuntimeSettings, string, 'int' | 'duration', string];

const SPECS: Spec[] = [
  ['semaphoreLimit', 'NP_SEMAPHORE_LIMIT', 'int', '65536'],
  ['tcpDataBufSize', 'NP_TCP_DATA_BUF_SIZE', 'int', '16384'],
  ['udpDataBufSize', 'NP_UDP_DATA_BUF_SIZE', 'int', '16384'],
  ['handshakeTimeout', 'NP_HANDSHAKE_TIMEOUT', 'duration', '5s'],
  ['tcpDialTimeout', 'NP_TCP_DIAL_TIMEOUT', 'duration', '5s'],
  ['udpDialTimeout', 'NP_UDP_DIAL_TIMEOUT', 'duration', '5s'],
  ['udpReadTimeout', 'NP_UDP_READ_TIMEOUT', 'duration', '30s'],
  ['poolGetTimeout', 'NP_POOL_GET_TIMEOUT', 'duration', '5s'],
  ['minPoolInterval', 'NP_MIN_POOL_INTERVAL', 'duration', '100ms'],
  ['maxPoolInterval', 'NP_MAX_POOL_INTERVAL', 'duration', '1s'],
  ['reportInterval', 'NP_REPORT_INTERVAL', 'duration', '5s'],
  ['serviceCooldown', 'NP_SERVICE_COOLDOWN', 'duration', '3s'],
  ['shutdownTimeout', 'NP_SHUTDOWN_TIMEOUT', 'duration', '5s'],
  ['reloadInterval', 'NP_RELOAD_INTERVAL', 'duration', '1h'],
  ['probeInterval', 'PORTHOLE_PROBE_INTERVAL', 'duration', '5s'],
  ['primaryReturnInterval', 'PORTHOLE_PRIMARY_RETURN_INTERVAL', 'duration', '5m'],
];

/** Reads the settings from `env`; a malformed variable is a ConfigError naming it. */
export function readRuntimeSettings(env: NodeJS.ProcessEnv = process.env): RuntimeSettings {
  const out = {} as RuntimeSettings;
  for (const [field, name, kind, fallback] of SPECS) {
    const raw = env[name]?.trim() || fallback;
    if (kind === 'int') {
      const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
      if (!Number.isSafeInteger(n) || n < 1) {
        throw new ConfigError(`${name}: invalid value "${raw}" (accepted: a positive integer)`, name);
      }
      out[field] = n;
    } else {
      const ms = parseGoDuration(raw, name) / 1e6;
      if (ms <= 0) throw new ConfigError(`${name}: must be greater than 0 (got "${raw}")`, name);
      out[field] = ms;
    }
  }
  return out;
}

export { formatGoDuration, parseGoDuration } from './duration.js';
export { type RuntimeSettings, readRuntimeSettings } from './env.js';
export { ConfigError } from './errors.js';
export type { BlockedProtocol, LogLevel, Role, TunnelParams } from './params.js';
export { deriveTunnelKey, fnv1a32 } from './tunnel-key.js';
export {
  canonicalConfig,
  canonicalUrl,
  type Endpoint,
  formatEndpoint,
  type InheritedSettings,
  type MasterUrl,
  type PortholeUrl,
  parseEndpoint,
  parsePortholeUrl,
  type TunnelUrl,
} from './url.js';

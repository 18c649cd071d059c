import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { Registry } from 'prom-client';
import type { Logger } from '../common/logger.js';
import type { MasterUrl } from '../config/url.js';
import type { InstanceManager } from './manager.js';
import type { SseHub } from './sse.js';
import type { SystemInfo } from './sysinfo.js';
import type { Tcping } from './tcping.js';

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** What the route modules share. */
export interface MasterContext {
  url: MasterUrl;
  manager: InstanceManager;
  hub: SseHub;
  sysinfo: SystemInfo;
  tcping: Tcping;
  metrics: Registry;
  logger: Logger;
  startedAt: number;
  /** `{prefix}/v1` */
  base: string;
  /** Called after the key was regenerated and the response is on its way: ends every SSE stream. */
  onKeyRegenerated(): void;
}

/** Route options shared by the registration of one route set at `{prefix}/v1` (documented) and `{prefix}` (hidden). */
export interface RouteSet {
  base: string;
  hide: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route needs a valid X-API-Key. */
    auth?: boolean;
  }
}

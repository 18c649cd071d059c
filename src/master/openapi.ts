import { registerApiDocs } from '../common/api-docs.js';
import type { App } from './context.js';
import { REPORTED_VERSION } from './routes-system.js';

export { apiBaseFor } from '../common/api-docs.js';

/**
 * OpenAPI 3.1 at `{base}/openapi.json` and local Swagger UI at `{base}/docs` (common/api-docs.ts), plus the
 * NodePass-style aliases below `{prefix}`.
 */
export async function registerOpenApi(app: App, base: string, prefix: string): Promise<void> {
  const openapi = await registerApiDocs(app, {
    base,
    title: 'porthole master API',
    version: REPORTED_VERSION,
    description:
      'NodePass-compatible master API: instances as child processes, server-sent events, master information. Every protected route needs the `X-API-Key` header.',
    securitySchemes: { ApiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } },
    tags: [
      { name: 'instances', description: 'server:// and client:// instances' },
      { name: 'events', description: 'server-sent events' },
      { name: 'master', description: 'master information and tools' },
    ],
  });
  app.get(`${prefix}/openapi.json`, { schema: { hide: true } }, openapi);
  app.get(`${prefix}/docs`, { schema: { hide: true } }, (_req, reply) => reply.redirect(`${base}/docs`));
}

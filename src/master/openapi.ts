import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyRequest } from 'fastify';
import type { App } from './context.js';
import { REPORTED_VERSION } from './routes-system.js';

/** The API base as the client reached it (for `servers[0].url`). */
export function apiBaseFor(req: FastifyRequest, base: string): string {
  const proto = req.protocol;
  return `${proto}://${req.headers.host ?? req.hostname}${base}`;
}

/**
 * OpenAPI 3.1 from the route schemas (@fastify/swagger), served at `{base}/openapi.json`, and Swagger UI at
 * `{base}/docs` from the @fastify/swagger-ui package's own files: no CDN, no network needed.
 */
export async function registerOpenApi(app: App, base: string, prefix: string): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.1',
      info: {
        title: 'porthole master API',
        version: REPORTED_VERSION,
        description:
          'NodePass-compatible master API: instances as child processes, server-sent events, master information. Every protected route needs the `X-API-Key` header.',
      },
      servers: [{ url: base }],
      components: { securitySchemes: { ApiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } } },
      tags: [
        { name: 'instances', description: 'server:// and client:// instances' },
        { name: 'events', description: 'server-sent events' },
        { name: 'master', description: 'master information and tools' },
      ],
    },
  });
  await app.register(swaggerUi, {
    routePrefix: `${base}/docs`,
    uiConfig: { docExpansion: 'list', deepLinking: true, validatorUrl: null, persistAuthorization: true },
    // Everything from this origin; no upgrade-insecure-requests (the API is often plain http on a LAN).
    staticCSP:
      "default-src 'self'; base-uri 'self'; connect-src 'self'; font-src 'self' data:; frame-ancestors 'self'; img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self' 'unsafe-inline'",
    transformSpecification: (spec, req) => ({ ...(spec as object), servers: [{ url: apiBaseFor(req, base) }] }),
    transformSpecificationClone: true,
  });
  const openapi = async (req: FastifyRequest) => ({
    ...(app.swagger() as object),
    servers: [{ url: apiBaseFor(req, base) }],
  });
  app.get(`${base}/openapi.json`, { schema: { hide: true } }, openapi);
  app.get(`${prefix}/openapi.json`, { schema: { hide: true } }, openapi);
  app.get(`${prefix}/docs`, { schema: { hide: true } }, (_req, reply) => reply.redirect(`${base}/docs`));
}

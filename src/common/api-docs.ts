import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/** The API base as the client reached it (for `servers[0].url`). */
export function apiBaseFor(req: FastifyRequest, base: string): string {
  return `${req.protocol}://${req.headers.host ?? req.hostname}${base}`;
}

export interface ApiDocsOptions {
  base: string;
  title: string;
  version: string;
  description: string;
  tags: Array<{ name: string; description: string }>;
  securitySchemes?: Record<string, unknown>;
}

// Everything from this origin; no upgrade-insecure-requests (admin APIs are often plain http on a LAN or loopback).
const CSP =
  "default-src 'self'; base-uri 'self'; connect-src 'self'; font-src 'self' data:; frame-ancestors 'self'; img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self' 'unsafe-inline'";

/**
 * OpenAPI 3.1 from the route schemas (@fastify/swagger), served at `{base}/openapi.json`, and Swagger UI at
 * `{base}/docs` from the @fastify/swagger-ui package's own files: no CDN, no network needed. Shared by the master,
 * the hub and the connector admin APIs. Returns the handler serving the document (to mount it elsewhere too).
 */
export async function registerApiDocs(
  // biome-ignore lint/suspicious/noExplicitAny: any Fastify instance, whatever its type provider
  app: FastifyInstance<any, any, any, any, any>,
  options: ApiDocsOptions,
): Promise<(req: FastifyRequest) => Promise<object>> {
  const { base } = options;
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.1',
      info: { title: options.title, version: options.version, description: options.description },
      servers: [{ url: base }],
      ...(options.securitySchemes ? { components: { securitySchemes: options.securitySchemes } } : {}),
      tags: options.tags,
    },
  } as Parameters<typeof swagger>[1]);
  await app.register(swaggerUi, {
    routePrefix: `${base}/docs`,
    uiConfig: { docExpansion: 'list', deepLinking: true, validatorUrl: null, persistAuthorization: true },
    staticCSP: CSP,
    transformSpecification: (spec, req) => ({ ...(spec as object), servers: [{ url: apiBaseFor(req, base) }] }),
    transformSpecificationClone: true,
  });
  const openapi = async (req: FastifyRequest) => ({
    ...(app.swagger() as object),
    servers: [{ url: apiBaseFor(req, base) }],
  });
  app.get(`${base}/openapi.json`, { schema: { hide: true } }, openapi);
  return openapi;
}

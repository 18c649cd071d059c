import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import type { Logger } from './logger.js';

export type JsonApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** An API error with its HTTP status; the handler answers `{status: false, error}`. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

const BODY_LIMIT = 1024 * 1024;

function parseJson(text: string): unknown {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  try {
    return JSON.parse(trimmed);
  } catch (err) {
    throw new ApiError(400, `invalid JSON body: ${(err as Error).message}`);
  }
}

/**
 * Fastify for the Packetriot-style admin APIs (hub and connector): JSON only (a request body with another content
 * type is 415), every error as `{status: false, error}` with a fitting status, unknown routes 404 in the same shape.
 */
export function createJsonApi(logger: Logger): JsonApp {
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
    routerOptions: { ignoreTrailingSlash: true },
  }) as unknown as JsonApp;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJson(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ status: false, error: `no route ${req.method} ${req.url.split('?')[0]}` }),
  );
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    if (err instanceof ApiError) return reply.code(err.statusCode).send({ status: false, error: err.message });
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.code(415).send({ status: false, error: 'only application/json request bodies are accepted' });
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(413).send({ status: false, error: 'request body too large' });
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status >= 500) {
      logger.error(`admin API error: ${err.stack ?? err.message}`);
      return reply.code(500).send({ status: false, error: `internal error: ${err.message}` });
    }
    const message = err.validation ? `invalid request: ${err.message}` : err.message;
    return reply.code(status).send({ status: false, error: message });
  });
  return app;
}

/**
 * The JSON body of a GET request (Fastify never parses one): the seed's traffic/delete is a GET with a body.
 * Same rules as for other bodies: JSON content type, size limit, clear errors.
 */
export async function readGetBody(req: FastifyRequest): Promise<unknown> {
  const length = Number(req.headers['content-length'] ?? 0);
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (length === 0 && !chunked) return undefined;
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new ApiError(415, 'only application/json request bodies are accepted');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req.raw) {
    size += (chunk as Buffer).length;
    if (size > BODY_LIMIT) throw new ApiError(413, 'request body too large');
    chunks.push(chunk as Buffer);
  }
  return parseJson(Buffer.concat(chunks).toString('utf8'));
}

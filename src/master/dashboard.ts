import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync, constants as zlib } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { App } from './context.js';

/**
 * The web dashboard: `index.html` at `/` and at `{prefix}/ui`, its bundle under `{prefix}/ui/assets/`. The bundle is
 * built into dist/web by `npm run build` (scripts/build-web.mjs) with content-hashed names, so assets are cached
 * for a year and only index.html (no-cache, ETag) is asked for again. Files are read once at start; each encoding
 * (br, gzip) is compressed on first request and kept. The dashboard talks to the API only, with the user's key.
 */

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.woff2': 'font/woff2',
};

/** The page may load its own assets and call its own origin's API, nothing else. */
const PAGE_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

type Encoding = 'br' | 'gzip' | 'identity';

class StaticFile {
  readonly etag: string;
  private readonly encoded = new Map<Encoding, Buffer>();

  constructor(
    readonly body: Buffer,
    readonly type: string,
    readonly cacheControl: string,
  ) {
    this.etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    this.encoded.set('identity', body);
  }

  /** The best encoding the request accepts (compression pays only above ~1 KiB). */
  pick(acceptEncoding: string | undefined): Encoding {
    if (this.body.length < 1024 || !acceptEncoding) return 'identity';
    if (/\bbr\b/.test(acceptEncoding)) return 'br';
    if (/\bgzip\b/.test(acceptEncoding)) return 'gzip';
    return 'identity';
  }

  bytes(encoding: Encoding): Buffer {
    let out = this.encoded.get(encoding);
    if (!out) {
      out =
        encoding === 'br'
          ? brotliCompressSync(this.body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 9 } })
          : gzipSync(this.body, { level: 9 });
      this.encoded.set(encoding, out);
    }
    return out;
  }

  send(req: FastifyRequest, reply: FastifyReply, extra: Record<string, string> = {}): FastifyReply {
    reply.headers({
      ...extra,
      'Cache-Control': this.cacheControl,
      ETag: this.etag,
      Vary: 'Accept-Encoding',
      'X-Content-Type-Options': 'nosniff',
    });
    const match = req.headers['if-none-match'];
    if (match?.split(',').some((t) => t.trim().replace(/^W\//, '') === this.etag)) {
      return reply.code(304).send();
    }
    const encoding = this.pick(req.headers['accept-encoding']);
    if (encoding !== 'identity') reply.header('Content-Encoding', encoding);
    return reply.type(this.type).send(this.bytes(encoding));
  }
}

/** Where `npm run build` puts the bundle: dist/web next to dist/master. */
export const DASHBOARD_DIR = fileURLToPath(new URL('../web/', import.meta.url));

interface Dashboard {
  page: StaticFile;
  assets: Map<string, StaticFile>;
}

/** Reads the built dashboard, or undefined when there is none (a source checkout that was never built). */
export function loadDashboard(dir: string, assetPath: string, apiBase: string): Dashboard | undefined {
  const indexFile = join(dir, 'index.html');
  const assetDir = join(dir, 'assets');
  if (!existsSync(indexFile) || !existsSync(assetDir)) return undefined;
  const html = readFileSync(indexFile, 'utf8').replaceAll('__ASSETS__', assetPath).replaceAll('__API_BASE__', apiBase);
  const assets = new Map<string, StaticFile>();
  for (const name of readdirSync(assetDir)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    assets.set(name, new StaticFile(readFileSync(join(assetDir, name)), type, 'public, max-age=31536000, immutable'));
  }
  return { page: new StaticFile(Buffer.from(html), TYPES['.html'] as string, 'no-cache'), assets };
}

function notBuiltPage(base: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>porthole master</title></head><body>
<h1>porthole master</h1>
<p>The web dashboard is not built in this installation (run <code>npm run build</code>). The NodePass-compatible API is
at <code>${base}</code> (send the API key printed at start in the <code>X-API-Key</code> header);
<a href="${base}/docs">API documentation</a>.</p>
</body></html>
`;
}

/** `/` and `{prefix}/ui`: the dashboard page; `{prefix}/ui/assets/*`: its bundle. */
export function dashboardRoutes(app: App, prefix: string, base: string, dir = DASHBOARD_DIR): void {
  const assetPath = `${prefix}/ui/assets`;
  const dashboard = loadDashboard(dir, assetPath, base);
  const page = (req: FastifyRequest, reply: FastifyReply) => {
    if (!dashboard) return reply.code(200).type('text/html; charset=utf-8').send(notBuiltPage(base));
    return dashboard.page.send(req, reply, PAGE_HEADERS);
  };
  app.get('/', { schema: { hide: true } }, page);
  app.get(`${prefix}/ui`, { schema: { hide: true } }, page);
  app.get<{ Params: { file: string } }>(`${assetPath}/:file`, { schema: { hide: true } }, (req, reply) => {
    // Only names that the build wrote are served: no path is ever joined from the request.
    const file = dashboard?.assets.get(req.params.file);
    if (!file) return reply.code(404).send({ error: 'Not found' });
    return file.send(req, reply);
  });
}

import type { App } from './context.js';

/** `/`: the dashboard's place. The dashboard itself is a later issue; this page links to what exists. */
export function dashboardRoutes(app: App, base: string): void {
  const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>porthole master</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}code{background:#eee;padding:0 .2em}</style>
</head><body>
<h1>porthole master</h1>
<p>The web dashboard is not part of this build yet. The NodePass-compatible API is at <code>${base}</code>
(send the API key printed at start in the <code>X-API-Key</code> header); existing NodePass dashboards can use it
with the base URL <code>http://HOST:PORT${base}</code>.</p>
<ul><li><a href="${base}/docs">API documentation (Swagger UI)</a></li><li><a href="${base}/openapi.json">OpenAPI document</a></li></ul>
</body></html>
`;
  app.get('/', { schema: { hide: true } }, (_req, reply) => reply.type('text/html; charset=utf-8').send(page));
}

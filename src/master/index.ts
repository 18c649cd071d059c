import { isIP } from 'node:net';
import Fastify, { type FastifyError, type FastifyServerOptions } from 'fastify';
import type { Logger } from '../common/logger.js';
import type { RuntimeSettings } from '../config/env.js';
import type { MasterUrl } from '../config/url.js';
import { ListenerCertificate } from '../tunnel/tls-listener.js';
import { checkApiKey } from './auth.js';
import type { App, MasterContext } from './context.js';
import { CORS_HEADERS } from './cors.js';
import { dashboardRoutes } from './dashboard.js';
import { InstanceManager } from './manager.js';
import { createMetrics } from './metrics.js';
import { registerOpenApi } from './openapi.js';
import { instanceRoutes } from './routes-instances.js';
import { systemRoutes } from './routes-system.js';
import { type MasterSettings, readMasterSettings } from './settings.js';
import { SseHub } from './sse.js';
import { StateStore } from './store.js';
import { SystemInfo } from './sysinfo.js';
import { Tcping } from './tcping.js';

export interface RunningMaster {
  stop(timeout: number): Promise<void>;
  port: number;
  apiKey(): string;
}

/** Paths of the API below a base, for the 405 answer on a known path with an unknown method. */
const KNOWN = /^\/(instances(\/[^/]+)?|events|info|tcping|metrics)$/;

function bodyError(message: string, statusCode = 400): FastifyError {
  return Object.assign(new Error(message), { statusCode, code: 'PORTHOLE_BAD_BODY', name: 'BadBody' }) as FastifyError;
}

/** Starts `master://host:port/prefix?log=&tls=&crt=&key=`: the API, its instances, and the state in the state dir. */
export async function startMaster(
  url: MasterUrl,
  settings: RuntimeSettings,
  logger: Logger,
  master: MasterSettings = readMasterSettings(),
  print: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): Promise<RunningMaster> {
  const prefix = url.prefix;
  const base = `${prefix}/v1`;
  const hub = new SseHub(master.sseHeartbeat, master.sseBuffer, logger);
  const manager = new InstanceManager(
    {
      inherited: { log: url.params.log, tls: url.params.tls, crt: url.params.crt, key: url.params.key },
      child: { cliPath: process.argv[1] as string, execArgv: process.execArgv, env: process.env },
      stopTimeout: master.stopTimeout,
      statsTimeout: master.statsTimeout,
      restartBackoff: master.restartBackoff,
      stateFlush: master.stateFlush,
    },
    hub,
    logger,
  );
  const store = new StateStore(master.stateDir, () => manager.snapshot(), logger);
  const state = await store.load();
  manager.restore(state);
  manager.store = store;
  // A first start writes the new key at once; every start refreshes the backup from a state known to be good.
  await store.save();
  await store.backup();

  let certificate: ListenerCertificate | undefined;
  const options: FastifyServerOptions = {
    logger: false,
    bodyLimit: 1024 * 1024,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false } },
    routerOptions: { ignoreTrailingSlash: true },
  };
  let app: App;
  if (url.params.tls !== 0) {
    const host = url.listen.host;
    certificate = await ListenerCertificate.create(
      url.params.tls,
      url.params.crt,
      url.params.key,
      logger,
      host ? [host] : [],
    );
    const https = { cert: certificate.current.cert, key: certificate.current.key };
    app = Fastify({ ...options, https } as FastifyServerOptions) as unknown as App;
  } else {
    app = Fastify(options) as unknown as App;
  }

  const ctx: MasterContext = {
    url,
    manager,
    hub,
    sysinfo: new SystemInfo(),
    tcping: new Tcping(master.tcpingTimeout),
    metrics: createMetrics(manager),
    logger,
    startedAt: Date.now(),
    base,
    onKeyRegenerated: () => {
      logger.info('API key regenerated; closing every event stream');
      hub.shutdown();
    },
  };

  // Bodies: JSON whatever the Content-Type says (NodePass does not look at it); bad JSON is NodePass's message.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(bodyError('Invalid request body'), undefined);
    }
  });

  app.addHook('onRequest', async (req, reply) => {
    reply.headers(CORS_HEADERS);
    if (req.method === 'OPTIONS') return;
    if (req.routeOptions.config.auth) {
      const problem = checkApiKey(req.headers['x-api-key'], manager.key);
      if (problem) return reply.code(401).send({ error: problem });
    }
  });

  app.route({ method: 'OPTIONS', url: '*', schema: { hide: true }, handler: (_req, reply) => reply.code(200).send() });

  app.setNotFoundHandler((req, reply) => {
    const path = (req.url.split('?')[0] ?? '').replace(/\/+$/, '');
    for (const b of [base, prefix]) {
      if (path.startsWith(`${b}/`) && KNOWN.test(path.slice(b.length))) {
        const problem = checkApiKey(req.headers['x-api-key'], manager.key);
        if (problem) return reply.code(401).send({ error: problem });
        return reply.code(405).send({ error: 'Method not allowed' });
      }
    }
    if (path === `${base}/openapi.json` || path === `${prefix}/openapi.json`) {
      return reply.code(405).send({ error: 'Method not allowed' });
    }
    return reply.code(404).send({ error: 'Not found' });
  });

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) {
      logger.error(`API error: ${err.stack ?? err.message}`);
      return reply.code(status).send({ error: 'Internal server error' });
    }
    const message =
      err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? 'Request body too large'
        : err.code?.startsWith('FST_ERR_CTP') || err.validation
          ? 'Invalid request body'
          : err.message;
    return reply.code(status).send({ error: message });
  });

  await registerOpenApi(app, base, prefix);
  for (const set of [
    { base, hide: false },
    { base: prefix, hide: true },
  ]) {
    instanceRoutes(app, ctx, set);
    systemRoutes(app, ctx, set);
  }
  dashboardRoutes(app, prefix, base);

  const listenHost = url.listen.host || '0.0.0.0';
  await app.listen({ host: listenHost, port: url.listen.port });
  if (certificate) {
    const server = app.server as unknown as import('node:tls').Server;
    certificate.watch(url.params.crt, url.params.key, settings.reloadInterval, logger, (pair) =>
      server.setSecureContext({ cert: pair.cert, key: pair.key }),
    );
  }
  const port = (app.server.address() as { port: number }).port;

  const shown =
    url.listen.host === '' || url.listen.host === '0.0.0.0' || url.listen.host === '::' ? '127.0.0.1' : url.listen.host;
  const origin = `${url.params.tls ? 'https' : 'http'}://${isIP(shown) === 6 ? `[${shown}]` : shown}:${port}`;
  print(`porthole master listening on ${listenHost}:${port} (state: ${store.path})`);
  print(`API key:   ${manager.key}`);
  print(`API:       ${origin}${base}`);
  print(`Docs:      ${origin}${base}/docs`);
  print(`Dashboard: ${origin}/ (also ${origin}${prefix}/ui)`);

  // NodePass's reload tick: refresh the backup, give instances in error another start.
  const reload = setInterval(() => {
    store.backup().catch((err: Error) => logger.error(`Backup failed: ${err.message}`));
    manager.restartFailed();
  }, settings.reloadInterval);
  reload.unref();

  await manager.autostart(100);

  return {
    port,
    apiKey: () => manager.key,
    async stop() {
      clearInterval(reload);
      certificate?.stop();
      hub.stop();
      await manager.close();
      await app.close();
      await store.save();
      await store.backup();
      logger.info('Master stopped');
    },
  };
}

import { hostname as osHostname } from 'node:os';
import { Type } from 'typebox';
import { VERSION } from '../common/version.js';
import type { App, MasterContext, RouteSet } from './context.js';
import { ErrorBody, Info, InfoBody, type InfoView, TcpingQuery, TcpingResult } from './schemas.js';
import { explainInfo } from './validate.js';

const security = [{ ApiKey: [] }];

/** NodePass dashboards want a semver ≥ 1.10.0: the NodePass API level, with porthole's version as build metadata. */
export const NODEPASS_API_VERSION = '1.14.0';
export const REPORTED_VERSION = `${NODEPASS_API_VERSION}+porthole.${VERSION}`;

async function info(ctx: MasterContext): Promise<InfoView> {
  const { url, sysinfo, manager } = ctx;
  const figures = await sysinfo.figures();
  return {
    mid: manager.mid,
    alias: manager.alias,
    os: sysinfo.os,
    arch: sysinfo.arch,
    ...figures,
    ver: REPORTED_VERSION,
    name: url.listen.host || osHostname(),
    uptime: Math.floor((Date.now() - ctx.startedAt) / 1000),
    log: url.params.log,
    tls: String(url.params.tls),
    crt: url.params.crt,
    key: url.params.key,
    noc: sysinfo.cpus,
  };
}

/** `/info` (GET, POST alias), `/tcping`, `/events` (SSE) and `/metrics`. */
export function systemRoutes(app: App, ctx: MasterContext, { base, hide }: RouteSet): void {
  app.get(
    `${base}/info`,
    {
      config: { auth: true },
      schema: {
        hide,
        tags: ['master'],
        security,
        summary: 'Master and host information',
        response: { 200: Info, 401: ErrorBody },
      },
    },
    async () => info(ctx),
  );

  app.post(
    `${base}/info`,
    {
      config: { auth: true },
      attachValidation: true,
      schema: {
        hide,
        tags: ['master'],
        security,
        summary: 'Set the master alias (stored as the alias of ********)',
        body: InfoBody,
        response: { 200: Info, 400: ErrorBody, 401: ErrorBody },
      },
    },
    async (req, reply) => {
      if (req.validationError) return reply.code(400).send({ error: explainInfo(req.body) });
      await ctx.manager.setAlias(req.body.alias);
      return info(ctx);
    },
  );

  app.get(
    `${base}/tcping`,
    {
      config: { auth: true },
      schema: {
        hide,
        tags: ['master'],
        security,
        summary: 'TCP connect test (timeout 5 s, at most 10 at once)',
        querystring: TcpingQuery,
        response: { 200: TcpingResult, 400: ErrorBody, 401: ErrorBody },
      },
    },
    async (req, reply) => {
      const target = req.query.target?.trim();
      if (!target) return reply.code(400).send({ error: 'Target address required' });
      return ctx.tcping.ping(target);
    },
  );

  app.get(
    `${base}/events`,
    {
      config: { auth: true },
      schema: {
        hide,
        tags: ['events'],
        security,
        summary: 'Server-sent events: initial (one per instance), create, update, delete, log, shutdown',
        description:
          'Frames are `event: instance` with `data: {"type","time","instance","logs"}`; a `: heartbeat` comment every 15 s. A subscriber that falls too far behind is disconnected and reconnects after `retry`.',
        response: { 200: { content: { 'text/event-stream': { schema: Type.String() } } }, 401: ErrorBody },
      },
    },
    (req, reply) => {
      reply.hijack();
      ctx.hub.subscribe(reply.raw, reply.getHeaders() as Record<string, string>, ctx.manager.list());
      void req;
    },
  );

  app.get(
    `${base}/metrics`,
    {
      config: { auth: true },
      schema: {
        hide,
        tags: ['master'],
        security,
        summary: 'Prometheus metrics: instances by status, bytes, sessions',
        response: { 200: { content: { 'text/plain': { schema: Type.String() } } }, 401: ErrorBody },
      },
    },
    async (_req, reply) => {
      const text = await ctx.metrics.metrics();
      return reply.type(ctx.metrics.contentType).send(text);
    },
  );
}

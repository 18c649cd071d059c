import { Type } from 'typebox';
import type { App, MasterContext, RouteSet } from './context.js';
import { API_KEY_ID } from './manager.js';
import { CreateBody, ErrorBody, IdParams, Instance, PatchBody, PutBody } from './schemas.js';
import { explainCreate, explainPatch, explainPut, parseInstanceUrl } from './validate.js';

const security = [{ ApiKey: [] }];
const errors = { 400: ErrorBody, 401: ErrorBody };

/** `/instances` and `/instances/{id}`: list, create, read, PATCH (fields and actions), PUT url, DELETE. */
export function instanceRoutes(app: App, ctx: MasterContext, { base, hide }: RouteSet): void {
  const { manager } = ctx;
  const tags = ['instances'];

  app.get(
    `${base}/instances`,
    {
      config: { auth: true },
      schema: {
        hide,
        tags,
        security,
        summary: 'All instances, the API-key instance ******** first',
        response: { 200: Type.Array(Instance), 401: ErrorBody },
      },
    },
    async () => manager.list(),
  );

  app.post(
    `${base}/instances`,
    {
      config: { auth: true },
      attachValidation: true,
      schema: {
        hide,
        tags,
        security,
        summary: 'Create an instance (it starts at once, restart policy on)',
        body: CreateBody,
        response: { 201: Instance, ...errors },
      },
    },
    async (req, reply) => {
      if (req.validationError) return reply.code(400).send({ error: explainCreate(req.body) });
      const parsed = parseInstanceUrl(req.body.url);
      if (typeof parsed === 'string') return reply.code(400).send({ error: parsed });
      const created = await manager.create(parsed, req.body.alias ?? '');
      return reply.code(201).send(created);
    },
  );

  app.get(
    `${base}/instances/:id`,
    {
      config: { auth: true },
      schema: {
        hide,
        tags,
        security,
        summary: 'One instance',
        params: IdParams,
        response: { 200: Instance, 401: ErrorBody, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      const found = manager.get(req.params.id);
      if (!found) return reply.code(404).send({ error: 'Instance not found' });
      return found;
    },
  );

  app.patch(
    `${base}/instances/:id`,
    {
      config: { auth: true },
      attachValidation: true,
      schema: {
        hide,
        tags,
        security,
        summary: 'Change alias, restart policy or meta, and/or run an action (start, stop, restart, reset)',
        description:
          'The whole request is validated before anything changes. On ******** the action restart regenerates the API key (and ends every SSE stream); anything else on it is a no-op.',
        params: IdParams,
        body: PatchBody,
        response: { 200: Instance, ...errors, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      if (!manager.has(req.params.id)) return reply.code(404).send({ error: 'Instance not found' });
      if (req.validationError) return reply.code(400).send({ error: explainPatch(req.body) });
      if (req.params.id === API_KEY_ID) {
        if (req.body.action !== 'restart') return manager.keyView();
        const view = await manager.regenerateKey();
        reply.raw.once('finish', () => ctx.onKeyRegenerated());
        return view;
      }
      const updated = await manager.patch(req.params.id, req.body);
      if (!updated) return reply.code(404).send({ error: 'Instance not found' });
      return updated;
    },
  );

  app.put(
    `${base}/instances/:id`,
    {
      config: { auth: true },
      attachValidation: true,
      schema: {
        hide,
        tags,
        security,
        summary: 'Replace the URL: stop, update, start',
        params: IdParams,
        body: PutBody,
        response: { 200: Instance, ...errors, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (req, reply) => {
      if (req.params.id === API_KEY_ID) return reply.code(403).send({ error: 'Forbidden: API Key' });
      if (!manager.has(req.params.id)) return reply.code(404).send({ error: 'Instance not found' });
      if (req.validationError) return reply.code(400).send({ error: explainPut(req.body) });
      const parsed = parseInstanceUrl(req.body.url);
      if (typeof parsed === 'string') return reply.code(400).send({ error: parsed });
      const result = await manager.replaceUrl(req.params.id, parsed);
      if (result === undefined) return reply.code(404).send({ error: 'Instance not found' });
      if (result === 'conflict') return reply.code(409).send({ error: 'Instance URL conflict' });
      return result;
    },
  );

  app.delete(
    `${base}/instances/:id`,
    {
      config: { auth: true },
      schema: {
        hide,
        tags,
        security,
        summary: 'Stop and remove an instance',
        params: IdParams,
        response: { 204: Type.Null({ description: 'deleted' }), 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      if (req.params.id === API_KEY_ID) return reply.code(403).send({ error: 'Forbidden: API Key' });
      if (!(await manager.remove(req.params.id))) return reply.code(404).send({ error: 'Instance not found' });
      return reply.code(204).send(null);
    },
  );
}

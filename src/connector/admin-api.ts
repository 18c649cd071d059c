import { arch, platform } from 'node:os';
import { Type } from 'typebox';
import { registerApiDocs } from '../common/api-docs.js';
import { ApiError, createJsonApi, type JsonApp, readGetBody } from '../common/json-api.js';
import { VERSION } from '../common/version.js';
import { RuleError, StoredPortSchema } from '../hub/rules.js';
import type { Connector, TrafficBody } from './connector.js';
import { ListenError, NotConnectedError, PortNotOwnedError, RuleConflictError, RuleNotFoundError } from './errors.js';

export const CLIENT_BASE = '/api/client/v1.0';

const Status = { status: Type.Boolean(), error: Type.String() };
const Ok = Type.Object(Status);
const Problem = Type.Object({ status: Type.Literal(false), error: Type.String() });
const errors = { 400: Problem, 403: Problem, 404: Problem, 409: Problem, 415: Problem, 503: Problem };
const Traffic = Type.Object(
  {
    https: Type.Optional(Type.Array(Type.Unknown(), { description: 'Http objects (see the reference data types)' })),
    ports: Type.Optional(Type.Array(Type.Unknown(), { description: 'Port objects' })),
    portmaps: Type.Optional(Type.Array(Type.Unknown(), { description: 'PortMap objects' })),
  },
  { additionalProperties: false },
);

/** The connector's typed errors as HTTP statuses, always with the seed's `{status: false, error}`. */
function toApiError(err: unknown): never {
  if (err instanceof ApiError) throw err;
  if (err instanceof RuleError) throw new ApiError(400, err.message);
  if (err instanceof PortNotOwnedError) throw new ApiError(403, err.message);
  if (err instanceof RuleNotFoundError) throw new ApiError(404, err.message);
  if (err instanceof RuleConflictError || err instanceof ListenError) throw new ApiError(409, err.message);
  if (err instanceof NotConnectedError) throw new ApiError(503, err.message);
  throw err;
}

async function run<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    return toApiError(err);
  }
}

/**
 * The connector admin API of the seed on 127.0.0.1 (default port 4100): info, config, tunnel session control,
 * health, traffic rules and port allocation. JSON only; `status` and `error` on every response.
 */
export async function createConnectorApi(connector: Connector): Promise<JsonApp> {
  const app = createJsonApi(connector.logger);
  const base = CLIENT_BASE;
  await registerApiDocs(app, {
    base,
    title: 'porthole connector admin API',
    version: VERSION,
    description:
      'Packetriot-compatible client API of the porthole connector: tunnel session, traffic rules (https sites, TCP ports, port mappings) and TCP port allocation. Listens on loopback only.',
    tags: [
      { name: 'client', description: 'status and configuration' },
      { name: 'tunnel', description: 'tunnel session' },
      { name: 'traffic', description: 'traffic rules' },
      { name: 'ports', description: 'TCP port allocation' },
    ],
  });
  const { keeper } = connector;

  app.get(
    `${base}/info`,
    {
      schema: {
        tags: ['client'],
        summary: 'Client version and whether a tunnel session is established',
        response: {
          200: Type.Object({
            ...Status,
            version: Type.String(),
            runtimeVersion: Type.String(),
            isUpdated: Type.Boolean(),
            isTunConnected: Type.Boolean(),
            tunnelId: Type.String(),
            state: Type.String(),
            lastError: Type.String(),
            rtt: Type.Number(),
            traffic: Type.Object(
              {
                tcpStreams: Type.Integer(),
                udpStreams: Type.Integer(),
                httpStreams: Type.Integer({ description: 'HTTP/HTTPS site connections' }),
                bytesIn: Type.Number({ description: 'bytes from the hub to destinations since start' }),
                bytesOut: Type.Number({ description: 'bytes from destinations to the hub since start' }),
              },
              { description: 'streams served since the connector started; site connections count when they close' },
            ),
          }),
        },
      },
    },
    async () => ({
      status: true,
      error: '',
      version: `v${VERSION}`,
      runtimeVersion: `v${VERSION}`,
      isUpdated: false,
      isTunConnected: keeper.connected,
      tunnelId: connector.config.tunnelId,
      state: keeper.state,
      lastError: keeper.lastError,
      rtt: connector.session?.rtt ?? -1,
      traffic: { ...connector.counters },
    }),
  );

  app.get(
    `${base}/config`,
    {
      schema: {
        tags: ['client'],
        summary: 'Client and host attributes and every traffic rule',
        response: {
          200: Type.Object({
            ...Status,
            version: Type.String(),
            os: Type.String(),
            arch: Type.String(),
            hub: Type.String(),
            tunnelId: Type.String(),
            https: Type.Array(Type.Unknown()),
            ports: Type.Array(StoredPortSchema),
            portmaps: Type.Array(Type.Unknown()),
          }),
        },
      },
    },
    async () => ({
      status: true,
      error: '',
      version: `v${VERSION}`,
      os: platform(),
      arch: arch(),
      hub: connector.config.hub,
      tunnelId: connector.config.tunnelId,
      https: connector.config.https,
      ports: connector.config.ports,
      portmaps: connector.config.portmaps,
    }),
  );

  app.get(
    `${base}/tun/start`,
    {
      schema: {
        tags: ['tunnel'],
        summary: 'Start session maintenance if it is not running (asynchronous: poll info)',
        response: { 200: Type.Object({ ...Status, isTunConnected: Type.Boolean() }) },
      },
    },
    async () => {
      const isTunConnected = keeper.connected;
      keeper.start();
      return { status: true, isTunConnected, error: '' };
    },
  );
  app.get(
    `${base}/tun/shutdown`,
    { schema: { tags: ['tunnel'], summary: 'Shut the tunnel session down', response: { 200: Ok } } },
    async () => {
      keeper.stop();
      return { status: true, error: '' };
    },
  );
  app.get(
    `${base}/tun/restart`,
    {
      schema: { tags: ['tunnel'], summary: 'Shutdown, then start (asynchronous: poll info)', response: { 200: Ok } },
    },
    async () => {
      keeper.stop();
      keeper.start();
      return { status: true, error: '' };
    },
  );

  app.get(
    `${base}/health`,
    {
      schema: {
        tags: ['client'],
        summary: 'Reachability of each rule’s upstream, naming the rule beside its flowID (portmaps not probed)',
        response: {
          200: Type.Object({
            ...Status,
            services: Type.Array(
              Type.Object({
                flowID: Type.Integer(),
                available: Type.Boolean(),
                type: Type.String(),
                domain: Type.Optional(Type.String()),
                port: Type.Optional(Type.Integer()),
                destination: Type.String(),
                error: Type.Optional(Type.String()),
                certificate: Type.Optional(
                  Type.Object(
                    {
                      source: Type.Union([
                        Type.Literal('files'),
                        Type.Literal('letsencrypt'),
                        Type.Literal('self-signed'),
                      ]),
                      state: Type.Optional(
                        Type.Union(
                          [
                            Type.Literal('valid'),
                            Type.Literal('pending'),
                            Type.Literal('failed'),
                            Type.Literal('refused'),
                          ],
                          {
                            description:
                              "Let's Encrypt: valid (served), pending (first order running), failed (retrying; self-signed meanwhile), refused (the hub routes the domain elsewhere: nothing ordered)",
                          },
                        ),
                      ),
                      notAfter: Type.Optional(Type.String()),
                      next: Type.Optional(Type.String({ description: 'next renewal or retry (ISO 8601)' })),
                      error: Type.Optional(Type.String({ description: 'last failure, until an order succeeds' })),
                    },
                    { description: 'a secure site terminated here: where its certificate comes from' },
                  ),
                ),
              }),
            ),
          }),
        },
      },
    },
    async () => ({ status: true, error: '', services: await connector.health() }),
  );

  const trafficSchema = (summary: string) => ({
    schema: { tags: ['traffic'], summary, body: Traffic, response: { 200: Ok, ...errors } },
  });
  app.post(`${base}/traffic/create`, trafficSchema('Create traffic rules (all or nothing)'), async (req) => {
    await run(() => connector.create(req.body as TrafficBody));
    return { status: true, error: '' };
  });
  app.post(
    `${base}/traffic/update`,
    trafficSchema('Replace rules found by domain / port / local port (all or nothing)'),
    async (req) => {
      await run(() => connector.update(req.body as TrafficBody));
      return { status: true, error: '' };
    },
  );
  const deleteHandler = async (body: unknown) => {
    if (body === undefined) throw new ApiError(400, 'the body must list the https, ports and/or portmaps to delete');
    await run(() => connector.delete(body as TrafficBody));
    return { status: true, error: '' };
  };
  app.post(
    `${base}/traffic/delete`,
    trafficSchema('Delete sites and port mappings, reset port rules (ports stay allocated)'),
    async (req) => deleteHandler(req.body),
  );
  app.get(
    `${base}/traffic/delete`,
    {
      schema: {
        tags: ['traffic'],
        summary: 'As POST traffic/delete, with the JSON body on a GET (as the seed documents it)',
        response: { 200: Ok, ...errors },
      },
    },
    async (req) => deleteHandler(await readGetBody(req)),
  );

  app.get(
    `${base}/ports/allocate`,
    {
      schema: {
        tags: ['ports'],
        summary: 'Allocate a TCP port on the hub for this tunnel; returns it',
        response: { 200: Type.Object({ ...Status, port: Type.Integer(), message: Type.String() }), ...errors },
      },
    },
    async () => {
      const { port, message } = await run(() => connector.allocate());
      return { status: true, port, message, error: '' };
    },
  );
  app.post(
    `${base}/ports/release`,
    {
      schema: {
        tags: ['ports'],
        summary: 'Release an allocated port back to the hub (its forwarding rule goes with it)',
        body: Type.Object({ port: Type.Integer({ minimum: 1, maximum: 65535 }) }),
        response: { 200: Ok, ...errors },
      },
    },
    async (req) => {
      await run(() => connector.release(req.body.port));
      return { status: true, error: '' };
    },
  );
  app.get(
    `${base}/ports/list`,
    {
      schema: {
        tags: ['ports'],
        summary: 'Allocated ports with their forwarding and firewall rules',
        response: { 200: Type.Array(StoredPortSchema) },
      },
    },
    async () => connector.config.ports,
  );
  return app;
}

import { randomBytes } from 'node:crypto';
import { type TSchema, Type } from 'typebox';
import { registerApiDocs } from '../common/api-docs.js';
import { ApiError, createJsonApi, type JsonApp } from '../common/json-api.js';
import { VERSION } from '../common/version.js';
import { checkDomainPatterns, DomainPatternError } from './domain-policy.js';
import type { Hub } from './hub.js';
import { TunnelOfflineError } from './hub.js';
import { PortAllocationError } from './port-allocator.js';
import { sameHex } from './protocol.js';
import { NotFoundError } from './registry.js';
import { checkHttp, checkPort, checkPortMap, RuleError, StoredPortSchema } from './rules.js';
import { DomainNotFoundError, normalizeDomain } from './sites.js';
import type { StoredTunnel } from './store.js';

export const ADMIN_BASE = '/api/admin/v1.0';
const SESSION_COOKIE = 'porthole_hub_session';
const SESSION_TTL = 24 * 3600 * 1000;

const Status = { status: Type.Boolean(), error: Type.Optional(Type.String()), message: Type.Optional(Type.String()) };
const Ok = Type.Object(Status);
const Problem = Type.Object({ status: Type.Literal(false), error: Type.String() });
const errors = { 400: Problem, 401: Problem, 403: Problem, 404: Problem, 409: Problem, 415: Problem };
const TunId = Type.Object({ tunID: Type.String({ pattern: '^[0-9a-f]{16}$' }) });
const IdParams = Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{16}$' }) });

const TokenView = Type.Object({
  id: Type.String(),
  token: Type.String(),
  description: Type.String(),
  active: Type.Boolean(),
  created: Type.String(),
  uses: Type.Integer(),
  domains: Type.Optional(
    Type.Array(Type.String(), { description: 'domains its tunnels may claim (host or *.suffix); absent = any' }),
  ),
});
const DomainPatterns = Type.Array(Type.String({ minLength: 1, maxLength: 255 }), {
  maxItems: 1000,
  description: 'domains tunnels registered with this token may claim: host names or *.suffix (any depth); [] = any',
});
const DomainView = Type.Object({
  domain: Type.String(),
  tunID: Type.String(),
  tunnelName: Type.String(),
  online: Type.Boolean({ description: 'its tunnel is connected and serving it' }),
  claimed: Type.String({ description: 'when the tunnel first claimed it (ISO 8601)' }),
});
const TunnelView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  hostname: Type.String(),
  state: Type.Integer({ description: '1 init, 2 online, 3 offline, 4 shutdown, 5 deleted' }),
  created: Type.String(),
  lastActive: Type.String(),
  uptime: Type.Integer(),
  bandwidth: Type.Object({ daily: Type.Number(), monthly: Type.Number() }),
  address: Type.String(),
  version: Type.String(),
  os: Type.String(),
  arch: Type.String(),
  https: Type.Array(
    Type.Object({
      domain: Type.String(),
      state: Type.Union([Type.Literal('routed'), Type.Literal('reserved'), Type.Literal('refused')], {
        description: 'routed here; reserved for this tunnel (offline, or not served now); claimed and refused',
      }),
      error: Type.Optional(Type.String({ description: 'why the claim was refused' })),
    }),
  ),
  ports: Type.Array(StoredPortSchema),
  rtt: Type.Number({ description: 'last keepalive round trip (ms), -1 offline' }),
  streams: Type.Integer(),
});

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k) out.set(k, v.join('='));
  }
  return out;
}

/** Maps the hub's typed errors to statuses. */
function fail(err: unknown): never {
  if (err instanceof ApiError) throw err;
  if (err instanceof RuleError) throw new ApiError(400, err.message);
  if (err instanceof NotFoundError) {
    throw new ApiError(/not allocated to tunnel/.test(err.message) ? 403 : 404, err.message);
  }
  if (err instanceof TunnelOfflineError) throw new ApiError(409, err.message);
  if (err instanceof PortAllocationError) throw new ApiError(409, err.message);
  if (err instanceof DomainPatternError) throw new ApiError(400, err.message);
  if (err instanceof DomainNotFoundError) throw new ApiError(404, err.message);
  throw err;
}

/**
 * The hub admin API (Spokes-like, under /api/admin/v1.0): session by admin key, registration tokens, tunnels, ports
 * and per-tunnel traffic rules, with an OpenAPI document and local Swagger UI. JSON only; `{status, error}` always.
 */
export async function createAdminApi(hub: Hub): Promise<JsonApp> {
  const app = createJsonApi(hub.logger);
  const logins = new Map<string, number>();
  const { registry } = hub;
  const base = ADMIN_BASE;
  const security: Array<Record<string, string[]>> = [{ ApiKey: [] }, { Session: [] }];

  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0] ?? '';
    if (!path.startsWith(base) || path === `${base}/auth` || path.startsWith(`${base}/docs`)) return;
    if (path === `${base}/openapi.json`) return;
    const header = req.headers['x-api-key'];
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const key = typeof header === 'string' ? header : bearer;
    if (key !== undefined && sameHex(key, registry.adminKey)) return;
    const session = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    const expires = session ? logins.get(session) : undefined;
    if (expires !== undefined && expires > Date.now()) return;
    throw new ApiError(401, 'unauthorized: log in with POST auth {key}, or send the X-API-Key header');
  });

  await registerApiDocs(app, {
    base,
    title: 'porthole hub admin API',
    version: VERSION,
    description:
      'Spokes-like admin API of the porthole hub: registration tokens, tunnels, TCP ports and traffic rules. Authenticate with `X-API-Key: <admin key>` or a session cookie from `POST auth`.',
    securitySchemes: {
      ApiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      Session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE },
    },
    tags: [
      { name: 'session', description: 'admin session and hub information' },
      { name: 'tokens', description: 'registration tokens' },
      { name: 'tunnels', description: 'tunnels (connectors)' },
      { name: 'ports', description: 'TCP port allocation' },
      { name: 'domains', description: 'domains reserved for tunnels' },
      { name: 'traffic', description: 'traffic rules of one tunnel' },
    ],
  });

  const tunnel = (id: string): StoredTunnel => {
    try {
      return registry.tunnel(id);
    } catch (err) {
      return fail(err);
    }
  };
  const save = () => hub.store.save();

  // --- session --------------------------------------------------------------------------------------------------
  app.post(
    `${base}/auth`,
    {
      schema: {
        tags: ['session'],
        summary: 'Log in with the admin key; sets a session cookie valid 24 h',
        body: Type.Object({ key: Type.String() }),
        response: { 200: Ok, ...errors },
      },
    },
    async (req, reply) => {
      if (!sameHex(req.body.key, registry.adminKey)) throw new ApiError(401, 'wrong admin key');
      const token = randomBytes(24).toString('hex');
      logins.set(token, Date.now() + SESSION_TTL);
      for (const [t, exp] of logins) if (exp < Date.now()) logins.delete(t);
      reply.header('set-cookie', `${SESSION_COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=86400`);
      return { status: true, error: '', message: 'logged in' };
    },
  );
  app.get(
    `${base}/logout`,
    { schema: { tags: ['session'], security, summary: 'End the cookie session', response: { 200: Ok, 401: Problem } } },
    async (req, reply) => {
      const session = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
      if (session) logins.delete(session);
      reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; Max-Age=0`);
      return { status: true, error: '' };
    },
  );
  app.get(
    `${base}/ping`,
    { schema: { tags: ['session'], security, summary: 'Check the session', response: { 200: Ok, 401: Problem } } },
    async () => ({ status: true, error: '', message: 'pong' }),
  );
  app.get(
    `${base}/info`,
    {
      schema: {
        tags: ['session'],
        security,
        summary: 'Hub version, uptime and tunnel counts',
        response: {
          200: Type.Object({
            ...Status,
            version: Type.String(),
            uptime: Type.Integer(),
            activeTuns: Type.Integer(),
            onlineTuns: Type.Integer(),
            maxTuns: Type.Integer(),
            portRange: Type.Object({ begin: Type.Integer(), end: Type.Integer() }),
            fingerprint: Type.String(),
          }),
          401: Problem,
        },
      },
    },
    async () => ({
      status: true,
      error: '',
      version: VERSION,
      uptime: Math.floor((Date.now() - hub.startedAt) / 1000),
      activeTuns: [...registry.tunnels.values()].filter((t) => !t.shutdown).length,
      onlineTuns: hub.sessions.size,
      maxTuns: hub.config.maxTunnels,
      portRange: hub.config.portRange,
      fingerprint: hub.fingerprint ?? '',
    }),
  );

  // --- tokens ---------------------------------------------------------------------------------------------------
  app.get(
    `${base}/token/registration/list`,
    {
      schema: {
        tags: ['tokens'],
        security,
        summary: 'Registration tokens',
        response: { 200: Type.Object({ ...Status, tokens: Type.Array(TokenView) }), 401: Problem },
      },
    },
    async () => ({ status: true, error: '', tokens: [...registry.tokens.values()] }),
  );
  app.post(
    `${base}/token/registration/create`,
    {
      schema: {
        tags: ['tokens'],
        security,
        summary: 'Create a registration token',
        body: Type.Object({
          description: Type.String({ maxLength: 1024 }),
          active: Type.Optional(Type.Boolean()),
          domains: Type.Optional(DomainPatterns),
        }),
        response: { 200: Type.Object({ ...Status, token: TokenView }), ...errors },
      },
    },
    async (req) => {
      let domains: string[] | undefined;
      try {
        domains = req.body.domains ? checkDomainPatterns(req.body.domains) : undefined;
      } catch (err) {
        fail(err);
      }
      const token = registry.createToken(req.body.description, req.body.active ?? true, undefined, domains);
      await save();
      return { status: true, error: '', token };
    },
  );
  app.post(
    `${base}/token/registration/edit`,
    {
      schema: {
        tags: ['tokens'],
        security,
        summary: 'Change the description, the active flag or the allowed domains of a token',
        description:
          'New domain restrictions apply to the next claims of its tunnels; domains they already hold stay reserved.',
        body: Type.Object({
          tokenID: Type.String({ minLength: 1 }),
          description: Type.Optional(Type.String({ maxLength: 1024 })),
          active: Type.Optional(Type.Boolean()),
          domains: Type.Optional(DomainPatterns),
        }),
        response: { 200: Type.Object({ ...Status, token: TokenView }), ...errors },
      },
    },
    async (req) => {
      let token: ReturnType<typeof registry.token>;
      let domains: string[] | undefined;
      try {
        token = registry.token(req.body.tokenID);
        // Checked before anything changes: a bad pattern leaves the token as it was.
        domains = req.body.domains ? checkDomainPatterns(req.body.domains) : undefined;
      } catch (err) {
        fail(err);
      }
      if (req.body.description !== undefined) token.description = req.body.description;
      if (req.body.active !== undefined) token.active = req.body.active;
      if (domains !== undefined) {
        if (domains.length > 0) token.domains = domains;
        else delete token.domains;
      }
      await save();
      return { status: true, error: '', token };
    },
  );
  app.post(
    `${base}/token/registration/delete`,
    {
      schema: {
        tags: ['tokens'],
        security,
        summary: 'Delete a registration token (tunnels registered with it keep working)',
        body: Type.Object({ tokenID: Type.String({ minLength: 1 }) }),
        response: { 200: Ok, ...errors },
      },
    },
    async (req) => {
      try {
        registry.token(req.body.tokenID);
      } catch (err) {
        fail(err);
      }
      registry.tokens.delete(req.body.tokenID);
      await save();
      return { status: true, error: '' };
    },
  );

  // --- tunnels --------------------------------------------------------------------------------------------------
  const listSchema = (summary: string) => ({
    schema: {
      tags: ['tunnels'],
      security,
      summary,
      response: { 200: Type.Object({ ...Status, tunnels: Type.Array(TunnelView) }), 401: Problem },
    },
  });
  app.get(`${base}/tunnel/list`, listSchema('Every tunnel'), async () => ({
    status: true,
    error: '',
    tunnels: [...registry.tunnels.values()].map((t) => hub.tunnelView(t)),
  }));
  app.get(`${base}/tunnel/list/online`, listSchema('Tunnels with a live session'), async () => ({
    status: true,
    error: '',
    tunnels: [...hub.sessions.values()].map((s) => hub.tunnelView(s.tunnel)),
  }));
  app.get(
    `${base}/tunnel/info/:id`,
    {
      schema: {
        tags: ['tunnels'],
        security,
        summary: 'One tunnel',
        params: IdParams,
        response: { 200: Type.Object({ ...Status, tunnel: TunnelView }), ...errors },
      },
    },
    async (req) => ({ status: true, error: '', tunnel: hub.tunnelView(tunnel(req.params.id)) }),
  );
  app.get(
    `${base}/tunnel/config/:id`,
    {
      schema: {
        tags: ['tunnels'],
        security,
        summary: 'Traffic rules of a tunnel as the hub holds them',
        params: IdParams,
        response: {
          200: Type.Object({
            ...Status,
            https: Type.Array(Type.Unknown()),
            ports: Type.Array(StoredPortSchema),
          }),
          ...errors,
        },
      },
    },
    async (req) => {
      const t = tunnel(req.params.id);
      return { status: true, error: '', https: hub.siteClaimsOf(t), ports: t.ports };
    },
  );
  app.get(
    `${base}/tunnel/shutdown/:id`,
    {
      schema: {
        tags: ['tunnels'],
        security,
        summary: 'End the session of a tunnel and refuse new ones (the connector must be configured again)',
        params: IdParams,
        response: { 200: Ok, ...errors },
      },
    },
    async (req) => {
      await hub.shutdown(tunnel(req.params.id));
      return { status: true, error: '', message: 'tunnel shut down' };
    },
  );

  // --- ports ----------------------------------------------------------------------------------------------------
  app.get(
    `${base}/port/list`,
    {
      schema: {
        tags: ['ports'],
        security,
        summary: 'Allocated ports and their tunnels',
        response: { 200: Type.Array(Type.Object({ port: Type.Integer(), tunID: Type.String() })), 401: Problem },
      },
    },
    async () => registry.ports.list(),
  );
  app.get(
    `${base}/port/range`,
    {
      schema: {
        tags: ['ports'],
        security,
        summary: 'The range ports are allocated from',
        response: { 200: Type.Object({ ...Status, begin: Type.Integer(), end: Type.Integer() }), 401: Problem },
      },
    },
    async () => ({ status: true, error: '', ...hub.config.portRange }),
  );

  // --- domains --------------------------------------------------------------------------------------------------
  app.get(
    `${base}/domain/list`,
    {
      schema: {
        tags: ['domains'],
        security,
        summary: 'Domains reserved for tunnels (kept while their tunnel is offline and across hub restarts)',
        response: { 200: Type.Object({ ...Status, domains: Type.Array(DomainView) }), 401: Problem },
      },
    },
    async () => ({
      status: true,
      error: '',
      domains: hub.sites.reservations().map((d) => ({
        domain: d.domain,
        tunID: d.tunnelId,
        tunnelName: registry.tunnels.get(d.tunnelId)?.name ?? '',
        online: hub.sites.lookup(d.domain)?.tunnelId === d.tunnelId,
        claimed: d.claimed,
      })),
    }),
  );
  app.post(
    `${base}/domain/release`,
    {
      schema: {
        tags: ['domains'],
        security,
        summary: 'End the reservation of a domain so another tunnel can claim it',
        description:
          'Refused (409) while the owning tunnel is online and serving it: remove the site from that tunnel instead (tunnel/traffic/http/remove). An online tunnel whose sites name the domain (it was refused it) gets it at once.',
        body: Type.Object({ domain: Type.String({ minLength: 1, maxLength: 253 }) }),
        response: { 200: Type.Object({ ...Status, tunID: Type.String() }), ...errors },
      },
    },
    async (req) => {
      const name = normalizeDomain(req.body.domain);
      const owner = hub.sites.reservations().find((d) => d.domain === name);
      if (owner && hub.sites.lookup(owner.domain)?.tunnelId === owner.tunnelId) {
        throw new ApiError(
          409,
          `domain ${owner.domain} is served by tunnel ${owner.tunnelId}, which is online: remove the site from it instead`,
        );
      }
      let released: ReturnType<typeof hub.sites.releaseDomain>;
      try {
        released = hub.sites.releaseDomain(req.body.domain);
      } catch (err) {
        fail(err);
      }
      await save();
      hub.logger.info(`domain ${released.domain} released from tunnel ${released.tunnelId} by the admin`);
      hub.offerReleased(released.domain);
      return { status: true, error: '', message: `domain ${released.domain} released`, tunID: released.tunnelId };
    },
  );

  // --- traffic --------------------------------------------------------------------------------------------------
  const traffic = <B extends TSchema>(summary: string, body: B, extra = {}) => ({
    schema: {
      tags: ['traffic'],
      security,
      summary,
      params: TunId,
      body,
      response: { 200: Type.Object({ ...Status, ...extra }), ...errors },
    },
  });
  app.get(
    `${base}/tunnel/traffic/tcp/allocate/:tunID`,
    {
      schema: {
        tags: ['traffic'],
        security,
        summary: 'Allocate a TCP port to the tunnel',
        params: TunId,
        response: { 200: Type.Object({ ...Status, port: Type.Integer() }), ...errors },
      },
    },
    async (req) => {
      const t = tunnel(req.params.tunID);
      try {
        const port = await hub.allocate(t);
        // An online connector saves the new port in its config at once (an offline one learns it at its next welcome).
        hub.sessions.get(t.id)?.send({ type: 'ports', ports: t.ports });
        return { status: true, error: '', message: 'new port allocated', port };
      } catch (err) {
        return fail(err);
      }
    },
  );
  app.post(
    `${base}/tunnel/traffic/tcp/release/:tunID`,
    traffic('Release a port of the tunnel (its forwarding stops)', Type.Object({ port: Type.Integer() })),
    async (req) => {
      const t = tunnel(req.params.tunID);
      try {
        await hub.release(t, req.body.port);
        hub.sessions.get(t.id)?.send({ type: 'ports', ports: t.ports });
      } catch (err) {
        fail(err);
      }
      return { status: true, error: '', message: `port ${req.body.port} released` };
    },
  );
  app.post(
    `${base}/tunnel/traffic/tcp/update/:tunID`,
    traffic(
      'Set forwarding rules of ports the tunnel holds (tunnel must be online)',
      Type.Object({ ports: Type.Array(Type.Unknown(), { minItems: 1 }) }),
    ),
    async (req) => {
      const t = tunnel(req.params.tunID);
      try {
        const rules = req.body.ports.map(checkPort);
        for (const r of rules) registry.portOf(t, r.port);
        await hub.updatePorts(t, rules);
      } catch (err) {
        fail(err);
      }
      return { status: true, error: '' };
    },
  );
  app.post(
    `${base}/tunnel/traffic/tcp/reset/:tunID`,
    traffic(
      'Clear the forwarding rules of ports (they stay allocated; tunnel must be online)',
      Type.Object({ ports: Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { minItems: 1 }) }),
    ),
    async (req) => {
      const t = tunnel(req.params.tunID);
      try {
        const rules = req.body.ports.map((port) => ({ ...registry.portOf(t, port), destination: '', dstPort: 0 }));
        await hub.updatePorts(t, rules);
      } catch (err) {
        fail(err);
      }
      return { status: true, error: '' };
    },
  );
  app.post(
    `${base}/tunnel/traffic/portmap/update/:tunID`,
    traffic(
      "Create or replace port mappings in the connector's config (tunnel must be online)",
      Type.Object({ portmaps: Type.Array(Type.Unknown(), { minItems: 1 }) }),
    ),
    async (req) => {
      const t = tunnel(req.params.tunID);
      try {
        const maps = req.body.portmaps.map(checkPortMap).map(({ http: _http, ...m }) => m);
        await hub.updatePortmaps(t, maps, []);
      } catch (err) {
        fail(err);
      }
      return { status: true, error: '' };
    },
  );
  app.post(
    `${base}/tunnel/traffic/portmap/remove/:tunID`,
    traffic(
      "Remove port mappings from the connector's config by listen port (tunnel must be online)",
      Type.Object({ listenPorts: Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { minItems: 1 }) }),
    ),
    async (req) => {
      const t = tunnel(req.params.tunID);
      try {
        await hub.updatePortmaps(t, [], req.body.listenPorts);
      } catch (err) {
        fail(err);
      }
      return { status: true, error: '' };
    },
  );
  app.post(
    `${base}/tunnel/traffic/http/update/:tunID`,
    traffic(
      "Create or replace HTTP/HTTPS sites in the connector's config (tunnel must be online)",
      Type.Object({ https: Type.Array(Type.Unknown(), { minItems: 1 }) }),
    ),
    async (req) => {
      const t = tunnel(req.params.tunID);
      try {
        const sites = req.body.https.map(checkHttp);
        // Refused here with its reason rather than accepted by the connector and then refused at its claim.
        for (const site of sites) {
          const problem = hub.sites.check(t.id, site.domain, registry.domainPatterns(t));
          if (problem) throw new ApiError(problem.forbidden ? 403 : 409, problem.error);
        }
        await hub.updateSites(t, sites, []);
      } catch (err) {
        fail(err);
      }
      return { status: true, error: '' };
    },
  );
  app.post(
    `${base}/tunnel/traffic/http/remove/:tunID`,
    traffic(
      "Remove HTTP/HTTPS sites from the connector's config by domain (tunnel must be online)",
      Type.Object({ domains: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }) }),
    ),
    async (req) => {
      const t = tunnel(req.params.tunID);
      try {
        await hub.updateSites(t, [], req.body.domains);
      } catch (err) {
        fail(err);
      }
      return { status: true, error: '' };
    },
  );
  return app;
}

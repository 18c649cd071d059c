import { type Static, Type } from 'typebox';

/**
 * Every schema of the master API, defined once: Fastify validates requests with them, serializes responses with
 * them (field order as NodePass serializes it), and @fastify/swagger turns them into the OpenAPI document.
 */

export const ErrorBody = Type.Object({ error: Type.String() }, { description: 'Every error response' });

const Str256 = Type.String({ maxLength: 256 });
export const UUID_V4 = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$';

export const Peer = Type.Object({
  sid: Type.String({ description: 'service id of the remote end (UUID v4, or "")' }),
  type: Type.String({ description: '"0" single-end, "1" NAT traversal, "2" tunnel forwarding (or "")' }),
  alias: Type.String(),
});

export const Meta = Type.Object({ peer: Peer, tags: Type.Record(Type.String(), Type.String()) });

export const Instance = Type.Object({
  id: Type.String({ description: '8 hex characters; "********" is the API-key instance' }),
  alias: Type.String(),
  type: Type.Union([Type.Literal('client'), Type.Literal('server'), Type.Literal('')]),
  status: Type.Union([Type.Literal('running'), Type.Literal('stopped'), Type.Literal('error'), Type.Literal('')]),
  url: Type.String({ description: 'the submitted URL with the master log/tls settings added (API key for ********)' }),
  config: Type.String({ description: 'url with every default filled in (master ID for ********)' }),
  restart: Type.Boolean({ description: 'start with the master, restart after a crash' }),
  meta: Meta,
  mode: Type.Integer(),
  ping: Type.Integer({ description: 'ms' }),
  pool: Type.Integer(),
  tcps: Type.Integer({ description: 'open TCP sessions' }),
  udps: Type.Integer({ description: 'open UDP sessions' }),
  tcprx: Type.Integer({ description: 'cumulative bytes, survive restarts until reset' }),
  tcptx: Type.Integer(),
  udprx: Type.Integer(),
  udptx: Type.Integer(),
});
export type InstanceView = Static<typeof Instance>;
export type PeerValue = Static<typeof Peer>;

export const CreateBody = Type.Object({
  alias: Type.Optional(Str256),
  url: Type.String({ minLength: 1, description: 'client:// or server:// URL' }),
});

export const PutBody = Type.Object({ url: Type.String({ minLength: 1 }) });

export const ACTIONS = ['start', 'stop', 'restart', 'reset'] as const;
export type Action = (typeof ACTIONS)[number];

export const PatchBody = Type.Object({
  alias: Type.Optional(Str256),
  action: Type.Optional(Type.Union(ACTIONS.map((a) => Type.Literal(a)))),
  restart: Type.Optional(Type.Boolean()),
  meta: Type.Optional(
    Type.Object({
      peer: Type.Optional(
        Type.Object({
          sid: Type.Optional(Type.Union([Type.Literal(''), Type.String({ pattern: UUID_V4 })])),
          type: Type.Optional(Type.Union([Type.Literal(''), Type.Literal('0'), Type.Literal('1'), Type.Literal('2')])),
          alias: Type.Optional(Str256),
        }),
      ),
      tags: Type.Optional(Type.Record(Type.String(), Str256, { propertyNames: { maxLength: 256 } })),
    }),
  ),
});
export type PatchRequest = Static<typeof PatchBody>;

export const IdParams = Type.Object({ id: Type.String() });

export const Info = Type.Object({
  mid: Type.String({ description: 'master ID (16 hex)' }),
  alias: Type.String(),
  os: Type.String(),
  arch: Type.String(),
  cpu: Type.Integer({ description: 'CPU use in %, -1 when unknown (not Linux)' }),
  mem_total: Type.Integer(),
  mem_used: Type.Integer(),
  swap_total: Type.Integer(),
  swap_used: Type.Integer(),
  netrx: Type.Integer(),
  nettx: Type.Integer(),
  diskr: Type.Integer(),
  diskw: Type.Integer(),
  sysup: Type.Integer({ description: 'system uptime, s' }),
  ver: Type.String({ description: 'NodePass-compatible semver (porthole version in the build metadata)' }),
  name: Type.String({ description: 'host name of the master URL' }),
  uptime: Type.Integer({ description: 'master uptime, s' }),
  log: Type.String(),
  tls: Type.String(),
  crt: Type.String(),
  key: Type.String(),
  noc: Type.Integer({ description: 'number of CPUs' }),
});
export type InfoView = Static<typeof Info>;

export const InfoBody = Type.Object({ alias: Str256 });

export const TcpingQuery = Type.Object({ target: Type.Optional(Type.String({ description: 'host:port' })) });
export const TcpingResult = Type.Object({
  target: Type.String(),
  connected: Type.Boolean(),
  latency: Type.Integer({ description: 'ms' }),
  error: Type.Union([Type.String(), Type.Null()]),
});
export type TcpingView = Static<typeof TcpingResult>;

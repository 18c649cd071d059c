import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { type Static, Type } from 'typebox';
import { Value } from 'typebox/value';
import { writeAtomic } from '../common/atomic-write.js';
import { ConfigError } from '../config/errors.js';
import { HttpSchema, StoredPortSchema } from '../hub/rules.js';

const StoredPortMap = Type.Object({
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  dstPort: Type.Integer({ minimum: 1, maximum: 65535 }),
  destination: Type.String(),
  transport: Type.Union([Type.Literal('tcp'), Type.Literal('udp')]),
  label: Type.String(),
  http: Type.Optional(Type.Boolean()),
});

/** Let's Encrypt (or any ACME CA) for `useLetsEnc` sites. */
const AcmeSettings = Type.Object(
  {
    /** The ACME directory (default Let's Encrypt production; $PORTHOLE_ACME_DIRECTORY overrides). */
    directoryUrl: Type.Optional(Type.String({ pattern: '^https?://' })),
    /** Contact for the ACME account (expiry notices); optional. */
    email: Type.Optional(Type.String({ pattern: '^[^@\\s]+@[^@\\s]+$' })),
  },
  { additionalProperties: false },
);

export const ConnectorConfigSchema = Type.Object({
  /** The hub's tunnel listener, host:port. */
  hub: Type.String({ minLength: 3 }),
  /** false only for a hub started with --tls 0. */
  tls: Type.Boolean(),
  /** The hub certificate's sha256 fingerprint seen at `configure` (pinned), unless `ca` is set. */
  fingerprint: Type.String(),
  /** A CA certificate file (PEM) to verify the hub with instead of the pinned fingerprint. */
  ca: Type.String(),
  /** TLS server name to verify with `ca` (default: the hub host). */
  serverName: Type.String(),
  tunnelId: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  secret: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  name: Type.String(),
  apiPort: Type.Integer({ minimum: 0, maximum: 65535 }),
  reconnect: Type.Object({
    initialDelay: Type.Integer({ minimum: 10 }),
    maxDelay: Type.Integer({ minimum: 10 }),
    /** Consecutive failed attempts before giving up; 0 = never give up. */
    maxRetries: Type.Integer({ minimum: 0 }),
  }),
  https: Type.Array(HttpSchema),
  ports: Type.Array(StoredPortSchema),
  portmaps: Type.Array(StoredPortMap),
  acme: Type.Optional(AcmeSettings),
});

export type ConnectorConfig = Static<typeof ConnectorConfigSchema>;

export const RECONNECT_DEFAULTS = { initialDelay: 1000, maxDelay: 60_000, maxRetries: 0 };
export const DEFAULT_API_PORT = 4100;

/** Where the ACME account and the Let's Encrypt certificates of the connector configured in `path` are cached. */
export function acmeStateDir(path: string): string {
  return join(dirname(path), 'acme');
}

/** --config PATH, else $PORTHOLE_CONNECTOR_CONFIG, else ~/.porthole/connector.json. */
export function configPath(flag: string | undefined): string {
  return resolve(flag ?? process.env.PORTHOLE_CONNECTOR_CONFIG ?? join(homedir(), '.porthole', 'connector.json'));
}

export async function loadConfig(path: string): Promise<ConnectorConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError(
        `no connector config at ${path}: run "porthole connector configure --hub HOST:PORT --token TOKEN"`,
        'config',
      );
    }
    throw new ConfigError(`connector config ${path}: ${(err as Error).message}`, 'config');
  }
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`connector config ${path} is not JSON: ${(err as Error).message}`, 'config');
  }
  // Older or hand-written files may leave out settings that have defaults.
  const filled = {
    tls: true,
    fingerprint: '',
    ca: '',
    serverName: '',
    name: '',
    apiPort: DEFAULT_API_PORT,
    https: [],
    ports: [],
    portmaps: [],
    ...data,
    reconnect: { ...RECONNECT_DEFAULTS, ...((data.reconnect as object | undefined) ?? {}) },
  };
  if (!Value.Check(ConnectorConfigSchema, filled)) {
    const first = Value.Errors(ConnectorConfigSchema, filled)[0];
    throw new ConfigError(
      `connector config ${path}: ${first ? `${first.instancePath || '/'} ${first.message}` : 'invalid'}`,
      'config',
    );
  }
  if (filled.tls && filled.fingerprint === '' && filled.ca === '') {
    throw new ConfigError(`connector config ${path}: TLS needs a pinned fingerprint or a ca file`, 'config');
  }
  return filled;
}

/** Writes the config atomically (mode 0600: it holds the tunnel secret). */
export async function saveConfig(path: string, config: ConnectorConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeAtomic(path, `${JSON.stringify(config, null, 2)}\n`);
}

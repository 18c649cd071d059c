import { resolve } from 'node:path';
import { Logger } from '../common/logger.js';
import { ConfigError } from '../config/errors.js';
import type { LogLevel } from '../config/params.js';
import { checkHttp, checkPort, type Http } from '../hub/rules.js';
import { CLIENT_BASE, createConnectorApi } from './admin-api.js';
import {
  acmeStateDir,
  type ConnectorConfig,
  configPath,
  DEFAULT_API_PORT,
  loadConfig,
  RECONNECT_DEFAULTS,
  saveConfig,
} from './config.js';
import { Connector } from './connector.js';
import {
  HUB_TRANSPORTS,
  HubDialer,
  type HubTransport,
  hubAddressFor,
  parseHubAddress,
  register,
  tunnelInfo,
} from './hub-dialer.js';
import { startQuickTunnel } from './quick-tunnel.js';
import { hashSecret } from './site-auth.js';

export const CONNECTOR_USAGE = `porthole connector — tunnel client for a porthole hub

  porthole connector configure --hub HOST:PORT --token TOKEN [--name N] [--ca FILE] [--fingerprint sha256:..] [--no-tls]
      again on the same config and hub: keeps the tunnel (id, ports, domains); --new-tunnel registers a new one
      [--acme-email E] [--acme-directory URL]   Let's Encrypt account contact; ACME CA (default Let's Encrypt)
      [--transport tcp|ws|wss]     (or --hub wss://HOST[:PORT][/PATH]: the hub through WebSocket, for HTTP(S)-only egress)
  porthole connector start [--api-port 4100] [--log info]
  porthole connector info
  porthole connector route tcp allocate
  porthole connector route tcp forward --port P --destination HOST --dstport D
  porthole connector route tcp release --port P
  porthole connector route tcp ls
  porthole connector route http add --domain D [--destination H --http P | --upstream-url U | --webroot DIR]
      [--tls P] [--secure] [--letsencrypt] [--ca FILE --key FILE] [--redirect] [--redirect-url U]
      [--rewrite-host H] [--insecure-upstream] [--basic-auth USER:PASS] [--password PW]
  porthole connector route http rm --domain D
  porthole connector route http ls
  porthole connector http <port> [--webroot DIR] [--domain D]   quick site for this run (not saved)
  porthole connector tcp <port>                                 quick TCP port for this run (released on stop)
Every command takes --config PATH (default $PORTHOLE_CONNECTOR_CONFIG or ~/.porthole/connector.json).
`;

interface Flags {
  values: Map<string, string>;
  bools: Set<string>;
  rest: string[];
}

const BOOLEAN_FLAGS = new Set([
  '--no-tls',
  '--new-tunnel',
  '--secure',
  '--letsencrypt',
  '--redirect',
  '--insecure-upstream',
]);

function parseFlags(args: string[]): Flags {
  const values = new Map<string, string>();
  const bools = new Set<string>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith('--')) {
      rest.push(arg);
      continue;
    }
    const [name = '', inline] = arg.split(/=(.*)/s, 2);
    if (BOOLEAN_FLAGS.has(name)) {
      bools.add(name);
      continue;
    }
    const value = inline ?? args[++i];
    if (value === undefined) throw new ConfigError(`${name} needs a value`, name);
    values.set(name, value);
  }
  return { values, bools, rest };
}

function need(flags: Flags, name: string): string {
  const v = flags.values.get(name);
  if (v === undefined || v === '') throw new ConfigError(`${name} is required`, name);
  return v;
}

function intFlag(flags: Flags, name: string, min = 1, max = 65535): number {
  const text = need(flags, name);
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= max)) throw new ConfigError(`${name}: expected ${min}-${max}, got "${text}"`, name);
  return n;
}

function allowOnly(flags: Flags, allowed: string[]): void {
  for (const name of flags.values.keys()) {
    if (!allowed.includes(name)) throw new ConfigError(`unknown option ${name}`, name);
  }
  for (const name of flags.bools) {
    if (!allowed.includes(name)) throw new ConfigError(`unknown option ${name}`, name);
  }
}

/** Calls the running connector's admin API; undefined when nothing listens there. */
async function callApi(port: number, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`http://127.0.0.1:${port}${CLIENT_BASE}${path}`, {
      method,
      headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(20_000),
    });
  } catch (err) {
    const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ECONNREFUSED') return undefined;
    throw err;
  }
  const data = (await res.json()) as { status?: boolean; error?: string };
  if (!res.ok || (typeof data === 'object' && data !== null && data.status === false)) {
    throw new ConfigError(data.error || `HTTP ${res.status}`, path);
  }
  return data;
}

/** `porthole connector ...`; returns a stop function for `start`, else undefined once the command is done. */
export async function runConnector(
  args: string[],
  print: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): Promise<{ stop(): Promise<void> } | undefined> {
  if (args.some((a) => a === '--help' || a === '-h') || args.length === 0 || args[0] === 'help') {
    print(CONNECTOR_USAGE.trimEnd());
    return undefined;
  }
  // Options may come before or after the command (pktriot takes a global --config first).
  const flags = parseFlags(args);
  const command = flags.rest.shift();
  const path = configPath(flags.values.get('--config'));
  switch (command) {
    case 'configure': {
      allowOnly(flags, [
        '--config',
        '--hub',
        '--token',
        '--name',
        '--ca',
        '--fingerprint',
        '--server-name',
        '--no-tls',
        '--acme-email',
        '--acme-directory',
        '--transport',
        '--new-tunnel',
      ]);
      const transport = flags.values.get('--transport');
      if (transport !== undefined && !(HUB_TRANSPORTS as readonly string[]).includes(transport)) {
        throw new ConfigError(`--transport: ${HUB_TRANSPORTS.join(', ')} (got "${transport}")`, '--transport');
      }
      const given = need(flags, '--hub');
      const hub = transport ? hubAddressFor(given, transport as HubTransport) : given;
      const scheme = parseHubAddress(hub, '--hub').transport;
      // A WebSocket URL says itself whether there is TLS; --no-tls is for the plain TCP listener of a --tls 0 hub.
      if (scheme !== 'tcp' && flags.bools.has('--no-tls')) {
        throw new ConfigError(`--no-tls does not apply to a ${scheme}:// hub (use ws:// for no TLS)`, '--no-tls');
      }
      const tls = scheme === 'tcp' ? !flags.bools.has('--no-tls') : scheme === 'wss';
      const trust = {
        tls,
        fingerprint: flags.values.get('--fingerprint') ?? '',
        ca: flags.values.get('--ca') ?? '',
        serverName: flags.values.get('--server-name') ?? '',
      };
      const name = flags.values.get('--name') ?? '';
      const acmeFlags = {
        ...(flags.values.has('--acme-directory') ? { directoryUrl: flags.values.get('--acme-directory') } : {}),
        ...(flags.values.has('--acme-email') ? { email: flags.values.get('--acme-email') } : {}),
      };
      if (acmeFlags.directoryUrl !== undefined && !/^https?:\/\/[^/]/.test(acmeFlags.directoryUrl)) {
        throw new ConfigError(
          `--acme-directory: expected an https:// URL, got "${acmeFlags.directoryUrl}"`,
          '--acme-directory',
        );
      }
      if (acmeFlags.email !== undefined && !/^[^@\s]+@[^@\s]+$/.test(acmeFlags.email)) {
        throw new ConfigError(`--acme-email: expected an e-mail address, got "${acmeFlags.email}"`, '--acme-email');
      }
      let previous: Partial<ConnectorConfig> = {};
      try {
        previous = await loadConfig(path);
      } catch {
        // A first configure, or a broken file that this one replaces.
      }
      // Configuring again for the same hub keeps the tunnel (its ports and domains), unless --new-tunnel.
      const renew =
        previous.hub === hub && previous.tunnelId && previous.secret && !flags.bools.has('--new-tunnel')
          ? { tunnelId: previous.tunnelId, secret: previous.secret }
          : undefined;
      const result = await register(new HubDialer(hub, trust), need(flags, '--token'), tunnelInfo(name), renew);
      const kept = renew !== undefined && result.tunnelId === renew.tunnelId;
      const config: ConnectorConfig = {
        hub,
        tls,
        fingerprint: tls && trust.ca === '' ? result.fingerprint : '',
        ca: trust.ca,
        serverName: trust.serverName,
        tunnelId: result.tunnelId,
        secret: result.secret,
        name,
        apiPort: previous.apiPort ?? DEFAULT_API_PORT,
        reconnect: previous.reconnect ?? { ...RECONNECT_DEFAULTS },
        // A new tunnel holds no ports yet; sites and mappings carry over.
        https: previous.https ?? [],
        ports: kept ? (previous.ports ?? []) : [],
        portmaps: previous.portmaps ?? [],
      };
      const acme = { ...previous.acme, ...acmeFlags };
      if (Object.keys(acme).length > 0) config.acme = acme;
      await saveConfig(path, config);
      print(
        kept
          ? `Kept tunnel ${result.tunnelId} with hub ${hub} (its ports and domains; --new-tunnel for a new one)`
          : `Registered tunnel ${result.tunnelId} with hub ${hub}`,
      );
      if (config.fingerprint) print(`Pinned hub certificate ${config.fingerprint}`);
      print(`Saved ${path}`);
      return undefined;
    }
    case 'start': {
      allowOnly(flags, ['--config', '--api-port', '--log']);
      const config = await loadConfig(path);
      const apiPort = flags.values.has('--api-port') ? intFlag(flags, '--api-port', 0) : config.apiPort;
      const logger = new Logger((flags.values.get('--log') ?? 'info') as LogLevel);
      const connector = new Connector(config, path, logger);
      const api = await createConnectorApi(connector);
      await api.listen({ host: '127.0.0.1', port: apiPort });
      const port = (api.server.address() as { port: number }).port;
      await connector.start();
      print(`porthole connector: tunnel ${config.tunnelId} -> hub ${config.hub}`);
      print(`Admin API: http://127.0.0.1:${port}${CLIENT_BASE}`);
      if (process.send !== undefined && process.connected) process.send({ type: 'ready' });
      return {
        async stop() {
          connector.stop();
          await api.close();
        },
      };
    }
    case 'info': {
      allowOnly(flags, ['--config', '--api-port']);
      const config = await loadConfig(path);
      const apiPort = flags.values.has('--api-port') ? intFlag(flags, '--api-port') : config.apiPort;
      const info = (await callApi(apiPort, 'GET', '/info')) as Record<string, unknown> | undefined;
      print(`tunnel:    ${config.tunnelId}`);
      print(`hub:       ${config.hub}${config.fingerprint ? ` (${config.fingerprint})` : ''}`);
      print(`running:   ${info ? `yes (admin API on 127.0.0.1:${apiPort})` : 'no'}`);
      if (info)
        print(`connected: ${info.isTunConnected ? 'yes' : `no${info.lastError ? ` (${info.lastError})` : ''}`}`);
      print(
        `rules:     ${config.ports.length} ports, ${config.portmaps.length} port mappings, ${config.https.length} sites`,
      );
      return undefined;
    }
    case 'route':
      return routeCommand(flags, path, print);
    case 'http':
    case 'tcp': {
      allowOnly(flags, ['--config', '--log', '--webroot', '--domain']);
      const [portText] = flags.rest;
      const webRoot = flags.values.get('--webroot');
      if (command === 'tcp' && (webRoot !== undefined || flags.values.has('--domain'))) {
        throw new ConfigError('tcp: --webroot and --domain are for http', 'tcp');
      }
      const port = portText !== undefined && /^\d+$/.test(portText) ? Number(portText) : Number.NaN;
      if (!(port >= 1 && port <= 65535) && !(command === 'http' && webRoot !== undefined && portText === undefined)) {
        throw new ConfigError(`${command}: expected a local port 1-65535, got "${portText ?? ''}"`, command);
      }
      const config = await loadConfig(path);
      const logger = new Logger((flags.values.get('--log') ?? 'info') as LogLevel);
      const quick = await startQuickTunnel(
        command,
        config,
        {
          ...(Number.isFinite(port) ? { port } : {}),
          ...(webRoot !== undefined ? { webRoot } : {}),
          ...(flags.values.has('--domain') ? { domain: flags.values.get('--domain') as string } : {}),
        },
        logger,
        print,
        acmeStateDir(path),
      );
      if (process.send !== undefined && process.connected) process.send({ type: 'ready' });
      return { stop: () => quick.stop() };
    }
    default:
      throw new ConfigError(`connector: unknown command "${command ?? ''}"\n${CONNECTOR_USAGE}`, 'command');
  }
}

function formatPorts(ports: ConnectorConfig['ports']): string[] {
  if (ports.length === 0) return ['no ports allocated'];
  return ports.map(
    (p) =>
      `${p.port}\t${p.destination ? `-> ${p.destination}:${p.dstPort}` : '(not forwarded)'}${p.firewall?.length ? `\tfirewall: ${p.firewall.map((r) => `${r.action} ${r.network}`).join(', ')}` : ''}`,
  );
}

/** `route tcp ...`: through the running connector's API when it runs, else (where possible) on the config file. */
async function routeCommand(flags: Flags, path: string, print: (line: string) => void): Promise<undefined> {
  const [kind, action] = flags.rest;
  if (kind === 'http') return routeHttp(flags, path, action, print);
  if (kind !== 'tcp') throw new ConfigError(`route: "${kind ?? ''}" is not supported (route tcp|http ...)`, 'route');
  allowOnly(flags, ['--config', '--api-port', '--port', '--destination', '--dstport']);
  const config = await loadConfig(path);
  const apiPort = flags.values.has('--api-port') ? intFlag(flags, '--api-port') : config.apiPort;
  switch (action) {
    case 'allocate': {
      const res = (await callApi(apiPort, 'GET', '/ports/allocate')) as { port: number } | undefined;
      if (!res)
        throw new ConfigError('allocating a port needs the running connector (porthole connector start)', 'route');
      print(`allocated port ${res.port}`);
      return undefined;
    }
    case 'forward': {
      const rule = checkPort({
        port: intFlag(flags, '--port'),
        destination: need(flags, '--destination'),
        dstPort: intFlag(flags, '--dstport'),
      });
      const current = config.ports.find((p) => p.port === rule.port);
      if (!current) throw new ConfigError(`port ${rule.port} is not allocated to this tunnel`, '--port');
      const body = { ports: [{ ...rule, ...(current.firewall ? { firewall: current.firewall } : {}) }] };
      const res = await callApi(apiPort, 'POST', current.destination ? '/traffic/update' : '/traffic/create', body);
      if (!res) {
        current.destination = rule.destination;
        current.dstPort = rule.dstPort;
        await saveConfig(path, config);
        print(`port ${rule.port} -> ${rule.destination}:${rule.dstPort} (saved; applies when the connector starts)`);
      } else print(`port ${rule.port} -> ${rule.destination}:${rule.dstPort}`);
      return undefined;
    }
    case 'release': {
      const port = intFlag(flags, '--port');
      const res = await callApi(apiPort, 'POST', '/ports/release', { port });
      if (!res)
        throw new ConfigError('releasing a port needs the running connector (porthole connector start)', 'route');
      print(`released port ${port}`);
      return undefined;
    }
    case 'ls': {
      const res = (await callApi(apiPort, 'GET', '/ports/list')) as ConnectorConfig['ports'] | undefined;
      for (const line of formatPorts(res ?? config.ports)) print(line);
      return undefined;
    }
    default:
      throw new ConfigError(`route tcp: unknown action "${action ?? ''}" (allocate, forward, release, ls)`, 'route');
  }
}

const HTTP_FLAGS = [
  '--config',
  '--api-port',
  '--domain',
  '--destination',
  '--http',
  '--tls',
  '--upstream-url',
  '--webroot',
  '--secure',
  '--letsencrypt',
  '--ca',
  '--key',
  '--redirect',
  '--redirect-url',
  '--rewrite-host',
  '--insecure-upstream',
  '--basic-auth',
  '--password',
];

/** The site a `route http add` names, validated like the API validates it. Passwords are stored only hashed. */
function siteFromFlags(flags: Flags): Http {
  const v = (name: string) => flags.values.get(name);
  const int = (name: string) => (flags.values.has(name) ? intFlag(flags, name) : undefined);
  const ca = v('--ca');
  const key = v('--key');
  if ((ca === undefined) !== (key === undefined)) throw new ConfigError('--ca and --key go together', '--ca');
  const basic = v('--basic-auth');
  if (basic !== undefined && !basic.includes(':'))
    throw new ConfigError('--basic-auth: expected USER:PASS', '--basic-auth');
  const site: Record<string, unknown> = {
    domain: need(flags, '--domain').toLowerCase(),
    destination: v('--destination'),
    port: int('--http'),
    tls: int('--tls'),
    upstreamURL: v('--upstream-url'),
    webRoot: v('--webroot') !== undefined ? resolve(v('--webroot') as string) : undefined,
    secure: flags.bools.has('--secure') || flags.bools.has('--letsencrypt') || ca !== undefined || undefined,
    useLetsEnc: flags.bools.has('--letsencrypt') || undefined,
    ca: ca !== undefined ? resolve(ca) : undefined,
    privateKey: key !== undefined ? resolve(key) : undefined,
    redirect: flags.bools.has('--redirect') || undefined,
    redirectURL: v('--redirect-url'),
    rewriteHost: v('--rewrite-host'),
    insecureUpstream: flags.bools.has('--insecure-upstream') || undefined,
    basicHttpAuth: basic !== undefined ? hashSecret(basic) : undefined,
    password: v('--password') !== undefined ? hashSecret(v('--password') as string) : undefined,
  };
  for (const k of Object.keys(site)) if (site[k] === undefined) delete site[k];
  try {
    return checkHttp(site);
  } catch (err) {
    throw new ConfigError((err as Error).message, '--domain');
  }
}

function formatSites(sites: Http[]): string[] {
  if (sites.length === 0) return ['no sites'];
  return sites.map((h) => {
    const to = h.webRoot
      ? `webroot ${h.webRoot}`
      : h.upstreamURL
        ? h.upstreamURL
        : h.redirectURL && !h.destination
          ? `redirect ${h.redirectURL}`
          : `${h.destination}:${h.port || `tls ${h.tls}`}`;
    const tags = [
      h.secure ? 'https' : 'http',
      h.useLetsEnc ? "let's encrypt" : '',
      h.redirect ? 'redirect' : '',
      h.basicHttpAuth ? 'basic auth' : '',
      h.password ? 'password' : '',
    ].filter(Boolean);
    return `${h.domain}\t-> ${to}\t(${tags.join(', ')})`;
  });
}

/** `route http add|rm|ls`: through the running connector's API when it runs, else on the config file. */
async function routeHttp(
  flags: Flags,
  path: string,
  action: string | undefined,
  print: (line: string) => void,
): Promise<undefined> {
  allowOnly(flags, HTTP_FLAGS);
  const config = await loadConfig(path);
  const apiPort = flags.values.has('--api-port') ? intFlag(flags, '--api-port') : config.apiPort;
  switch (action) {
    case 'add': {
      const site = siteFromFlags(flags);
      const exists = config.https.some((h) => h.domain.toLowerCase() === site.domain);
      const res = await callApi(apiPort, 'POST', exists ? '/traffic/update' : '/traffic/create', { https: [site] });
      if (!res) {
        config.https = [...config.https.filter((h) => h.domain.toLowerCase() !== site.domain), site];
        await saveConfig(path, config);
        print(`site ${site.domain} ${exists ? 'updated' : 'added'} (saved; applies when the connector starts)`);
      } else print(`site ${site.domain} ${exists ? 'updated' : 'added'}`);
      return undefined;
    }
    case 'rm': {
      const domain = need(flags, '--domain').toLowerCase();
      if (!config.https.some((h) => h.domain.toLowerCase() === domain)) {
        throw new ConfigError(`no site ${domain}`, '--domain');
      }
      const res = await callApi(apiPort, 'POST', '/traffic/delete', { https: [{ domain }] });
      if (!res) {
        config.https = config.https.filter((h) => h.domain.toLowerCase() !== domain);
        await saveConfig(path, config);
      }
      print(`site ${domain} removed`);
      return undefined;
    }
    case 'ls': {
      const fresh = await loadConfig(path);
      for (const line of formatSites(fresh.https)) print(line);
      return undefined;
    }
    default:
      throw new ConfigError(`route http: unknown action "${action ?? ''}" (add, rm, ls)`, 'route');
  }
}

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from '../common/logger.js';
import { ConfigError } from '../config/errors.js';
import { checkHttp, isHost } from '../hub/rules.js';
import type { ConnectorConfig } from './config.js';
import { Connector } from './connector.js';
import { parseHubAddress } from './hub-dialer.js';

/**
 * Quick tunnels (`porthole connector http <port> [--webroot DIR]`, `tcp <port>`): the registered tunnel runs in the
 * foreground with one temporary rule that is never written to the user's config (a copy lives in a temp directory
 * for the run). `tcp` allocates a hub port for the run and releases it on stop.
 */
export async function startQuickTunnel(
  kind: 'http' | 'tcp',
  config: ConnectorConfig,
  target: { port?: number; webRoot?: string; domain?: string },
  logger: Logger,
  print: (line: string) => void,
  /** The user's ACME cache: the run's sites reuse its certificates instead of ordering new ones. */
  acmeDir?: string,
): Promise<{ connector: Connector; stop(): Promise<void> }> {
  const run: ConnectorConfig = structuredClone(config);
  const hubHost = parseHubAddress(config.hub).endpoint.host;
  if (kind === 'http') {
    let domain = target.domain?.toLowerCase();
    if (!domain) {
      if (isIP(hubHost) !== 0 || !isHost(hubHost)) {
        throw new ConfigError('http: the hub is addressed by IP; name the site with --domain D', '--domain');
      }
      domain = `${randomBytes(4).toString('hex')}.${hubHost}`;
    }
    const site = checkHttp({
      domain,
      ...(target.webRoot ? { webRoot: resolve(target.webRoot) } : { destination: '127.0.0.1', port: target.port }),
    });
    run.https = [...run.https.filter((h) => h.domain.toLowerCase() !== domain), site];
  }
  const dir = mkdtempSync(join(tmpdir(), 'porthole-quick-'));
  const connector = new Connector(run, join(dir, 'connector.json'), logger, acmeDir);
  let allocated: number | undefined;
  const connected = new Promise<void>((resolveConnected) => {
    const previous = connector.keeper.onConnected;
    connector.keeper.onConnected = (session) => {
      previous(session);
      resolveConnected();
    };
  });
  await connector.start();
  await connected;
  if (kind === 'tcp') {
    const { port } = await connector.allocate();
    allocated = port;
    await connector.update({ ports: [{ port, destination: '127.0.0.1', dstPort: target.port as number }] });
    print(`tcp: ${hubHost}:${port} -> 127.0.0.1:${target.port}`);
  } else {
    const site = run.https[run.https.length - 1];
    print(`http: http://${site?.domain}/ -> ${site?.webRoot ?? `127.0.0.1:${target.port}`}`);
  }
  return {
    connector,
    async stop() {
      if (allocated !== undefined) await connector.release(allocated).catch(() => {});
      connector.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

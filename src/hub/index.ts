import { isIP } from 'node:net';
import { Logger } from '../common/logger.js';
import { createAdminApi } from './admin-api.js';
import { readHubConfig } from './config.js';
import { Hub } from './hub.js';
import { HUB_WEBSOCKET_PATH } from './protocol.js';

export interface RunningHub {
  stop(timeout: number): Promise<void>;
}

/** Environment knob for tests: the keepalive interval (ms) of every session. */
const PING_ENV = 'PORTHOLE_HUB_PING_INTERVAL';

/** `porthole hub [--config hub.json] [flags]`: the tunnel listener, the public ports and the admin API. */
export async function startHub(args: string[], print = (line: string) => process.stdout.write(`${line}\n`)) {
  const config = await readHubConfig(args);
  const logger = new Logger(config.log);
  const ping = Number(process.env[PING_ENV] ?? '');
  const hub = await Hub.create(config, logger, ping > 0 ? { pingInterval: ping } : {});
  await hub.listen();
  const api = await createAdminApi(hub);
  await api.listen({ host: config.adminListen.host || '0.0.0.0', port: config.adminListen.port });
  await hub.syncListeners();
  const adminPort = (api.server.address() as { port: number }).port;
  const adminHost = config.adminListen.host || '127.0.0.1';
  const shown = isIP(adminHost) === 6 ? `[${adminHost}]` : adminHost;
  print(`porthole hub: tunnel listener ${hub.describeTunnelListen()} (${config.tls ? 'TLS' : 'plain TCP'})`);
  if (hub.fingerprint) print(`Fingerprint: ${hub.fingerprint}`);
  if (hub.webSocketPort)
    print(`WebSocket:   ${config.wsListen?.host || '*'}:${hub.webSocketPort} (plain HTTP, path ${HUB_WEBSOCKET_PATH})`);
  print(`Admin API:   http://${shown}:${adminPort}/api/admin/v1.0 (docs: /api/admin/v1.0/docs)`);
  print(`Admin key:   ${hub.registry.adminKey}`);
  const sites = hub.siteListeners;
  if (sites.httpPort) print(`HTTP sites:  ${config.httpListen?.host || '*'}:${sites.httpPort} (by Host)`);
  if (sites.httpsPort)
    print(`HTTPS sites: ${config.httpsListen?.host || '*'}:${sites.httpsPort} (by SNI, TLS passed through)`);
  print(`Ports:       ${config.portRange.begin}-${config.portRange.end} on ${config.publicBind || 'all interfaces'}`);
  print(`State:       ${hub.store.path}`);
  if (process.send !== undefined && process.connected) process.send({ type: 'ready' });
  return {
    async stop() {
      await api.close();
      await hub.stop();
      logger.info('hub stopped');
    },
  } satisfies RunningHub;
}

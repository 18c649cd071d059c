import type { Logger } from '../common/logger.js';
import type { RuntimeSettings } from '../config/env.js';
import { canonicalConfig, formatEndpoint, type TunnelUrl } from '../config/url.js';
import { TunnelClient } from './client.js';
import { sendToMaster } from './ipc.js';
import { TunnelServer } from './server.js';
import { SingleEndForwarder } from './single-end.js';

export interface RunningInstance {
  stop(timeout: number): Promise<void>;
}

// Client mode 0 runs single-end when it can bind the tunnel address, and dual-end when this is why it cannot.
const BIND_ERRORS = new Set(['EADDRINUSE', 'EADDRNOTAVAIL', 'EACCES']);

/** Starts a server:// or client:// instance in the mode its URL asks for. */
export async function startTunnelInstance(
  url: TunnelUrl,
  settings: RuntimeSettings,
  logger: Logger,
): Promise<RunningInstance> {
  if (url.role === 'server') {
    const server = new TunnelServer(url, settings, logger);
    await server.start();
    logger.info(`Server started: ${canonicalConfig(url)}`);
    sendToMaster({ type: 'ready', mode: server.flow === '-' ? 1 : 2 });
    return server;
  }
  if (url.params.mode !== 2) {
    const forwarder = new SingleEndForwarder(url, settings, logger);
    try {
      await forwarder.start();
      logger.info(`Client started: ${canonicalConfig(url)}`);
      sendToMaster({ type: 'ready', mode: 1 });
      return forwarder;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (url.params.mode === 1 || !BIND_ERRORS.has(code)) throw err;
      logger.info(`Cannot bind ${formatEndpoint(url.tunnel)} (${code}): dual-end mode (2)`);
    }
  }
  const client = new TunnelClient(url, settings, logger);
  await client.start();
  logger.info(`Client started: ${canonicalConfig(url)}`);
  sendToMaster({ type: 'ready', mode: 2 });
  return client;
}

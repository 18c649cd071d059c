import type { Logger } from '../common/logger.js';
import type { RuntimeSettings } from '../config/env.js';
import { canonicalConfig, formatEndpoint, type TunnelUrl } from '../config/url.js';
import { UnsupportedModeError } from './errors.js';
import { sendToMaster } from './ipc.js';
import { SingleEndForwarder } from './single-end.js';

export interface RunningInstance {
  stop(timeout: number): Promise<void>;
}

const BIND_ERRORS = new Set(['EADDRINUSE', 'EADDRNOTAVAIL', 'EACCES']);

/** Starts a server:// or client:// instance in the mode its URL asks for. */
export async function startTunnelInstance(
  url: TunnelUrl,
  settings: RuntimeSettings,
  logger: Logger,
): Promise<RunningInstance> {
  if (url.role === 'server') {
    throw new UnsupportedModeError('server:// instances (dual-end tunnels) are not available in this build yet');
  }
  if (url.params.mode === 2) {
    throw new UnsupportedModeError('client mode 2 (dual-end tunnel) is not available in this build yet');
  }
  const forwarder = new SingleEndForwarder(url, settings, logger);
  try {
    await forwarder.start();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (url.params.mode === 0 && BIND_ERRORS.has(code)) {
      throw new UnsupportedModeError(
        `cannot bind ${formatEndpoint(url.tunnel)} (${code}), so client mode 0 would run as a dual-end tunnel, which is not available in this build yet`,
      );
    }
    throw err;
  }
  logger.info(`Client started: ${canonicalConfig(url)}`);
  sendToMaster({ type: 'ready', mode: 1 });
  return forwarder;
}

import { createServer } from 'node:http';
import type { Logger } from '../common/logger.js';
import type { RuntimeSettings } from '../config/env.js';
import { parsePortholeUrl, type TunnelUrl } from '../config/url.js';
import { type RunningInstance, startTunnelInstance } from '../instance/run.js';

const PAGE_PORT = 18081;
const FORWARD_PORT = 18080;

/** `npm start` until the master lands: a small local page and a single-end forwarder in front of it. */
export async function startDemo(settings: RuntimeSettings, logger: Logger): Promise<RunningInstance> {
  const page = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('Hello through porthole: this page is served on 127.0.0.1:18081 and forwarded from :18080.\n');
  });
  await new Promise<void>((resolve, reject) => {
    page.once('error', reject);
    page.listen(PAGE_PORT, '127.0.0.1', resolve);
  });
  const url = parsePortholeUrl(`client://127.0.0.1:${FORWARD_PORT}/127.0.0.1:${PAGE_PORT}?mode=1`) as TunnelUrl;
  const forwarder = await startTunnelInstance(url, settings, logger);
  logger.info(`Demo: curl http://127.0.0.1:${FORWARD_PORT}/  (Ctrl-C to stop)`);
  return {
    async stop(timeout) {
      await forwarder.stop(timeout);
      page.closeAllConnections();
      page.close();
    },
  };
}

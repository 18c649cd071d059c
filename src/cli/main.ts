#!/usr/bin/env node
import { Logger } from '../common/logger.js';
import { VERSION } from '../common/version.js';
import { readRuntimeSettings } from '../config/env.js';
import { ConfigError } from '../config/errors.js';
import { parsePortholeUrl } from '../config/url.js';
import { type RunningInstance, startTunnelInstance } from '../instance/run.js';
import { readMasterSettings } from '../master/settings.js';
import { startDemo } from './demo.js';
import { USAGE } from './usage.js';

function fail(message: string, code: number): never {
  process.stderr.write(`porthole: ${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(USAGE);
    if (first === undefined) process.exitCode = 2;
    return;
  }
  if (first === '--version' || first === '-v' || first === 'version') {
    process.stdout.write(`porthole ${VERSION}\n`);
    return;
  }
  if (first !== 'hub' && first !== 'connector' && rest.length > 0) {
    fail(`unexpected arguments after the URL: ${rest.join(' ')} (quote the URL)`, 2);
  }

  const settings = readRuntimeSettings();
  let logger = new Logger('info');
  let running: RunningInstance | undefined;
  let stopping = false;
  const stop = () => {
    (running as RunningInstance).stop(settings.shutdownTimeout).then(
      () => process.exit(0),
      (err: Error) => fail(`shutdown failed: ${err.message}`, 1),
    );
  };
  // Installed before anything starts: a supervisor may signal as soon as the instance reports ready.
  const onSignal = (signal: string) => {
    if (stopping) process.exit(130);
    stopping = true;
    logger.info(`${signal} received, shutting down`);
    if (running !== undefined) stop();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  if (first === 'demo') {
    running = await startDemo(settings, logger);
  } else if (first === 'hub') {
    const { startHub } = await import('../hub/index.js');
    running = await startHub(rest);
  } else if (first === 'connector') {
    const { runConnector } = await import('../connector/cli.js');
    const started = await runConnector(rest);
    if (started === undefined) return; // a one-shot command (configure, info, route ...) is done
    running = started;
  } else if (first.includes('://')) {
    const url = parsePortholeUrl(first);
    logger = new Logger(url.params.log);
    if (url.role === 'master') {
      const { startMaster } = await import('../master/index.js');
      running = await startMaster(url, settings, logger, readMasterSettings());
    } else {
      running = await startTunnelInstance(url, settings, logger);
    }
  } else {
    fail(`unknown command "${first}" (see porthole --help)`, 2);
  }
  if (stopping) stop();
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError || (err as Error).name === 'StateLoadError') {
    fail((err as Error).message, 1);
  }
  const e = err as NodeJS.ErrnoException;
  fail(`${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`, 1);
});

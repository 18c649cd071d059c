import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';

/** Debian's Chromium, installed by scripts/install-test-deps.sh (called from .ci/run). */
export const CHROMIUM = '/usr/bin/chromium';

/** Screenshots of the dashboard tests (gitignored). */
export const SCREENSHOTS = join(process.cwd(), 'test-output', 'screenshots');

export interface RunningBrowser {
  browser: Browser;
  pid: number;
  /** Closes the browser; kills its process by pid if it does not close within 10 s. */
  stop(): Promise<void>;
}

/** Starts headless Chromium; fails (never skips) when it is not installed, naming the script that installs it. */
export async function launchChromium(): Promise<RunningBrowser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the dashboard browser tests need Debian's chromium. Install it with ` +
        '`sudo bash scripts/install-test-deps.sh` (CI runs it from .ci/run).',
    );
  }
  mkdirSync(SCREENSHOTS, { recursive: true });
  // launchServer (not launch) so that the test knows the browser's pid and can always end it.
  const server = await chromium.launchServer({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  const pid = server.process().pid as number;
  const browser = await chromium.connect(server.wsEndpoint(), { timeout: 30_000 });
  return {
    browser,
    pid,
    async stop() {
      const timer = setTimeout(() => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }, 10_000);
      try {
        await browser.close().catch(() => {});
        await server.close();
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export function screenshotPath(name: string): string {
  return join(SCREENSHOTS, `${name}.png`);
}

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';
import { type PortholeProcess, runPorthole, spawnPorthole } from './porthole.js';

export const ADMIN = '/api/admin/v1.0';
export const CLIENT = '/api/client/v1.0';

export function tempDir(prefix = 'porthole-hub-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * A block of `size` ports below the kernel's ephemeral range (32768+), random per call, so a hub's allocations do
 * not collide with the ephemeral ports every other test (and engineer) uses.
 */
export function portRange(size = 20): { begin: number; end: number } {
  const begin = 20_000 + Math.floor(Math.random() * ((32_000 - 20_000) / size)) * size;
  return { begin, end: begin + size - 1 };
}

export interface HubProcess extends PortholeProcess {
  stateDir: string;
  tunnelPort: number;
  adminPort: number;
  key: string;
  fingerprint: string;
  /** The sites' HTTP (by Host) and HTTPS (by SNI) listeners. */
  httpPort: number;
  httpsPort: number;
  range: { begin: number; end: number };
  /** `host:port` of the tunnel listener, for `connector configure --hub`. */
  address: string;
  kill9(): Promise<void>;
}

export interface HubOptions {
  stateDir?: string;
  tunnelPort?: number;
  range?: { begin: number; end: number };
  token?: string;
  extra?: string[];
  env?: Record<string, string>;
  publicBind?: string;
}

export const BOOT_TOKEN = 'test-bootstrap-token';

export async function startHub(options: HubOptions = {}): Promise<HubProcess> {
  const stateDir = options.stateDir ?? tempDir();
  const range = options.range ?? portRange();
  const tunnelPort = options.tunnelPort ?? (await freePort());
  const p = spawnPorthole(
    [
      'hub',
      '--tunnel-listen',
      `127.0.0.1:${tunnelPort}`,
      '--admin-listen',
      '127.0.0.1:0',
      '--public-bind',
      options.publicBind ?? '127.0.0.1',
      '--state-dir',
      stateDir,
      '--port-range',
      `${range.begin}-${range.end}`,
      '--token',
      options.token ?? BOOT_TOKEN,
      '--http-listen',
      '127.0.0.1:0',
      '--https-listen',
      '127.0.0.1:0',
      '--log',
      'debug',
      ...(options.extra ?? []),
    ],
    { PORTHOLE_HUB_PING_INTERVAL: '1000', ...options.env },
  );
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), 20_000);
  try {
    await p.waitFor(/State: .*\n/, 15_000);
  } finally {
    clearTimeout(timer);
  }
  const out = p.output();
  const adminPort = Number(/Admin API:\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
  const key = /Admin key:\s+([0-9a-f]+)/.exec(out)?.[1] ?? '';
  const fingerprint = /Fingerprint: (\S+)/.exec(out)?.[1] ?? '';
  const httpPort = Number(/HTTP sites:\s+\S+:(\d+)/.exec(out)?.[1] ?? 0);
  const httpsPort = Number(/HTTPS sites:\s+\S+:(\d+)/.exec(out)?.[1] ?? 0);
  return Object.assign(p, {
    stateDir,
    tunnelPort,
    adminPort,
    key,
    fingerprint,
    httpPort,
    httpsPort,
    range,
    address: `127.0.0.1:${tunnelPort}`,
    async kill9() {
      if (p.proc.exitCode !== null || p.proc.signalCode !== null) return;
      const exited = once(p.proc, 'exit');
      p.proc.kill('SIGKILL');
      await exited;
    },
  });
}

export interface ConnectorProcess extends PortholeProcess {
  configPath: string;
  apiPort: number;
  kill9(): Promise<void>;
}

/** `porthole connector configure` against the hub with the bootstrap token, into `configPath`, plus `extra` flags. */
export function runConfigure(hub: HubProcess, configPath: string, ...extra: string[]): ReturnType<typeof runPorthole> {
  return runPorthole([
    'connector',
    'configure',
    '--config',
    configPath,
    '--hub',
    hub.address,
    '--token',
    BOOT_TOKEN,
    ...extra,
  ]);
}

/** `connector configure` into a fresh config file; sets fast reconnects for tests. */
export async function configureConnector(hub: HubProcess, name: string, dir: string): Promise<string> {
  const configPath = join(dir, `${name}.json`);
  const r = await runConfigure(hub, configPath, '--name', name);
  assert.equal(r.code, 0, r.output);
  const config = JSON.parse(readFileSync(configPath, 'utf8'));
  config.reconnect = { initialDelay: 100, maxDelay: 800, maxRetries: 0 };
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  return configPath;
}

export async function startConnector(
  configPath: string,
  apiPort?: number,
  env: Record<string, string> = {},
): Promise<ConnectorProcess> {
  const port = apiPort ?? (await freePort());
  const p = spawnPorthole(
    ['connector', 'start', '--config', configPath, '--api-port', String(port), '--log', 'debug'],
    env,
  );
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), 20_000);
  try {
    await p.waitFor(/connected to the hub/, 15_000);
  } finally {
    clearTimeout(timer);
  }
  return Object.assign(p, {
    configPath,
    apiPort: port,
    async kill9() {
      if (p.proc.exitCode !== null || p.proc.signalCode !== null) return;
      const exited = once(p.proc, 'exit');
      p.proc.kill('SIGKILL');
      await exited;
    },
  });
}

export interface ApiResult {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: test helper returning arbitrary JSON
  body: any;
}

/** A JSON request; `raw` sends the body as given with `contentType`. */
export async function call(
  port: number,
  method: string,
  path: string,
  options: { body?: unknown; raw?: string; contentType?: string; headers?: Record<string, string> } = {},
): Promise<ApiResult> {
  const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
  let body: string | undefined;
  if (options.raw !== undefined) {
    body = options.raw;
    headers['content-type'] = options.contentType ?? 'application/json';
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = options.contentType ?? 'application/json';
  }
  // Node sends a GET body without framing unless told its length.
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
  // fetch refuses a GET with a body; node:http does not (the seed's traffic/delete is one).
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

export function admin(hub: HubProcess, method: string, path: string, body?: unknown): Promise<ApiResult> {
  return call(hub.adminPort, method, `${ADMIN}${path}`, { body, headers: { 'x-api-key': hub.key } });
}

export function client(c: ConnectorProcess, method: string, path: string, body?: unknown): Promise<ApiResult> {
  return call(c.apiPort, method, `${CLIENT}${path}`, { body });
}

/** Polls `check` every 100 ms until it returns true, failing after `timeoutMs`. */
export async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sends `payload`, half-closes, collects the answer until close; rejects on a socket error (with `what`). */
export async function transfer(port: number, payload: Buffer, what: string, host = '127.0.0.1'): Promise<Buffer> {
  const { connectTcp } = await import('./net.js');
  const s = await connectTcp(port, host);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (err) => reject(new Error(`${what}: ${err.message} after ${Buffer.concat(chunks).length} bytes`)));
    s.on('close', () => resolve(Buffer.concat(chunks)));
    s.end(payload);
  });
}

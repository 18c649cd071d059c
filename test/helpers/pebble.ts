import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, webcrypto } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './net.js';
import { watchOutput } from './output-watcher.js';

/** Debian's pebble (ACME test CA) and its DNS/challenge test server; installed by scripts/install-test-deps.sh. */
const PEBBLE = '/usr/bin/pebble';
const CHALLTESTSRV = '/usr/bin/pebble-challtestsrv';

export function pebbleMissing(): string | undefined {
  for (const bin of [PEBBLE, CHALLTESTSRV]) {
    if (!existsSync(bin)) return `${bin} is missing (apt-get install -y pebble, see scripts/install-test-deps.sh)`;
  }
  return undefined;
}

interface Child {
  proc: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

function start(bin: string, args: string[], env: Record<string, string>, name: string): Child {
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  const { output, waitFor } = watchOutput(proc, exited, name);
  return {
    proc,
    output,
    waitFor,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * A self-signed CA certificate for 127.0.0.1 that pebble's directory serves; the connector trusts it through
 * NODE_EXTRA_CA_CERTS (the Debian package ships no test certificate).
 */
async function directoryCertificate(): Promise<{ cert: string; key: string }> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${randomBytes(8).toString('hex')}`,
    name: 'CN=pebble test directory',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 24 * 3600 * 1000),
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature, true),
      new x509.SubjectAlternativeNameExtension([
        { type: 'ip', value: '127.0.0.1' },
        { type: 'dns', value: 'localhost' },
      ]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  return { cert: certificate.toString('pem'), key };
}

export interface Pebble {
  /** The ACME directory URL. */
  directory: string;
  /** PEM file of the directory's TLS certificate, for NODE_EXTRA_CA_CERTS. */
  trustFile: string;
  trust: string;
  output(): string;
  /** PEM of the issuing CA's root and intermediate (fresh per pebble run), from the management port. */
  root(): Promise<string>;
  intermediate(): Promise<string>;
  /** How many orders pebble has received so far. */
  orders(): number;
  stop(): Promise<void>;
}

export interface PebbleOptions {
  /** Where the CA sends HTTP-01 validation requests (the hub's HTTP listener). */
  httpPort: number;
  /** Certificate lifetime in seconds (default pebble's 5 years). */
  validity?: number;
  dir: string;
}

/**
 * pebble on loopback (ephemeral ports) with a DNS (pebble-challtestsrv) that resolves every name to 127.0.0.1, so
 * the CA's HTTP-01 requests for any test domain reach `httpPort`. Challenges are really validated
 * (PEBBLE_VA_ALWAYS_VALID=0), without pebble's random sleeps.
 */
export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  const [acmePort, mgmtPort, tlsPort, dnsPort, dnsMgmtPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  mkdirSync(options.dir, { recursive: true });
  const { cert, key } = await directoryCertificate();
  const trustFile = join(options.dir, 'pebble-directory.pem');
  writeFileSync(trustFile, cert);
  writeFileSync(join(options.dir, 'pebble-directory.key'), key, { mode: 0o600 });
  const dns = start(
    CHALLTESTSRV,
    [
      '-defaultIPv4',
      '127.0.0.1',
      '-defaultIPv6',
      '',
      '-dns01',
      `127.0.0.1:${dnsPort}`,
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
      '-management',
      `127.0.0.1:${dnsMgmtPort}`,
    ],
    {},
    'pebble-challtestsrv',
  );
  const config = join(options.dir, 'pebble-config.json');
  writeFileSync(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: trustFile,
        privateKey: join(options.dir, 'pebble-directory.key'),
        httpPort: options.httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(options.validity ? { certificateValidityPeriod: options.validity } : {}),
      },
    }),
  );
  let pebble: Child | undefined;
  try {
    await dns.waitFor(new RegExp(`${dnsPort}`), 10_000);
    pebble = start(
      PEBBLE,
      ['-config', config, '-dnsserver', `127.0.0.1:${dnsPort}`],
      { PEBBLE_VA_NOSLEEP: '1', PEBBLE_VA_ALWAYS_VALID: '0', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
      'pebble',
    );
    await pebble.waitFor(/Listening on|ACME directory available/, 10_000);
  } catch (err) {
    await Promise.all([dns.stop(), pebble?.stop()]);
    throw err;
  }
  const running = pebble;
  const management = async (path: string): Promise<string> => {
    const { request } = await import('node:https');
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: mgmtPort, path, ca: cert, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () =>
          res.statusCode === 200 ? resolve(body) : reject(new Error(`pebble ${path}: ${res.statusCode}`)),
        );
      });
      req.on('timeout', () => req.destroy(new Error(`pebble ${path} timed out`)));
      req.on('error', reject);
      req.end();
    });
  };
  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    trustFile,
    trust: cert,
    output: () => running.output(),
    root: () => management('/roots/0'),
    intermediate: () => management('/intermediates/0'),
    orders: () => (running.output().match(/POST \/order-plz/g) ?? []).length,
    async stop() {
      await Promise.all([running.stop(), dns.stop()]);
    },
  };
}

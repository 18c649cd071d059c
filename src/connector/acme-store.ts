import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomic } from '../common/atomic-write.js';

/** A certificate chain (leaf first) with its private key, both PEM, and the leaf's validity. */
export interface IssuedCertificate {
  cert: string;
  key: string;
  notBefore: Date;
  notAfter: Date;
}

export class AcmeStoreError extends Error {
  override readonly name = 'AcmeStoreError';
}

/** Parses a chain and its key; throws when they do not parse, do not match, or the leaf does not name `domain`. */
export function checkCertificate(domain: string, cert: string, key: string): IssuedCertificate {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new AcmeStoreError(`certificate for ${domain} does not parse: ${(err as Error).message}`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new AcmeStoreError(`private key for ${domain} does not parse: ${(err as Error).message}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new AcmeStoreError(`certificate and key for ${domain} do not match`);
  if (leaf.checkHost(domain) === undefined) throw new AcmeStoreError(`certificate does not name ${domain}`);
  return { cert, key, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo) };
}

/**
 * The ACME state of one connector for one ACME directory, on disk under `<root>/<directory host>-<hash>/`:
 * `account.key` + `account.json` (the account URL), and `certs/<domain>.crt` + `.key`. One directory per ACME
 * directory URL, so certificates of a test CA are never served once the connector points at Let's Encrypt.
 * Writes are atomic; private keys are mode 0600 in a 0700 directory.
 */
export class AcmeStore {
  readonly dir: string;

  constructor(root: string, directoryUrl: string) {
    let host = 'acme';
    try {
      host = new URL(directoryUrl).host.replace(/[^a-z0-9.-]/gi, '_');
    } catch {
      // an invalid URL fails at the first request, with its own message
    }
    const hash = createHash('sha256').update(directoryUrl).digest('hex').slice(0, 10);
    this.dir = join(root, `${host}-${hash}`);
  }

  private async write(path: string, data: string): Promise<void> {
    await mkdir(join(this.dir, 'certs'), { recursive: true, mode: 0o700 });
    // writeAtomic creates the file 0600 and renames it over any older one: private keys stay the owner's.
    await writeAtomic(path, data);
  }

  private certPaths(domain: string): { cert: string; key: string } {
    const name = domain.toLowerCase().replace(/[^a-z0-9.-]/g, '_');
    return { cert: join(this.dir, 'certs', `${name}.crt`), key: join(this.dir, 'certs', `${name}.key`) };
  }

  /** The account key (PEM) and URL, or undefined when this directory has no account yet. */
  async loadAccount(): Promise<{ key: string; url: string | undefined } | undefined> {
    let key: string;
    try {
      key = await readFile(join(this.dir, 'account.key'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new AcmeStoreError(`ACME account key: ${(err as Error).message}`);
    }
    let url: string | undefined;
    try {
      const meta = JSON.parse(await readFile(join(this.dir, 'account.json'), 'utf8')) as { url?: unknown };
      if (typeof meta.url === 'string' && meta.url !== '') url = meta.url;
    } catch {
      // no URL yet: the account is looked up by its key
    }
    return { key, url };
  }

  async saveAccountKey(key: string): Promise<void> {
    await this.write(join(this.dir, 'account.key'), key);
  }

  async saveAccountUrl(url: string): Promise<void> {
    await this.write(join(this.dir, 'account.json'), `${JSON.stringify({ url }, null, 2)}\n`);
  }

  /** The cached certificate of `domain`, undefined when there is none; throws when the cached files are unusable. */
  async loadCertificate(domain: string): Promise<IssuedCertificate | undefined> {
    const paths = this.certPaths(domain);
    let cert: string;
    let key: string;
    try {
      [cert, key] = await Promise.all([readFile(paths.cert, 'utf8'), readFile(paths.key, 'utf8')]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new AcmeStoreError(`cached certificate of ${domain}: ${(err as Error).message}`);
    }
    return checkCertificate(domain, cert, key);
  }

  /** Key first: a crash between the two writes leaves a new key with an old certificate, which fails the match check. */
  async saveCertificate(domain: string, issued: IssuedCertificate): Promise<void> {
    const paths = this.certPaths(domain);
    await this.write(paths.key, issued.key);
    await this.write(paths.cert, issued.cert);
  }
}

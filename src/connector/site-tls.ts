import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from '../common/logger.js';
import type { Http } from '../hub/rules.js';
import { createSelfSignedCertificate } from '../tunnel/certificates.js';
import type { AcmeCertificates, AcmeStatus } from './acme-certificates.js';

export class SiteCertificateError extends Error {
  override readonly name = 'SiteCertificateError';
}

/** A PEM given inline, as base64 of the PEM, or as a file path (the reference allows paths or base64 PEM). */
export async function readPem(value: string, what: string): Promise<string> {
  const text = value.trim();
  if (text.startsWith('-----BEGIN')) return text;
  if (/^[A-Za-z0-9+/=\s]+$/.test(text) && text.length > 64) {
    const decoded = Buffer.from(text, 'base64').toString('utf8');
    if (decoded.includes('-----BEGIN')) return decoded;
  }
  try {
    return await readFile(text, 'utf8');
  } catch (err) {
    throw new SiteCertificateError(`${what}: neither PEM, base64 PEM nor a readable file (${(err as Error).message})`);
  }
}

/** Where a secure site's certificate comes from and, for Let's Encrypt, its state (the health API shows it). */
export type CertificateStatus = { source: 'files' | 'letsencrypt' | 'self-signed' } & Partial<AcmeStatus>;

/** A site whose certificate comes from Let's Encrypt: secure, useLetsEnc, no certificate of its own, TLS ends here. */
export function usesLetsEncrypt(site: Http): boolean {
  return !!site.secure && !!site.useLetsEnc && !(site.ca && site.privateKey) && !(site.tls && site.destination);
}

/**
 * The TLS identities of this connector's `secure` sites, where TLS ends (the hub only passes the encrypted stream):
 * the site's `ca`+`privateKey`, else its Let's Encrypt certificate once issued (`useLetsEnc`), else a self-signed
 * certificate for the domain (with a warning; browsers will not trust it). Contexts are cached per domain and
 * rebuilt when the site's certificate settings change; the Let's Encrypt one is looked up per connection, so a new
 * or renewed certificate serves from the next handshake on.
 */
export class SiteCertificates {
  private readonly cache = new Map<string, { key: string; context: Promise<SecureContext> }>();

  constructor(
    private readonly logger: Logger,
    readonly acme: AcmeCertificates,
  ) {}

  /** Starts (or stops) obtaining certificates for the sites that use Let's Encrypt. */
  sync(sites: Http[]): void {
    this.acme.sync(sites.filter(usesLetsEncrypt).map((s) => s.domain));
  }

  /** Domains the hub refused earlier and routes here now: their certificates are ordered from now on. */
  accepted(domains: string[], sites: Http[]): void {
    const names = new Set(domains.map((d) => d.toLowerCase()));
    this.acme.accepted(
      sites.filter((s) => usesLetsEncrypt(s) && names.has(s.domain.toLowerCase())).map((s) => s.domain),
    );
  }

  /** Undefined for a site where TLS does not end here (not secure, or passed through with `tls`). */
  status(site: Http): CertificateStatus | undefined {
    if (!site.secure || (site.tls && site.destination)) return undefined;
    if (site.ca && site.privateKey) return { source: 'files' };
    if (usesLetsEncrypt(site))
      return { source: 'letsencrypt', ...(this.acme.status(site.domain) ?? { state: 'pending' }) };
    return { source: 'self-signed' };
  }

  context(site: Http): Promise<SecureContext> {
    const domain = site.domain.toLowerCase();
    const letsEncrypt = usesLetsEncrypt(site);
    if (letsEncrypt) {
      const issued = this.acme.context(domain);
      if (issued) return Promise.resolve(issued);
    }
    const key = JSON.stringify([site.ca ?? '', site.privateKey ?? '', letsEncrypt]);
    const hit = this.cache.get(domain);
    if (hit && hit.key === key) return hit.context;
    const context = this.build(site);
    this.cache.set(domain, { key, context });
    // A failure is not cached: the next connection tries again (e.g. after the file was fixed).
    context.catch(() => {
      if (this.cache.get(domain)?.context === context) this.cache.delete(domain);
    });
    return context;
  }

  private async build(site: Http): Promise<SecureContext> {
    if (site.ca && site.privateKey) {
      const cert = await readPem(site.ca, `site ${site.domain} ca`);
      const key = await readPem(site.privateKey, `site ${site.domain} privateKey`);
      try {
        return createSecureContext({ cert, key });
      } catch (err) {
        throw new SiteCertificateError(`site ${site.domain}: certificate and key: ${(err as Error).message}`);
      }
    }
    if (usesLetsEncrypt(site)) {
      this.logger.warn(`site ${site.domain}: no Let's Encrypt certificate yet: serving a self-signed one meanwhile`);
    } else {
      this.logger.warn(
        `site ${site.domain}: no ca/privateKey: serving a self-signed certificate (browsers will warn; set ca and privateKey or useLetsEnc)`,
      );
    }
    const pair = await createSelfSignedCertificate(site.domain, [site.domain]);
    return createSecureContext({ cert: pair.cert, key: pair.key });
  }
}

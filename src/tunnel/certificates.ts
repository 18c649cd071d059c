import { randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';

export interface CertificatePair {
  /** PEM certificate (chain). */
  cert: string;
  /** PEM private key. */
  key: string;
  /** `sha256:AB:CD:..`, the form NodePass's verify signal carries. */
  fingerprint: string;
}

export function fingerprintOf(certPem: string): string {
  return `sha256:${new X509Certificate(certPem).fingerprint256}`;
}

/**
 * A fresh in-memory self-signed ECDSA P-256 certificate valid for one year (NodePass tls=1).
 * @peculiar/x509 is loaded on first use: most processes never need it and it costs start-up time.
 */
export async function createSelfSignedCertificate(
  commonName = 'porthole',
  hosts: string[] = [],
): Promise<CertificatePair> {
  // @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill first.
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + 365 * 24 * 3600 * 1000);
  const names = hosts.map((h) => ({ type: /^[\d.]+$|:/.test(h) ? ('ip' as const) : ('dns' as const), value: h }));
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(16)
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    name: `CN=${commonName}`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8
    .toString('base64')
    .replace(/.{64}/g, '$&\n')
    .replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  const cert = certificate.toString('pem');
  return { cert, key, fingerprint: fingerprintOf(cert) };
}

/** Reads a PEM certificate and key from files and checks that they parse. */
export async function loadCertificateFiles(crtPath: string, keyPath: string): Promise<CertificatePair> {
  const [cert, key] = await Promise.all([readFile(crtPath, 'utf8'), readFile(keyPath, 'utf8')]);
  const fingerprint = fingerprintOf(cert);
  return { cert, key, fingerprint };
}

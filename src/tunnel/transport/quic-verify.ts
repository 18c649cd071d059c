import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { checkServerIdentity, rootCertificates } from 'node:tls';
import type { Logger } from '../../common/logger.js';

/** Longest chain walked from the leaf to a trusted certificate. */
const MAX_DEPTH = 8;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

let trusted: X509Certificate[] | undefined;

/**
 * The certificates a tls=2 client trusts, as Node's TLS does: the bundled Mozilla roots plus NODE_EXTRA_CA_CERTS.
 * Parsed once per process.
 */
function trustedCertificates(logger: Logger): X509Certificate[] {
  if (trusted) return trusted;
  const pems = [...rootCertificates];
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra) {
    try {
      pems.push(
        ...(readFileSync(extra, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []),
      );
    } catch (err) {
      logger.warn(`NODE_EXTRA_CA_CERTS ${extra} unreadable for the QUIC pool: ${(err as Error).message}`);
    }
  }
  trusted = pems.flatMap((pem) => {
    try {
      return [new X509Certificate(pem)];
    } catch {
      return [];
    }
  });
  return trusted;
}

function inValidity(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
}

/**
 * Verifies a QUIC server's certificate chain (DER, leaf first) for `name` the way a Node TLS client would with
 * `rejectUnauthorized`: every certificate in its validity period, the leaf good for TLS servers and for `name`
 * (tls.checkServerIdentity, so IP literals and wildcards follow Node's rules), and a chain of signatures from the
 * leaf through the peer's intermediates to a trusted certificate. A trusted certificate may be the leaf itself: a
 * self-signed server certificate given in NODE_EXTRA_CA_CERTS is accepted, as Node (and NodePass's Go client) accept
 * it; quiche's BoringSSL would not, which is why the check is done here. Not checked: name constraints, policies,
 * revocation (Node's default checks none of those either, bar name constraints).
 * Returns why the chain is refused, or undefined when it is good.
 */
export function verifyServerChain(chain: Uint8Array[], name: string, logger: Logger): string | undefined {
  const now = Date.now();
  let certs: X509Certificate[];
  try {
    certs = chain.map((der) => new X509Certificate(der));
  } catch (err) {
    return `unparsable certificate: ${(err as Error).message}`;
  }
  const leaf = certs[0];
  if (leaf === undefined) return 'no certificate';
  for (const cert of certs) if (!inValidity(cert, now)) return `certificate ${cert.subject} expired or not yet valid`;
  if (leaf.keyUsage !== undefined && !leaf.keyUsage.includes(SERVER_AUTH)) return 'certificate not for TLS servers';
  const identity = checkServerIdentity(name, leaf.toLegacyObject());
  if (identity) return identity.message;
  const roots = trustedCertificates(logger);
  let current = leaf;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (roots.some((root) => root.fingerprint256 === current.fingerprint256)) return undefined;
    const root = roots.find((r) => r.ca && current.checkIssued(r) && current.verify(r.publicKey));
    if (root) return inValidity(root, now) ? undefined : `trusted certificate ${root.subject} expired`;
    const next = certs.find((c) => c !== current && c.ca && current.checkIssued(c) && current.verify(c.publicKey));
    if (next === undefined) return `certificate not trusted (issuer ${current.issuer.replace(/\n/g, ', ')})`;
    current = next;
  }
  return 'certificate chain too long';
}

import { request } from 'node:https';
import acme from 'acme-client';
import type { Logger } from '../common/logger.js';
import { type AcmeStore, checkCertificate, type IssuedCertificate } from './acme-store.js';

export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

/** A request to the ACME directory that gets no answer fails after this long instead of hanging issuance. */
const HTTP_TIMEOUT = 30_000;

/**
 * acme-client retries failed requests itself (5 times, 5 s apart and growing: over a minute); our own retry with
 * backoff covers longer outages, so a failure is reported after two quick retries instead.
 */
function limitClientRetries(): void {
  acme.axios.defaults.timeout = HTTP_TIMEOUT;
  const settings = (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number; retryDefaultDelay: number } })
    .acmeSettings;
  if (settings) {
    settings.retryMaxAttempts = 2;
    settings.retryDefaultDelay = 2;
  }
}

/** Why the directory cannot be fetched (network error or HTTP status), or undefined when it answers 200. */
function probeDirectory(url: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    let req: ReturnType<typeof request>;
    try {
      req = request(url, { method: 'GET', timeout: 10_000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`);
      });
    } catch (err) {
      resolve((err as Error).message);
      return;
    }
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (err) => resolve(err.message));
    req.end();
  });
}

export class AcmeIssueError extends Error {
  override readonly name = 'AcmeIssueError';
}

/**
 * Talks to one ACME directory (acme-client): the account (key created once and kept in the store) and certificate
 * orders with HTTP-01 challenges. The challenge answers are held here until the CA has validated them; the site
 * handler serves them for `/.well-known/acme-challenge/<token>` through the tunnel (`challengeResponse`).
 */
export class AcmeIssuer {
  /** `domain token` → key authorization, while a challenge is pending. */
  private readonly challenges = new Map<string, string>();
  private client: Promise<acme.Client> | undefined;

  constructor(
    readonly directoryUrl: string,
    private readonly email: string | undefined,
    private readonly store: AcmeStore,
    private readonly logger: Logger,
  ) {
    limitClientRetries();
  }

  challengeResponse(domain: string, token: string): string | undefined {
    return this.challenges.get(`${domain.toLowerCase()} ${token}`);
  }

  /** The account client, created once; a failure is not kept, so the next issuance tries again. */
  private account(): Promise<acme.Client> {
    if (!this.client) {
      this.client = this.openAccount();
      this.client.catch(() => {
        this.client = undefined;
      });
    }
    return this.client;
  }

  private async openAccount(): Promise<acme.Client> {
    let saved = await this.store.loadAccount();
    if (!saved) {
      const key = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
      await this.store.saveAccountKey(key);
      this.logger.info(`ACME: new account key in ${this.store.dir}`);
      saved = { key, url: undefined };
    }
    const client = new acme.Client({
      directoryUrl: this.directoryUrl,
      accountKey: saved.key,
      ...(saved.url ? { accountUrl: saved.url } : {}),
      // Polls for the challenge and the order to become valid: start at 1 s (the default 5 s is slow on a fast CA).
      backoffAttempts: 12,
      backoffMin: 1000,
      backoffMax: 15_000,
    });
    if (!saved.url) {
      await client.createAccount({
        termsOfServiceAgreed: true,
        ...(this.email ? { contact: [`mailto:${this.email}`] } : {}),
      });
      await this.store.saveAccountUrl(client.getAccountUrl());
      this.logger.info(`ACME: account ${client.getAccountUrl()} registered at ${this.directoryUrl}`);
    }
    return client;
  }

  /** Orders a certificate for `domain` (new key each time) and returns it once the CA has issued it. */
  async issue(domain: string): Promise<IssuedCertificate> {
    const name = domain.toLowerCase();
    let client: acme.Client;
    try {
      client = await this.account();
    } catch (err) {
      throw new AcmeIssueError(`ACME account at ${this.directoryUrl}: ${await this.explain(err)}`);
    }
    // ECDSA P-256: smaller and several times faster to sign handshakes with than the default RSA 2048.
    const key = await acme.crypto.createPrivateEcdsaKey('P-256');
    const [, csr] = await acme.crypto.createCsr({ commonName: name, altNames: [name] }, key);
    let cert: string;
    try {
      cert = await client.auto({
        csr,
        ...(this.email ? { email: this.email } : {}),
        termsOfServiceAgreed: true,
        challengePriority: ['http-01'],
        // The CA itself is the judge: a self-check from here would need the public address to loop back (NAT).
        skipChallengeVerification: true,
        challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
          if (challenge.type !== 'http-01') throw new AcmeIssueError(`unsupported challenge ${challenge.type}`);
          this.challenges.set(`${name} ${challenge.token}`, keyAuthorization);
          this.logger.debug(`ACME: answering the HTTP-01 challenge of ${name} (token ${challenge.token})`);
        },
        challengeRemoveFn: async (_authz, challenge) => {
          this.challenges.delete(`${name} ${challenge.token}`);
        },
      });
    } catch (err) {
      for (const k of [...this.challenges.keys()]) if (k.startsWith(`${name} `)) this.challenges.delete(k);
      throw new AcmeIssueError(`certificate for ${name} from ${this.directoryUrl}: ${await this.explain(err)}`);
    }
    return checkCertificate(name, cert, key.toString());
  }

  /**
   * acme-client reports a network failure as a TypeError from inside its retry handler once its retries are spent;
   * the directory is fetched once more to name the real cause.
   */
  private async explain(err: unknown): Promise<string> {
    if (!(err instanceof TypeError)) return describe(err);
    const cause = await probeDirectory(this.directoryUrl);
    return cause ? `directory unreachable: ${cause}` : describe(err);
  }
}

/** acme-client rejects with axios errors or ACME problem documents; keep the part a user can act on. */
function describe(err: unknown): string {
  const e = err as { message?: string; code?: string; response?: { data?: { detail?: string } } };
  const detail = e.response?.data?.detail;
  return [e.message ?? String(err), e.code && !String(e.message).includes(e.code) ? e.code : '', detail ?? '']
    .filter((s) => s !== '')
    .join(': ');
}

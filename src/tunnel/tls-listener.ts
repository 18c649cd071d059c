import { createSecureContext } from 'node:tls';
import type { Logger } from '../common/logger.js';
import { type CertificatePair, createSelfSignedCertificate, loadCertificateFiles } from './certificates.js';

/**
 * The certificate of a TLS listener (NodePass tls 1|2). tls=2 re-reads crt/key every `reloadInterval` so renewed
 * certificates take effect without a restart; a pair that fails to load at start falls back to tls=1 with a warning.
 */
export class ListenerCertificate {
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    public current: CertificatePair,
    readonly mode: 1 | 2,
  ) {}

  static async create(
    tls: 1 | 2,
    crt: string,
    key: string,
    logger: Logger,
    hosts: string[] = [],
  ): Promise<ListenerCertificate> {
    if (tls === 2) {
      try {
        const pair = await loadCertificateFiles(crt, key);
        createSecureContext({ cert: pair.cert, key: pair.key });
        return new ListenerCertificate(pair, 2);
      } catch (err) {
        logger.warn(`TLS certificate ${crt} / key ${key} failed to load (${(err as Error).message}); using tls=1`);
      }
    }
    return new ListenerCertificate(await createSelfSignedCertificate('porthole', hosts), 1);
  }

  /** tls=2: re-reads the files every `interval` ms and hands a valid new pair to `apply`. */
  watch(crt: string, key: string, interval: number, logger: Logger, apply: (pair: CertificatePair) => void): void {
    if (this.mode !== 2) return;
    this.timer = setInterval(async () => {
      try {
        const pair = await loadCertificateFiles(crt, key);
        createSecureContext({ cert: pair.cert, key: pair.key });
        if (pair.fingerprint !== this.current.fingerprint) {
          this.current = pair;
          apply(pair);
          logger.info(`TLS certificate reloaded: ${pair.fingerprint}`);
        }
      } catch (err) {
        logger.warn(`TLS certificate reload failed, keeping the current one: ${(err as Error).message}`);
      }
    }, interval);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

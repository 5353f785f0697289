import type { ChallengeSink } from '../acme/order.js';
import type { StoredCertificate } from '../acme/store.js';
import type { AcmeChange, ToWorker } from './messages.js';
import type { WorkerPool } from './workers.js';

/**
 * The primary's ACME side of the workers: pending challenges and issued
 * certificates go to every worker (any of them may receive the CA's
 * validation connection), and a challenge counts as published once every
 * worker has applied it. What is in force is kept, so a worker that starts
 * (or is respawned) later gets it before it listens.
 */
export class AcmeRelay implements ChallengeSink {
  readonly #pool: () => WorkerPool | null;
  readonly #http = new Map<string, string>();
  readonly #alpn = new Map<string, StoredCertificate>();
  readonly #certificates = new Map<string, StoredCertificate>();

  constructor(pool: () => WorkerPool | null) {
    this.#pool = pool;
  }

  async http(token: string, keyAuthorization: string | null): Promise<void> {
    if (keyAuthorization === null) this.#http.delete(token);
    else this.#http.set(token, keyAuthorization);
    await this.#send({ kind: 'http', token, keyAuthorization });
  }

  async alpn(name: string, pem: StoredCertificate | null): Promise<void> {
    if (pem === null) this.#alpn.delete(name);
    else this.#alpn.set(name, pem);
    await this.#send({ kind: 'alpn', name, pem });
  }

  /** Serves an issued certificate on every worker. */
  certificate(name: string, pem: StoredCertificate): void {
    this.#certificates.set(name, pem);
    void this.#send({ kind: 'certificate', name, cert: pem.cert, key: pem.key });
  }

  /** What a new worker needs before it listens. */
  messages(): ToWorker[] {
    const changes: AcmeChange[] = [
      ...[...this.#certificates].map(([name, pem]): AcmeChange => ({ kind: 'certificate', name, cert: pem.cert, key: pem.key })),
      ...[...this.#http].map(([token, keyAuthorization]): AcmeChange => ({ kind: 'http', token, keyAuthorization })),
      ...[...this.#alpn].map(([name, pem]): AcmeChange => ({ kind: 'alpn', name, pem })),
    ];
    return changes.map((change) => ({ type: 'acme', id: 0, change }));
  }

  async #send(change: AcmeChange): Promise<void> {
    await this.#pool()?.acme(change);
  }
}

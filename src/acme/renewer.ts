import type { AcmeConfig } from '../config/static-schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { CertificateError, certificateFromPem, type LoadedCertificate } from '../proxy/certificates.js';
import { newAccountKey, orderCertificate, configureAcmeClient, type ChallengeSink } from './order.js';
import type { AcmeStore, StoredCertificate } from './store.js';

/** setTimeout's longest delay; longer waits are cut to this and checked again. */
const MAX_TIMER_MS = 2_147_483_647;

/** The names to hold certificates for now, and route hosts that cannot have one this way. */
export interface AcmeNames {
  readonly names: readonly string[];
  /** Wildcard or IP hosts of routes: HTTP-01 and TLS-ALPN-01 cannot prove them. */
  readonly skipped: readonly string[];
}

/** What the renewer uses besides its configuration. */
export interface AcmeRenewerOptions {
  readonly config: AcmeConfig;
  readonly store: AcmeStore;
  /** Publishes pending challenges to every listener of the node. */
  readonly sink: ChallengeSink;
  /** Serves a certificate for `name` on every TLS listener of the node. */
  readonly install: (name: string, cert: LoadedCertificate) => void;
  readonly names: () => AcmeNames;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/** Where one name stands. */
interface NameState {
  cert: LoadedCertificate | null;
  renewAt: number | null;
  lastError: string | null;
  lastAttempt: Date | null;
  lastIssued: Date | null;
  failures: number;
  retryAt: number;
}

/** When a certificate is due: `renewBefore` ahead of expiry, or at two thirds of its lifetime when that comes first. */
export function renewalTime(cert: { readonly notBefore: Date; readonly notAfter: Date }, renewBeforeMs: number): number {
  const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
  return cert.notAfter.getTime() - Math.min(renewBeforeMs, lifetime / 3);
}

/**
 * Keeps one ACME certificate per name current. At start it serves what the
 * store holds (a restart orders nothing); then it orders each name that has
 * no certificate or is due for renewal, one at a time and under the store's
 * lock (in a fleet, after the lock it reads the certificate again: another
 * node may have just renewed it). It looks again every `checkInterval` and
 * at the next renewal or retry time; a failed order is retried with doubling
 * waits. Certificates other nodes store are picked up as they change.
 */
export class AcmeRenewer {
  readonly #options: AcmeRenewerOptions;
  readonly #states = new Map<string, NameState>();
  #skipped: readonly string[] = [];
  #accountKey: string | null = null;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> = Promise.resolve();
  /** Checks wait for start: before it the listeners cannot answer challenges yet. */
  #started = false;
  #closed = false;

  constructor(options: AcmeRenewerOptions) {
    this.#options = options;
    // Registered with the renewer: a node without ACME exports no ACME series.
    void options.metrics.acme;
  }

  /** Serves the stored certificates, starts watching the store, and starts ordering in the background. */
  async start(): Promise<void> {
    configureAcmeClient(this.#options.config.caFile);
    const { names, skipped } = this.#options.names();
    this.#skipped = skipped;
    if (skipped.length > 0) this.#options.logger.warn({ hosts: skipped }, 'ACME skips wildcard and IP hosts: http-01 and tls-alpn-01 cannot prove them (give such names certificate files)');
    for (const name of names) await this.#fromStore(name);
    const { sink, store } = this.#options;
    try {
      const failed = (what: string) => (err: Error) => this.#options.logger.error({ err: err.message, what }, 'ACME: a change from the store could not be applied');
      await store.watch({
        certificate: (name) => this.#fromStore(name).catch(failed(`certificate ${name}`)),
        challenge: (change) => Promise.resolve(change.kind === 'http' ? sink.http(change.token, change.keyAuthorization) : sink.alpn(change.name, change.pem)).catch(failed('challenge')),
      });
    } catch (err) {
      this.#options.logger.warn({ err: (err as Error).message }, 'cannot watch the shared ACME certificates; they are read again before each order');
    }
    this.#started = true;
    this.check();
  }

  /** Looks at every name now (after the run in progress), e.g. when the routes changed. */
  check(): void {
    if (!this.#started || this.#closed) return;
    this.#running = this.#running.then(() => this.#checkAll()).catch((err: Error) => this.#options.logger.error({ err: err.message }, 'ACME check failed'));
  }

  /** Stops ordering; an order in progress finishes first. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    await this.#running;
    await this.#options.store.close();
  }

  /** The certificates as the admin state shows them under `tls.acme`. */
  state(): Record<string, unknown> {
    const certificates = [...this.#states.entries()].map(([name, s]) => ({
      name,
      names: s.cert?.names ?? [name],
      issuer: s.cert?.issuer ?? null,
      notBefore: s.cert?.notBefore.toISOString() ?? null,
      notAfter: s.cert?.notAfter.toISOString() ?? null,
      renewAt: s.renewAt === null ? null : new Date(s.renewAt).toISOString(),
      lastAttempt: s.lastAttempt?.toISOString() ?? null,
      lastIssued: s.lastIssued?.toISOString() ?? null,
      lastError: s.lastError,
      nextRetry: s.lastError === null || s.retryAt === 0 ? null : new Date(s.retryAt).toISOString(),
    }));
    const { directory, challenge, email } = this.#options.config;
    return { directory, email, challenge, storage: this.#options.store.where, skipped: this.#skipped, certificates };
  }

  /** Names whose last attempt failed, for the admin state's errors. */
  problems(): { key: string; message: string }[] {
    const out: { key: string; message: string }[] = [];
    for (const [name, s] of this.#states) {
      if (s.lastError !== null) out.push({ key: `proxy.tls.acme.${name}`, message: `${s.lastError}${s.cert === null ? '' : ` (the certificate valid until ${s.cert.notAfter.toISOString()} stays)`}` });
    }
    return out;
  }

  #state(name: string): NameState {
    let state = this.#states.get(name);
    if (state === undefined) {
      state = { cert: null, renewAt: null, lastError: null, lastAttempt: null, lastIssued: null, failures: 0, retryAt: 0 };
      this.#states.set(name, state);
    }
    return state;
  }

  /** Reads the stored certificate of `name` and serves it when it is newer than the one served; problems go to the state. */
  async #fromStore(name: string): Promise<void> {
    const state = this.#state(name);
    let stored: StoredCertificate | null;
    try {
      stored = await this.#options.store.load(name);
    } catch (err) {
      state.lastError = `cannot read the stored certificate: ${(err as Error).message}`;
      this.#options.logger.warn({ name, err: (err as Error).message }, 'cannot read the stored ACME certificate; the one served stays');
      return;
    }
    if (stored === null) return;
    try {
      const cert = certificateFromPem({ cert: `acme:${name}`, key: `acme:${name}` }, stored.cert, stored.key, this.#options.minVersion);
      if (state.cert !== null && cert.notAfter.getTime() <= state.cert.notAfter.getTime()) return;
      this.#serve(name, state, cert);
      this.#options.logger.info({ name, notAfter: cert.notAfter.toISOString(), store: this.#options.store.where }, 'ACME certificate loaded from the store');
    } catch (err) {
      if (!(err instanceof CertificateError)) throw err;
      state.lastError = `the stored certificate cannot be used: ${err.message}`;
    }
  }

  #serve(name: string, state: NameState, cert: LoadedCertificate): void {
    state.cert = cert;
    state.renewAt = renewalTime(cert, this.#options.config.renewBefore);
    state.lastError = null;
    state.failures = 0;
    state.retryAt = 0;
    this.#options.install(name, cert);
  }

  async #checkAll(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const { names, skipped } = this.#options.names();
    this.#skipped = skipped;
    for (const name of names) {
      if (this.#closed) return;
      const state = this.#state(name);
      const now = Date.now();
      if (state.cert !== null && state.renewAt !== null && now < state.renewAt) continue;
      if (now < state.retryAt) continue;
      await this.#order(name, state);
    }
    this.#schedule(names);
  }

  #schedule(names: readonly string[]): void {
    if (this.#closed) return;
    const now = Date.now();
    let next = now + this.#options.config.checkInterval;
    for (const name of names) {
      const state = this.#state(name);
      const due = state.lastError !== null && state.retryAt > 0 ? state.retryAt : (state.renewAt ?? now);
      next = Math.min(next, due);
    }
    this.#timer = setTimeout(() => this.check(), Math.min(MAX_TIMER_MS, Math.max(100, next - now)));
    this.#timer.unref();
  }

  async #order(name: string, state: NameState): Promise<void> {
    const { config, store, logger, metrics } = this.#options;
    state.lastAttempt = new Date();
    try {
      await store.exclusive(async () => {
        // Another node may have renewed it while this one waited for the lock.
        await this.#fromStore(name);
        if (state.cert !== null && state.renewAt !== null && Date.now() < state.renewAt) return;
        const accountKey = await this.#account();
        logger.info({ name, challenge: config.challenge, directory: config.directory }, 'ordering an ACME certificate');
        let issued: StoredCertificate;
        try {
          issued = await orderCertificate({ directory: config.directory, email: config.email, accountKey, challenge: config.challenge, name, sink: this.#sharedSink });
        } catch (err) {
          metrics.acme.orders.inc({ result: 'failed' });
          throw err;
        }
        metrics.acme.orders.inc({ result: 'issued' });
        const cert = certificateFromPem({ cert: `acme:${name}`, key: `acme:${name}` }, issued.cert, issued.key, this.#options.minVersion);
        await store.save(name, issued);
        state.lastIssued = new Date();
        this.#serve(name, state, cert);
        logger.info({ name, notAfter: cert.notAfter.toISOString(), renewAt: new Date(state.renewAt ?? 0).toISOString() }, 'ACME certificate issued');
      });
    } catch (err) {
      state.failures++;
      const waitMs = Math.min(config.retryAfter * 2 ** Math.min(state.failures - 1, 30), Math.max(config.retryAfter, config.checkInterval));
      state.retryAt = Date.now() + waitMs;
      state.lastError = (err as Error).message;
      logger.warn({ name, err: state.lastError, retryInMs: waitMs }, 'ACME order failed; retrying later');
    }
  }

  /** Challenges go to this node's listeners and, in a fleet, to every other node's (the CA may validate on any of them). */
  readonly #sharedSink: ChallengeSink = {
    http: async (token, keyAuthorization) => {
      await Promise.all([this.#options.sink.http(token, keyAuthorization), this.#options.store.shareChallenge({ kind: 'http', token, keyAuthorization })]);
    },
    alpn: async (name, pem) => {
      await Promise.all([this.#options.sink.alpn(name, pem), this.#options.store.shareChallenge({ kind: 'alpn', name, pem })]);
    },
  };

  /** The account key: the stored one, else a new one (stored before first use, so one account serves every order). */
  async #account(): Promise<string> {
    if (this.#accountKey !== null) return this.#accountKey;
    let key = await this.#options.store.loadAccount();
    if (key === null) {
      key = await newAccountKey();
      await this.#options.store.saveAccount(key);
      this.#options.logger.info({ store: this.#options.store.where }, 'ACME account key created');
    }
    this.#accountKey = key;
    return key;
  }
}

import { performance } from 'node:perf_hooks';
import type { TlsConfig } from '../config/static-schema.js';
import { ConfigError } from '../config/issues.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { CertificateError, CertificateIndex, filesVersion, loadCertificate, type LoadedCertificate } from './certificates.js';
import { placeholderCertificate, type PemPair } from './placeholder-certificate.js';

/** How often certificate files are looked at for changes. */
const CHECK_MS = 1_000;

/** What the admin state shows of any loaded certificate. */
function certificateView(c: LoadedCertificate): Record<string, unknown> {
  return {
    names: c.names,
    subject: c.subject,
    issuer: c.issuer,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    fingerprint256: c.fingerprint256,
    loadedAt: c.loadedAt.toISOString(),
  };
}

/** A certificate's problem as the admin state lists it. */
export interface CertificateProblem {
  readonly key: string;
  readonly message: string;
}

/**
 * The configured certificates, served and kept current: every file is read at
 * start (a node does not start on an unusable one), then looked at every
 * second; a changed pair is read again and swapped in when it is usable,
 * else the certificate in force stays and the problem is shown (state errors,
 * a warn log line, a counter). New connections get the new certificate;
 * connections already open keep theirs.
 */
export class CertificateSet {
  readonly #config: TlsConfig;
  readonly #logger: Logger;
  readonly #metrics: Metrics | null;
  readonly #loaded: LoadedCertificate[];
  /** Per configured certificate: the problem with its files now, if any. */
  readonly #problems: (string | null)[];
  /** Per configured certificate: the files' version last looked at (loaded or refused). */
  readonly #seen: string[];
  /** Certificates ACME issued, by the name each was ordered for; configured files win a name both cover. */
  readonly #issued = new Map<string, LoadedCertificate>();
  /** Presented while nothing else is there (no files configured, nothing issued yet). */
  readonly #placeholder: LoadedCertificate | null;
  #index: CertificateIndex;
  #timer: NodeJS.Timeout | null = null;
  readonly #listeners: ((index: CertificateIndex) => void)[] = [];

  /**
   * Loads every certificate; throws a ConfigError listing each unusable one.
   * Reloads are counted in `metrics` when given. `placeholder` is served
   * until ACME issues something when no file is configured.
   */
  constructor(config: TlsConfig, logger: Logger, metrics: Metrics | null, placeholder: PemPair | null = null) {
    this.#config = config;
    this.#logger = logger;
    this.#metrics = metrics;
    const loaded: LoadedCertificate[] = [];
    const issues: { path: string; message: string }[] = [];
    config.certificates.forEach((files, i) => {
      try {
        loaded.push(loadCertificate(files, config.minVersion));
      } catch (err) {
        if (!(err instanceof CertificateError)) throw err;
        issues.push({ path: `proxy.tls.certificates.${i}`, message: err.message });
      }
    });
    if (issues.length > 0) throw new ConfigError(issues);
    this.#loaded = loaded;
    this.#problems = loaded.map(() => null);
    this.#seen = loaded.map((c) => c.version);
    this.#placeholder = placeholder === null ? null : placeholderCertificate(placeholder, config.minVersion);
    this.#index = this.#build();
    for (const cert of loaded) this.#warnIfExpired(cert);
    metrics?.tls.watchCertificates(() => this.expiries());
  }

  /** Each certificate served (files, then what ACME issued) by name, with its expiry: files by their first name, ACME by the name ordered. */
  *expiries(): Generator<readonly [string, Date]> {
    for (const c of this.#loaded) yield [c.names[0] as string, c.notAfter];
    for (const [name, c] of this.#issued) yield [name, c.notAfter];
  }

  /** The index in force (which certificate answers which name). */
  get index(): CertificateIndex {
    return this.#index;
  }

  /** Calls `listener` with the new index after every swap. */
  onChange(listener: (index: CertificateIndex) => void): void {
    this.#listeners.push(listener);
  }

  /** Starts looking at the files for changes. */
  watch(): void {
    this.#timer = setInterval(() => this.check(), CHECK_MS);
    this.#timer.unref();
  }

  /** Stops looking. */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Reads again every certificate whose files changed since they were last looked at; returns whether one was swapped in. */
  check(): boolean {
    let swapped = false;
    this.#config.certificates.forEach((files, i) => {
      const version = filesVersion(files);
      if (version === this.#seen[i]) return;
      this.#seen[i] = version;
      const startedAt = performance.now();
      try {
        const cert = loadCertificate(files, this.#config.minVersion);
        this.#loaded[i] = cert;
        this.#problems[i] = null;
        swapped = true;
        this.#metrics?.tls.certificateReloads.inc({ result: 'applied' });
        this.#logger.info({ cert: files.cert, names: cert.names, notAfter: cert.notAfter.toISOString(), ms: Math.round(performance.now() - startedAt) }, 'certificate reloaded');
        this.#warnIfExpired(cert);
      } catch (err) {
        if (!(err instanceof CertificateError)) throw err;
        this.#problems[i] = err.message;
        this.#metrics?.tls.certificateReloads.inc({ result: 'rejected' });
        this.#logger.warn({ cert: files.cert, err: err.message }, 'certificate files changed but cannot be used; the certificate in force stays');
      }
    });
    if (swapped) this.#swap();
    return swapped;
  }

  /** Serves a certificate ACME issued for `name` (replacing the one before it) to new connections. */
  setIssued(name: string, cert: LoadedCertificate): void {
    this.#issued.set(name, cert);
    this.#swap();
  }

  /** The certificate ACME issued for `name` that is served, if any. */
  issued(name: string): LoadedCertificate | undefined {
    return this.#issued.get(name);
  }

  #build(): CertificateIndex {
    const all = [...this.#loaded, ...this.#issued.values()];
    if (all.length === 0 && this.#placeholder !== null) all.push(this.#placeholder);
    return new CertificateIndex(all);
  }

  #swap(): void {
    this.#index = this.#build();
    for (const listener of this.#listeners) listener(this.#index);
  }

  /** Problems to list in the admin state's errors. */
  problems(): CertificateProblem[] {
    const out: CertificateProblem[] = [];
    this.#problems.forEach((message, i) => {
      if (message !== null) out.push({ key: `proxy.tls.certificates.${i}`, message: `${message} (the certificate loaded ${this.#loaded[i]?.loadedAt.toISOString()} stays)` });
    });
    return out;
  }

  /** The certificates as the admin state shows them (files first, then what ACME issued). */
  state(): Record<string, unknown>[] {
    const files = this.#loaded.map((c, i) => ({ cert: c.files.cert, ...certificateView(c), error: this.#problems[i] }));
    const issued = [...this.#issued.values()].map((c) => ({ acme: c.names[0], ...certificateView(c) }));
    return [...files, ...issued];
  }

  #warnIfExpired(cert: LoadedCertificate): void {
    const now = Date.now();
    if (cert.notAfter.getTime() < now) this.#logger.warn({ cert: cert.files.cert, notAfter: cert.notAfter.toISOString() }, 'certificate has expired; clients will refuse it');
    else if (cert.notBefore.getTime() > now) this.#logger.warn({ cert: cert.files.cert, notBefore: cert.notBefore.toISOString() }, 'certificate is not valid yet');
  }
}

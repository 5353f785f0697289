import { performance } from 'node:perf_hooks';
import type { TlsConfig } from '../config/static-schema.js';
import { ConfigError } from '../config/issues.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { CertificateError, CertificateIndex, filesVersion, loadCertificate, type LoadedCertificate } from './certificates.js';

/** How often certificate files are looked at for changes. */
const CHECK_MS = 1_000;

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
  #index: CertificateIndex;
  #timer: NodeJS.Timeout | null = null;
  readonly #listeners: ((index: CertificateIndex) => void)[] = [];

  /** Loads every certificate; throws a ConfigError listing each unusable one. Reloads are counted in `metrics` when given. */
  constructor(config: TlsConfig, logger: Logger, metrics: Metrics | null) {
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
    this.#index = new CertificateIndex(loaded);
    for (const cert of loaded) this.#warnIfExpired(cert);
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
        this.#metrics?.tlsCertificateReloads.inc({ result: 'applied' });
        this.#logger.info({ cert: files.cert, names: cert.names, notAfter: cert.notAfter.toISOString(), ms: Math.round(performance.now() - startedAt) }, 'certificate reloaded');
        this.#warnIfExpired(cert);
      } catch (err) {
        if (!(err instanceof CertificateError)) throw err;
        this.#problems[i] = err.message;
        this.#metrics?.tlsCertificateReloads.inc({ result: 'rejected' });
        this.#logger.warn({ cert: files.cert, err: err.message }, 'certificate files changed but cannot be used; the certificate in force stays');
      }
    });
    if (swapped) {
      this.#index = new CertificateIndex(this.#loaded);
      for (const listener of this.#listeners) listener(this.#index);
    }
    return swapped;
  }

  /** Problems to list in the admin state's errors. */
  problems(): CertificateProblem[] {
    const out: CertificateProblem[] = [];
    this.#problems.forEach((message, i) => {
      if (message !== null) out.push({ key: `proxy.tls.certificates.${i}`, message: `${message} (the certificate loaded ${this.#loaded[i]?.loadedAt.toISOString()} stays)` });
    });
    return out;
  }

  /** The certificates as the admin state shows them. */
  state(): Record<string, unknown>[] {
    return this.#loaded.map((c, i) => ({
      cert: c.files.cert,
      names: c.names,
      subject: c.subject,
      issuer: c.issuer,
      notBefore: c.notBefore.toISOString(),
      notAfter: c.notAfter.toISOString(),
      fingerprint256: c.fingerprint256,
      loadedAt: c.loadedAt.toISOString(),
      error: this.#problems[i],
    }));
  }

  #warnIfExpired(cert: LoadedCertificate): void {
    const now = Date.now();
    if (cert.notAfter.getTime() < now) this.#logger.warn({ cert: cert.files.cert, notAfter: cert.notAfter.toISOString() }, 'certificate has expired; clients will refuse it');
    else if (cert.notBefore.getTime() > now) this.#logger.warn({ cert: cert.files.cert, notBefore: cert.notBefore.toISOString() }, 'certificate is not valid yet');
  }
}

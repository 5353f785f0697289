import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * etcd store series, registered by the etcd store: a file-mode node exports
 * none, rather than an `etcd_connected 0` that would page someone.
 */
export class EtcdMetrics {
  readonly connected: Gauge;
  readonly keysRejected: Gauge;
  readonly rolloutTransitions: Counter<'service' | 'result'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.connected = new Gauge({ name: 'meridian_etcd_connected', help: 'Whether the etcd store is connected (1) or not (0).', registers, aggregator: 'max' });
    this.keysRejected = new Gauge({ name: 'meridian_etcd_keys_rejected', help: 'etcd keys whose current value is rejected (their last valid version stays in force).', registers, aggregator: 'max' });
    this.rolloutTransitions = new Counter({
      name: 'meridian_rollout_transitions_total',
      help: 'Rollout transitions (started, advanced, paused, resumed, promoted, succeeded, failed, aborted), counted by the node leading rollouts when it saw them: sum over nodes.',
      labelNames: ['service', 'result'],
      registers,
    });
  }
}

/** Where the certificates a process serves are read from: one name per certificate, with its expiry. */
export type CertificateExpiries = () => Iterable<readonly [name: string, notAfter: Date]>;

/** TLS listener series, registered only with `proxy.tls`. */
export class TlsMetrics {
  readonly handshakeErrors: Counter<'reason'>;
  readonly certificateReloads: Counter<'result'>;
  readonly certificateExpiry: Gauge<'name'>;
  readonly #sources: CertificateExpiries[] = [];

  constructor(registry: Registry) {
    const registers = [registry];
    const sources = this.#sources;
    this.handshakeErrors = new Counter({ name: 'meridian_tls_handshake_errors_total', help: 'TLS connections that failed before their handshake completed, by reason (OpenSSL or socket error code).', labelNames: ['reason'], registers });
    this.certificateReloads = new Counter({ name: 'meridian_tls_certificate_reloads_total', help: 'Certificate files read again after they changed, by result (applied, or rejected: the previous certificate stays).', labelNames: ['result'], registers });
    this.certificateExpiry = new Gauge({
      name: 'meridian_tls_certificate_expiry_seconds',
      help: 'Seconds until the certificate served for a name expires (negative once expired): files by their first name, ACME by the name ordered; with workers, the soonest any process serves.',
      labelNames: ['name'],
      registers,
      aggregator: 'min',
      // Computed when scraped from the certificates in force: the value counts down without a timer, and a replaced or removed certificate leaves no series behind.
      collect() {
        const soonest = new Map<string, number>();
        for (const source of sources) {
          for (const [name, notAfter] of source()) soonest.set(name, Math.min(soonest.get(name) ?? Number.POSITIVE_INFINITY, notAfter.getTime()));
        }
        this.reset();
        const now = Date.now();
        for (const [name, notAfter] of soonest) this.set({ name }, Math.round((notAfter - now) / 1000));
      },
    });
  }

  /** Exports the expiry of the certificates `source` lists on every scrape. */
  watchCertificates(source: CertificateExpiries): void {
    this.#sources.push(source);
  }
}

/** ACME series, registered only with `proxy.tls.acme`. */
export class AcmeMetrics {
  readonly orders: Counter<'result'>;

  constructor(registry: Registry) {
    this.orders = new Counter({ name: 'meridian_acme_orders_total', help: 'ACME certificate orders this node made, by result (issued, failed).', labelNames: ['result'], registers: [registry] });
  }
}

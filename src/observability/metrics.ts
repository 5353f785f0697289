import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { meridianVersion } from './build-info.js';
import { AcmeMetrics, EtcdMetrics, TlsMetrics } from './optional-metrics.js';
import { SeriesHistogram, type HistogramSeries } from './series-histogram.js';
import { TableGauges } from './table-metrics.js';

/** Upper bounds of the request latency histogram, in seconds. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** Pre-resolved metric children for one route/service/version/region: nothing is hashed per request. */
export interface RequestSeries {
  /** Records one finished request: status class from the status code, duration in seconds. */
  observe(status: number, seconds: number): void;
}

type CounterChild = { inc(value: number): void };

/**
 * One series' children per status class, created on first use. Request counts
 * are kept as plain numbers and handed to prom-client when it collects, which
 * keeps its per-call label hashing off the request path.
 */
class StatusSeries implements RequestSeries {
  readonly #counts = [0, 0, 0, 0, 0];
  readonly #counters: (CounterChild | undefined)[] = [];
  readonly #histograms: (HistogramSeries | undefined)[] = [];
  readonly #labels: LabelSet;
  readonly #metrics: Metrics;

  constructor(metrics: Metrics, labels: LabelSet) {
    this.#metrics = metrics;
    this.#labels = labels;
  }

  observe(status: number, seconds: number): void {
    const i = Math.min(4, Math.max(0, ((status / 100) | 0) - 1));
    this.#counts[i] = (this.#counts[i] as number) + 1;
    (this.#histograms[i] ?? this.#histogram(i)).observe(seconds);
  }

  /** Moves the counts recorded since the last collection into the request counter. */
  flush(): void {
    for (let i = 0; i < 5; i++) {
      const n = this.#counts[i] as number;
      if (n === 0) continue;
      this.#counts[i] = 0;
      (this.#counters[i] ??= this.#metrics.requests.labels({ ...this.#labels, status_class: STATUS_CLASSES[i] as string })).inc(n);
    }
  }

  #histogram(i: number): HistogramSeries {
    const child = this.#metrics.duration.series({ ...this.#labels, status_class: STATUS_CLASSES[i] as string });
    this.#histograms[i] = child;
    return child;
  }
}

interface LabelSet {
  route: string;
  service: string;
  version: string;
  region: string;
}

/**
 * Every metric Meridian exports, in one registry: its own named `meridian_*`,
 * Node's runtime metrics under their standard names (`process_*`, `nodejs_*`)
 * so stock dashboards read them. Series of parts a node may not run (etcd,
 * TLS, ACME; GeoDNS in dns/dns-metrics.ts) are registered by those parts.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'service' | 'version' | 'region' | 'status_class'>;
  readonly duration: SeriesHistogram;
  readonly upstreamErrors: Counter<'service' | 'region' | 'code'>;
  readonly proxyErrors: Counter<'code'>;
  readonly configReloads: Counter<'source' | 'result'>;
  readonly configRevision: Gauge;
  readonly configObjectsRejected: Gauge;
  readonly configRejected: Counter<'source' | 'reason'>;
  readonly openConnections: Gauge;
  readonly connectionsRefused: Counter;
  readonly h2SessionsClosed: Counter<'reason'>;
  readonly requestTrailersDropped: Counter;
  /** meridian_endpoint_up, meridian_endpoint_drained and meridian_version_weight, read from the table in force. */
  readonly table: TableGauges;
  readonly accessLogDropped: Counter;
  readonly healthChecks: Counter<'result'>;
  readonly ejections: Counter<'reason'>;
  readonly retries: Counter<'service' | 'reason'>;
  readonly retriesDenied: Counter<'service'>;
  readonly failovers: Counter<'service' | 'from' | 'to'>;
  #etcd: EtcdMetrics | null = null;
  #tls: TlsMetrics | null = null;
  #acme: AcmeMetrics | null = null;
  readonly #series = new Map<string, StatusSeries>();

  constructor(options: { defaultMetrics: boolean }) {
    const registers = [this.registry];
    const requestLabels = ['route', 'service', 'version', 'region', 'status_class'] as const;
    const series = this.#series;
    this.requests = new Counter({
      name: 'meridian_requests_total',
      help: 'Proxied requests by route, service, version, region and status class.',
      labelNames: requestLabels,
      registers,
      collect() {
        for (const s of series.values()) s.flush();
      },
    });
    this.duration = new SeriesHistogram({
      name: 'meridian_request_duration_seconds',
      help: 'Time from request arrival to the last response byte, by route, service, version, region and status class.',
      buckets: LATENCY_BUCKETS,
      registry: this.registry,
    });
    this.upstreamErrors = new Counter({ name: 'meridian_upstream_errors_total', help: 'Failed upstream attempts by service, region and error code.', labelNames: ['service', 'region', 'code'], registers });
    this.proxyErrors = new Counter({ name: 'meridian_proxy_errors_total', help: 'Responses produced by Meridian itself, by error code.', labelNames: ['code'], registers });
    // A node with workers sums its processes' metrics; what every process holds a copy of is not summed.
    this.configReloads = new Counter({ name: 'meridian_config_reloads_total', help: 'Routing-table applies by source and result (applied, rejected, unchanged).', labelNames: ['source', 'result'], registers, aggregator: 'max' });
    this.configRevision = new Gauge({ name: 'meridian_config_revision', help: 'Revision of the routing table in force (with workers: the lowest any process serves).', registers, aggregator: 'min' });
    this.configRejected = new Counter({
      name: 'meridian_config_rejected_total',
      help: 'Routing-table changes refused, by source (file, etcd) and reason (unreadable, syntax, schema, reference, empty); the table in force stays.',
      labelNames: ['source', 'reason'],
      registers,
    });
    this.configObjectsRejected = new Gauge({ name: 'meridian_config_errors', help: 'Routing-table problems currently reported in the admin state.', registers, aggregator: 'max' });
    this.openConnections = new Gauge({ name: 'meridian_open_connections', help: 'Client connections open on the proxy listener.', registers });
    this.requestTrailersDropped = new Counter({ name: 'meridian_request_trailers_dropped_total', help: 'Proxied requests whose client sent trailers, which are not relayed upstream (the upstream client library cannot send request trailers).', registers });
    this.accessLogDropped = new Counter({ name: 'meridian_access_log_dropped_total', help: 'Access log lines not written: the writer fell behind (buffer full), or the file or stdout refused them.', registers });
    this.h2SessionsClosed = new Counter({ name: 'meridian_http2_connections_closed_total', help: 'HTTP/2 client connections Meridian closed for abuse, by reason (rapid-reset, protocol-error: floods, invalid frames, oversized headers).', labelNames: ['reason'], registers });
    this.connectionsRefused = new Counter({ name: 'meridian_connections_refused_total', help: 'Client connections closed on arrival because proxy.maxConnections were open.', registers });
    this.table = new TableGauges(this.registry);
    this.healthChecks = new Counter({ name: 'meridian_health_checks_total', help: 'Active health checks by result (ok, or the failure reason).', labelNames: ['result'], registers });
    this.ejections = new Counter({ name: 'meridian_ejections_total', help: 'Endpoints taken out of rotation by passive signals, by reason.', labelNames: ['reason'], registers });
    this.retries = new Counter({ name: 'meridian_retries_total', help: 'Requests sent again after a failed try, by service and the failure that caused it.', labelNames: ['service', 'reason'], registers });
    this.retriesDenied = new Counter({ name: 'meridian_retries_denied_total', help: 'Retries not made because the service retry budget was spent.', labelNames: ['service'], registers });
    this.failovers = new Counter({ name: 'meridian_failovers_total', help: 'Retries that moved a request to another region, by service and regions.', labelNames: ['service', 'from', 'to'], registers });
    const build = new Gauge({ name: 'meridian_build_info', help: 'Always 1: the Meridian version and the Node.js version running it, as labels.', labelNames: ['version', 'node'], registers, aggregator: 'max' });
    build.set({ version: meridianVersion(), node: process.version }, 1);
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The etcd store's series, registered on first use (etcd mode only). */
  get etcd(): EtcdMetrics {
    return (this.#etcd ??= new EtcdMetrics(this.registry));
  }

  /** The TLS listener's series, registered on first use (with proxy.tls only). */
  get tls(): TlsMetrics {
    return (this.#tls ??= new TlsMetrics(this.registry));
  }

  /** The ACME renewer's series, registered on first use (with proxy.tls.acme only). */
  get acme(): AcmeMetrics {
    return (this.#acme ??= new AcmeMetrics(this.registry));
  }

  /** The cached series for a label set; created on first use. */
  series(labels: LabelSet): RequestSeries {
    const key = `${labels.route}\u0000${labels.service}\u0000${labels.version}\u0000${labels.region}`;
    let series = this.#series.get(key);
    if (series === undefined) {
      series = new StatusSeries(this, labels);
      this.#series.set(key, series);
    }
    return series;
  }

  /** Deletes series of routes no longer in the routing table, so dashboards do not show ghosts. */
  retainRoutes(routes: ReadonlySet<string>): void {
    for (const [key, _series] of this.#series) {
      const [route, service, version, region] = key.split('\u0000') as [string, string, string, string];
      // Route '' counts requests no route matched: it outlives every table.
      if (route === '' || routes.has(route)) continue;
      this.#series.delete(key);
      for (const status_class of STATUS_CLASSES) {
        const labels = { route, service, version, region, status_class };
        this.requests.remove(labels);
        this.duration.remove(labels);
      }
    }
  }
}

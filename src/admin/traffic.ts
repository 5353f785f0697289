import type { LabelValues, MetricObjectWithValues, MetricValue, MetricValueWithName } from 'prom-client';

/** Metrics as prom-client's registries export them to JSON (the form workers send their primary). */
export type MetricsJson = readonly MetricObjectWithValues<MetricValue<string>>[];

const REQUESTS = 'meridian_requests_total';
const DURATION = 'meridian_request_duration_seconds';
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** Cumulative figures of one route/service/version/region since the node started (or since its series appeared). */
export interface TrafficSeries {
  readonly route: string;
  readonly service: string;
  readonly version: string;
  readonly region: string;
  /** Finished requests by status class. */
  readonly requests: Record<(typeof STATUS_CLASSES)[number], number>;
  /** Request duration over every status class: cumulative counts per bound of `bucketsSeconds`, then +Inf (= count). */
  readonly latency: { buckets: number[]; count: number; sum: number };
}

/** The document served at `GET /api/v1/traffic`: two of them, polled apart, give rates, error ratios and percentiles. */
export interface TrafficDocument {
  /** When the figures were read (ISO time) and the same in ms since the epoch, for rates. */
  readonly at: string;
  readonly timeMs: number;
  /** Upper bounds of the latency buckets, in seconds (the +Inf bucket follows them in every series). */
  readonly bucketsSeconds: number[];
  readonly series: TrafficSeries[];
}

function label(labels: LabelValues<string>, name: string): string {
  const value = labels[name];
  return value === undefined ? '' : String(value);
}

/**
 * Builds the traffic document from the same metrics /metrics exports (with
 * workers, the registry aggregated over them), so the two always agree.
 * Requests no route matched are the series whose route is ''.
 */
export function trafficDocument(metrics: MetricsJson, now = Date.now()): TrafficDocument {
  const bySeries = new Map<string, TrafficSeries>();
  const seriesOf = (labels: LabelValues<string>, bounds: number): TrafficSeries => {
    const names = { route: label(labels, 'route'), service: label(labels, 'service'), version: label(labels, 'version'), region: label(labels, 'region') };
    const key = `${names.route}\u0000${names.service}\u0000${names.version}\u0000${names.region}`;
    let series = bySeries.get(key);
    if (series === undefined) {
      series = { ...names, requests: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 }, latency: { buckets: new Array<number>(bounds + 1).fill(0), count: 0, sum: 0 } };
      bySeries.set(key, series);
    }
    return series;
  };
  // Histograms export one value per bucket, sum and count, told apart by metricName.
  const duration = metrics.find((m) => m.name === DURATION) as MetricObjectWithValues<MetricValueWithName<string>> | undefined;
  const bounds = [...new Set((duration?.values ?? []).map((v) => v.labels.le).filter((le) => le !== undefined && le !== '+Inf').map(Number))].sort((a, b) => a - b);
  const slot = new Map(bounds.map((b, i) => [b, i]));
  for (const v of metrics.find((m) => m.name === REQUESTS)?.values ?? []) {
    const status = label(v.labels, 'status_class');
    const series = seriesOf(v.labels, bounds.length);
    if ((STATUS_CLASSES as readonly string[]).includes(status)) series.requests[status as (typeof STATUS_CLASSES)[number]] += v.value;
  }
  for (const v of duration?.values ?? []) {
    const series = seriesOf(v.labels, bounds.length);
    if (v.metricName === `${DURATION}_sum`) series.latency.sum += v.value;
    else if (v.metricName === `${DURATION}_count`) series.latency.count += v.value;
    else {
      const le = v.labels.le;
      const i = le === '+Inf' ? bounds.length : slot.get(Number(le));
      if (i !== undefined) series.latency.buckets[i] = (series.latency.buckets[i] as number) + v.value;
    }
  }
  return { at: new Date(now).toISOString(), timeMs: now, bucketsSeconds: bounds, series: [...bySeries.values()] };
}

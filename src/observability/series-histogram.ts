import type { Metric, Registry } from 'prom-client';

/** One exported value, as prom-client's registry formats it. */
interface ExportedValue {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
  readonly metricName: string;
}

/** A metric as prom-client's registry reads it from get() (its typings describe less than it reads). */
export interface ExportedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram';
  readonly aggregator: 'sum';
  readonly values: readonly ExportedValue[];
}

/** One label set's buckets: what a request adds to with one array increment. */
export interface HistogramSeries {
  /** Records one value (seconds). */
  observe(value: number): void;
}

class Series implements HistogramSeries {
  readonly labels: Readonly<Record<string, string>>;
  /** Counts per bucket (not cumulative); the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];

  constructor(labels: Readonly<Record<string, string>>, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }
}

/**
 * A Prometheus histogram whose series are objects the caller keeps: observing
 * is a bucket search and three additions, with no label hashing or validation
 * per call (prom-client's own histogram costs microseconds a request there).
 * prom-client reads it through get() when it collects, so /metrics, JSON
 * export and cluster aggregation see an ordinary histogram.
 */
export class SeriesHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, Series>();

  constructor(options: { name: string; help: string; buckets: readonly number[]; registry: Registry }) {
    this.name = options.name;
    this.help = options.help;
    this.#bounds = [...options.buckets].sort((a, b) => a - b);
    // prom-client's registry accepts any object that answers get() like its own metrics do.
    options.registry.registerMetric(this as unknown as Metric);
  }

  /** The series of a label set, created on first use. */
  series(labels: Readonly<Record<string, string>>): HistogramSeries {
    const key = JSON.stringify(labels);
    let series = this.#series.get(key);
    if (series === undefined) {
      series = new Series({ ...labels }, this.#bounds);
      this.#series.set(key, series);
    }
    return series;
  }

  /** Forgets a label set (its series stops being exported). */
  remove(labels: Readonly<Record<string, string>>): void {
    this.#series.delete(JSON.stringify(labels));
  }

  /** What prom-client exports: cumulative buckets, sum and count of every series. */
  async get(): Promise<ExportedMetric> {
    const values: ExportedValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const series of this.#series.values()) {
      let cumulative = 0;
      this.#bounds.forEach((bound, i) => {
        cumulative += series.counts[i] as number;
        values.push({ labels: { le: bound, ...series.labels }, value: cumulative, metricName: bucket });
      });
      values.push({ labels: { le: '+Inf', ...series.labels }, value: series.count, metricName: bucket });
      values.push({ labels: series.labels, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: series.labels, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

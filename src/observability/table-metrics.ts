import { Gauge, type Registry } from 'prom-client';

/** One endpoint of one version of a service in one region, as the table in force lists it. */
export interface EndpointSample {
  readonly service: string;
  readonly version: string;
  readonly region: string;
  /** The address as the table writes it: `host:port` or `https://host:port`. */
  readonly endpoint: string;
  /** May take traffic by its health (healthy, or not checked yet); false: down. */
  readonly up: boolean;
  /** Drained, on its own or with its region: it gets no new requests whatever its health. */
  readonly drained: boolean;
}

/** The split weight of one version of a service in the table in force. */
export interface VersionSample {
  readonly service: string;
  readonly version: string;
  readonly weight: number;
}

/** What the table gauges read on each scrape (routing/table-samples.ts reads the table in force). */
export interface TableSamples {
  endpoints(): Iterable<EndpointSample>;
  versions(): Iterable<VersionSample>;
}

const ENDPOINT_LABELS = ['service', 'version', 'region', 'endpoint'] as const;

/**
 * Gauges that describe the routing table in force and its endpoints' health.
 * They are computed when scraped, so they cost nothing between scrapes and a
 * series leaves with its endpoint or version. Only the process that owns the
 * control plane watches a table; a worker exports the families empty.
 */
export class TableGauges {
  readonly endpointUp: Gauge<(typeof ENDPOINT_LABELS)[number]>;
  readonly endpointDrained: Gauge<(typeof ENDPOINT_LABELS)[number]>;
  readonly versionWeight: Gauge<'service' | 'version'>;
  #source: TableSamples | null = null;

  constructor(registry: Registry) {
    const registers = [registry];
    const gauges = this;
    this.endpointUp = new Gauge({
      name: 'meridian_endpoint_up',
      help: 'Whether an endpoint of a service version in a region may take traffic by its health: 1 up (healthy or not checked yet), 0 down.',
      labelNames: ENDPOINT_LABELS,
      registers,
      aggregator: 'max',
      collect() {
        gauges.#collect(this, (ep) => ep.up);
      },
    });
    this.endpointDrained = new Gauge({
      name: 'meridian_endpoint_drained',
      help: 'Whether an endpoint is drained (on its own or with its region): 1 drained, taking no new requests whatever its health; 0 not.',
      labelNames: ENDPOINT_LABELS,
      registers,
      aggregator: 'max',
      collect() {
        gauges.#collect(this, (ep) => ep.drained);
      },
    });
    this.versionWeight = new Gauge({
      name: 'meridian_version_weight',
      help: 'Split weight in force of each version of a service (1 for a service without a split); the largest weight of a service is its stable version.',
      labelNames: ['service', 'version'],
      registers,
      aggregator: 'max',
      collect() {
        this.reset();
        const source = gauges.#source;
        if (source === null) return;
        for (const v of source.versions()) this.set({ service: v.service, version: v.version }, v.weight);
      },
    });
  }

  /** Reads the table gauges from `source` on every scrape from now on. */
  watch(source: TableSamples): void {
    this.#source = source;
  }

  /** Refills one endpoint gauge from the table in force: endpoints that left it leave no series. */
  #collect(gauge: Gauge<(typeof ENDPOINT_LABELS)[number]>, flag: (ep: EndpointSample) => boolean): void {
    gauge.reset();
    if (this.#source === null) return;
    for (const ep of this.#source.endpoints()) gauge.set({ service: ep.service, version: ep.version, region: ep.region, endpoint: ep.endpoint }, flag(ep) ? 1 : 0);
  }
}

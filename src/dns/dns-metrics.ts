import { Counter, Histogram } from 'prom-client';
import type { Metrics } from '../observability/metrics.js';
import { RCODE_NAMES } from './rcodes.js';

/** How a query arrived. */
export type Transport = 'udp' | 'tcp';

/** Query types with a series of their own; the rest count as OTHER (keeps label sets bounded). */
const NAMED_TYPES = new Set(['A', 'AAAA', 'ANY', 'SOA', 'NS', 'CNAME', 'TXT', 'MX', 'SRV', 'PTR', 'CAA', 'HTTPS', 'SVCB', 'DS', 'DNSKEY', 'AXFR', 'IXFR', 'NONE']);
/** Upper bounds of the answer latency histogram, in seconds (authoritative answers take microseconds). */
const DNS_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1, 2.5];

type Child = { inc(value: number): void };

/**
 * GeoDNS metrics. Query counts are plain numbers per label set, handed to
 * prom-client when it collects, so the per-query cost is one Map update.
 */
export class DnsMetrics {
  readonly #counts = new Map<string, number>();
  readonly #children = new Map<string, Child>();
  readonly #queries: Counter<'transport' | 'qtype' | 'rcode'>;
  readonly #latency: Record<Transport, { observe(value: number): void }>;
  readonly #truncated: Counter;
  readonly #forwarded: Counter<'result'>;
  readonly #forwardDropped: Counter;
  /** Totals since start, for the admin state. */
  readonly totals = { queries: 0, truncated: 0, forwarded: 0, cached: 0, forwardFailures: 0, forwardDropped: 0 };

  constructor(metrics: Metrics) {
    const registers = [metrics.registry];
    const counts = this.#counts;
    const children = this.#children;
    this.#queries = new Counter({
      name: 'meridian_dns_queries_total',
      help: 'DNS queries answered, by transport, query type and response code.',
      labelNames: ['transport', 'qtype', 'rcode'],
      registers,
      collect() {
        for (const [key, n] of counts) {
          if (n === 0) continue;
          counts.set(key, 0);
          let child = children.get(key);
          if (child === undefined) {
            const [transport, qtype, rcode] = key.split('|') as [string, string, string];
            child = this.labels({ transport, qtype, rcode });
            children.set(key, child);
          }
          child.inc(n);
        }
      },
    });
    const latency = new Histogram({ name: 'meridian_dns_answer_seconds', help: 'Time from a query read to its answer built, by transport.', labelNames: ['transport'], buckets: DNS_BUCKETS, registers });
    this.#latency = { udp: latency.labels({ transport: 'udp' }), tcp: latency.labels({ transport: 'tcp' }) };
    this.#truncated = new Counter({ name: 'meridian_dns_truncated_total', help: 'UDP answers sent truncated (TC) because they exceeded the client size.', registers });
    this.#forwardDropped = new Counter({
      name: 'meridian_dns_forward_dropped_total',
      help: 'Datagrams dropped by the forwarder because they did not answer the query asked (address, port, id or question).',
      registers,
    });
    this.#forwarded = new Counter({ name: 'meridian_dns_forwarded_total', help: 'Queries for names outside the zones, by result (answered, cached, failed).', labelNames: ['result'], registers });
  }

  /** Records one answered query. */
  answered(transport: Transport, qtype: string, rcode: number, truncated: boolean, seconds: number): void {
    const key = `${transport}|${NAMED_TYPES.has(qtype) ? qtype : 'OTHER'}|${RCODE_NAMES[rcode] ?? `RCODE${rcode}`}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    this.#latency[transport].observe(seconds);
    this.totals.queries++;
    if (truncated) {
      this.totals.truncated++;
      this.#truncated.inc();
    }
  }

  /** Records the outcome of one forwarded question. */
  forwarded(result: 'answered' | 'cached' | 'failed'): void {
    this.#forwarded.labels({ result }).inc();
    if (result === 'answered') this.totals.forwarded++;
    else if (result === 'cached') this.totals.cached++;
    else this.totals.forwardFailures++;
  }

  /** Records a datagram the forwarder dropped as not answering its query (spoofed or stray). */
  forwardDropped(): void {
    this.#forwardDropped.inc();
    this.totals.forwardDropped++;
  }
}

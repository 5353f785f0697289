import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';

/** A registry's metrics as getMetricsAsJSON() gives them (a worker sends these over IPC). */
export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/**
 * Facts about the node that every process reports for itself, where the
 * node's answer is the primary's own: prom-client would omit the start time
 * (so uptime panels went blank) and add up the open-file limit.
 */
const PRIMARY_ANSWERS = new Set(['process_start_time_seconds', 'process_max_fds']);

/**
 * One node's metrics (for /metrics and the traffic document) from its primary's registry and its workers': each
 * metric aggregated as it declares (Meridian's counters and Node's CPU,
 * memory, heap, handles and open files summed over the processes; event-loop
 * lag averaged; what every process holds a copy of taken once), the primary's
 * start time and file limit as the node's.
 */
export function aggregateNode(own: MetricsJson, workers: readonly MetricsJson[]): Registry {
  const primary = own.map((metric) => (PRIMARY_ANSWERS.has(metric.name) ? { ...metric, aggregator: 'first' as const } : metric));
  return AggregatorRegistry.aggregate([primary, ...workers]);
}

import { RANK_DOWN } from '../health/endpoint-health.js';
import type { EndpointSample, TableSamples, VersionSample } from '../observability/table-metrics.js';
import type { RoutingTable } from './table.js';

/** Every endpoint of a table with its health and drain, for the endpoint gauges. */
function* endpointsOf(table: RoutingTable | null): Generator<EndpointSample> {
  if (table === null) return;
  for (const service of table.services.values()) {
    for (const version of service.versions.values()) {
      for (const group of version.groups) {
        for (const ep of group.all) {
          yield { service: service.name, version: version.name, region: group.region.name, endpoint: ep.key, up: ep.health.rank !== RANK_DOWN, drained: ep.drain };
        }
      }
    }
  }
}

/** Every version of a table with its split weight, for meridian_version_weight. */
function* versionsOf(table: RoutingTable | null): Generator<VersionSample> {
  if (table === null) return;
  for (const service of table.services.values()) {
    for (const version of service.versions.values()) yield { service: service.name, version: version.name, weight: version.weight };
  }
}

/** The table gauges' view of whatever table `current` returns when a scrape asks. */
export function tableSamples(current: () => RoutingTable | null): TableSamples {
  return { endpoints: () => endpointsOf(current()), versions: () => versionsOf(current()) };
}
